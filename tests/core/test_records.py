"""The hot path's records (``models.slot_init``, issue 14): built through their slots' descriptors,
yet the same frozen dataclasses to every caller: immutable, equal, hashable, shown and replaced as
dataclass's own ``__init__`` made them, with the same constructor signature."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from openplatform.models import (
    LIVE_BACKING,
    App,
    AppSecret,
    AuthorizationCode,
    Backing,
    Installation,
    IssuedTokens,
    TokenRecord,
    backing_of,
    read_backing,
    slot_init,
)
from openplatform.storage.sql.rows import app_from_row, installation_from_row, token_from_row

RECORDS: list[type[Any]] = [App, AppSecret, AuthorizationCode, Backing, Installation, IssuedTokens, TokenRecord]


def distinct_values(cls: type[Any]) -> dict[str, object]:
    """A value per field that no other field has: a field set into another's slot shows."""
    return {f.name: f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls)}


@dataclasses.dataclass(frozen=True, slots=True)
class _Reference:
    """What dataclass's own ``__init__`` gives, to compare the signature with."""

    a: str
    b: float | None = None


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__name__)
def test_records_are_frozen_slotted_dataclasses(cls: type[Any]) -> None:
    record = cls(**distinct_values(cls))
    for f in dataclasses.fields(cls):
        assert getattr(record, f.name) == f"{cls.__name__}.{f.name}"
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, f.name, "changed")
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(record, f.name)
    assert not hasattr(record, "__dict__")
    # A name that is no field: dataclass's frozen __setattr__ on a slotted class raises TypeError on
    # Python 3.11 (its super() names the class before slots=True rebuilt it), as it did before slot_init.
    with pytest.raises((dataclasses.FrozenInstanceError, AttributeError, TypeError)):
        record.unknown = 1


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__name__)
def test_records_compare_hash_show_and_replace_by_their_fields(cls: type[Any]) -> None:
    values = distinct_values(cls)
    record, same = cls(**values), cls(*values.values())  # by keyword and by position
    assert record == same and hash(record) == hash(same) and record is not same
    assert repr(record) == f"{cls.__name__}(" + ", ".join(f"{k}={v!r}" for k, v in values.items()) + ")"
    first = next(iter(values))
    other = dataclasses.replace(record, **{first: "other"})
    assert other != record and getattr(other, first) == "other"
    assert dataclasses.replace(other, **{first: values[first]}) == record
    assert dataclasses.astuple(record) == tuple(values.values())


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: cls.__name__)
def test_the_constructor_keeps_dataclass_signature_and_defaults(cls: type[Any]) -> None:
    signature = inspect.signature(cls)
    assert list(signature.parameters) == [f.name for f in dataclasses.fields(cls)]
    for f in dataclasses.fields(cls):
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert signature.parameters[f.name].default == expected
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    with pytest.raises(TypeError):
        cls(*["x"] * (len(required) - 1))
    with pytest.raises(TypeError):
        cls(**distinct_values(cls), unknown=1)
    assert inspect.signature(_Reference).return_annotation == signature.return_annotation


def test_defaults_are_filled_in() -> None:
    token = TokenRecord(digest="d", kind="access", app_id="a", scope="s", expires_at=1.0)
    assert (token.installation_id, token.created_at, token.family_expires_at) == (None, 0.0, None)
    assert token.is_app_token and token.scopes == frozenset({"s"})
    issued = IssuedTokens("raw", 3600)
    assert issued.result() == {"access_token": "raw", "expires_in": 3600}


def test_issued_tokens_carry_only_what_the_answer_shows() -> None:
    """``IssuedTokens.extra`` is gone: nothing read it, and its default_factory cost a dict per token."""
    names = ["access_token", "expires_in", "refresh_token", "scope"]
    assert [f.name for f in dataclasses.fields(IssuedTokens)] == names
    assert IssuedTokens("a", 1, "r", "s").result() == dict(zip(names, ["a", 1, "r", "s"], strict=True))


def test_slot_init_refuses_what_it_does_not_build() -> None:
    with pytest.raises(TypeError, match="plain defaults"):

        @slot_init
        @dataclasses.dataclass(frozen=True, slots=True)
        class WithFactory:
            items: list[str] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="slotted"):

        @slot_init
        @dataclasses.dataclass(frozen=True)
        class NotSlotted:
            a: str

    with pytest.raises(TypeError, match="InitVar"):  # the review: it was left out of the signature

        @slot_init
        @dataclasses.dataclass(frozen=True, slots=True)
        class WithInitVar:
            a: str
            b: dataclasses.InitVar[int] = 0

    @dataclasses.dataclass(frozen=True, slots=True)
    class Base:
        a: str

    with pytest.raises(TypeError, match="inherited"):  # the review: a KeyError before

        @slot_init
        @dataclasses.dataclass(frozen=True, slots=True)
        class Derived(Base):
            b: str = ""


def test_slot_inits_are_the_models_module() -> None:
    assert TokenRecord.__init__.__module__ == "openplatform.models"  # the review: None before


ROW_READERS = [
    (token_from_row, TokenRecord),
    (installation_from_row, Installation),
]


@pytest.mark.parametrize(("read", "cls"), ROW_READERS, ids=lambda x: getattr(x, "__name__", ""))
def test_rows_become_records_field_by_field(read: Any, cls: type[Any]) -> None:
    """rows.py builds the records by position: each column must land in its own field."""
    values = distinct_values(cls)
    assert read(dict(reversed(values.items()))) == cls(**values)


def test_app_rows_become_apps_field_by_field() -> None:
    row = {f.name: f"App.{f.name}" for f in dataclasses.fields(App)}
    row |= {"scopes": "customer:read site:read", "ip_whitelist": "10.0.0.0/8", "created_at": 5.0}
    secrets = [{"secret_hash": "h1", "expires_at": None}, {"secret_hash": "h2", "expires_at": 9.0}]
    assert app_from_row(row, secrets) == App(
        app_id="App.app_id", name="App.name", host_url="App.host_url", status="App.status",
        scopes=("customer:read", "site:read"), ip_whitelist=("10.0.0.0/8",), webhook_url="App.webhook_url",
        secrets=(AppSecret("h1", None), AppSecret("h2", 9.0)), owner_id="App.owner_id", created_at=5.0,
    )  # fmt: skip


def test_backing_is_read_by_name() -> None:
    states = {"spe_exists": 1, "customer_status": "c", "installed": None, "app_status": "a"}
    assert read_backing(states) == Backing(app_status="a", installed=False, customer_status="c", spe_exists=True)
    assert read_backing(None) == Backing(app_status=None, installed=False, customer_status=None, spe_exists=False)


def test_a_live_backing_is_the_shared_record_any_other_its_own() -> None:
    """``backing_of``: all four states live (SQL's 1 for the two flags) is ``LIVE_BACKING`` itself; any
    state that is not gives a record of its own with exactly those states."""
    assert backing_of("active", 1, "active", 1) is LIVE_BACKING
    assert LIVE_BACKING == Backing(app_status="active", installed=True, customer_status="active", spe_exists=True)
    live = ("active", 1, "active", 1)
    for position, other in enumerate(("suspended", None, "disabled", None)):
        states: list[Any] = list(live)
        states[position] = other
        found = backing_of(*states)
        assert found is not LIVE_BACKING
        assert found == Backing(states[0], bool(states[1]), states[2], bool(states[3]))
    assert read_backing({"app_status": "active", "installed": 1, "customer_status": "active", "spe_exists": 1}) is (
        LIVE_BACKING
    )
