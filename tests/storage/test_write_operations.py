"""The write operations' bases (``driver.Claim``, ``driver.InsertsOnly``): a ``Claim`` lacking one of
its members is refused where it is defined, not when a batch first runs it; and the operations,
made once per write on the hot path, stay slot-only (no ``__dict__`` per instance)."""

from __future__ import annotations

from typing import Any

import pytest

from openplatform.models import TokenRecord
from openplatform.storage.sql import store
from openplatform.storage.sql.driver import Claim, Insert, InsertsOnly, Sql, Tx

CLAIM_MANY = Sql("UPDATE t SET at = v.at FROM unnest(?::text[], ?::float8[]) AS v(key, at) RETURNING t.key", "t")


def test_a_claim_without_its_batch_statement_is_refused_where_it_is_defined() -> None:
    with pytest.raises(TypeError, match="claim_many"):

        class NoBatchStatement(Claim):
            __slots__ = ()

            @property
            def claim_args(self) -> tuple[object, ...]:
                return ("key", 1.0)

            async def __call__(self, tx: Tx) -> bool:
                return True


def test_a_claim_without_its_arguments_or_its_run_is_refused_where_it_is_defined() -> None:
    with pytest.raises(TypeError, match="claim_args, __call__"):

        class NothingButTheStatement(Claim):
            __slots__ = ()
            claim_many = CLAIM_MANY


def test_a_complete_claim_is_a_claim() -> None:
    class Complete(Claim):
        __slots__ = ("key",)
        claim_many = CLAIM_MANY

        def __init__(self, key: str) -> None:
            self.key = key

        @property
        def claim_args(self) -> tuple[object, ...]:
            return (self.key, 1.0)

        async def __call__(self, tx: Tx) -> bool:
            return True

    operation = Complete("k")
    assert isinstance(operation, Claim)
    assert operation.claim_args == ("k", 1.0)


def operations() -> list[Any]:
    record = TokenRecord("digest", "refresh", "app", "scope", 2.0)
    return [
        store.ConsumeCode("digest", 1.0, ()),
        store.RotateRefresh("digest", 1.0, record, record),
        Insert(store.INSERT_TOKEN),
    ]


@pytest.mark.parametrize("operation", operations(), ids=lambda op: type(op).__name__)
def test_the_hot_paths_operations_hold_no_instance_dict(operation: Any) -> None:
    assert isinstance(operation, (Claim, InsertsOnly))
    assert not hasattr(operation, "__dict__")
