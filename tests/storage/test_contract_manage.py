"""The management store's contract, written once and run on memory, SQLite and PostgreSQL.

``storage.memory.manage.MemoryManagement`` is the twin of ``storage.sql.manage.SqlManagement``:
the same orderings and paging totals, the same refusals (a key taken, a reference to
nothing), the same invalidation records, outbox rows and ``announce`` calls for a change,
one live installation however many installs race, one uninstall however many race (its
tokens revoked with it), and the same audit rows (``audit_page``). A difference between the backends fails here.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal

import orjson
import pytest
from sqlalchemy import select

from openplatform.config import Settings
from openplatform.core.lifecycle import refusal
from openplatform.core.store import Backend
from openplatform.errors import IntegrityError
from openplatform.models import ACTIVE, SUSPENDED, App, AppSecret, Customer, Installation, Spe
from openplatform.records import AuditFilter, audit_actor
from openplatform.runtime import make_driver
from openplatform.storage.memory import MemoryStore
from openplatform.storage.memory.manage import MemoryManagement
from openplatform.storage.sql.database import Database
from openplatform.storage.sql.manage import SqlManagement
from openplatform.storage.sql.schema import app_secrets, webhook_deliveries
from openplatform.storage.sql.store import SqlStore
from tests.conftest import TEST_SECRET_KEY
from tests.storage.backends import Seeded, token

RACERS = 10
T0 = 1_700_000_000.0


class StepClock:
    """A clock that stands still until the test moves it (so times can tie)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Twin:
    """One backend's management store, its token store (tokens and the invalidation log),
    the outbox and secret rows as stored, and what it announced."""

    def __init__(self, name: str, database_url: str) -> None:
        self.name = name
        self.clock = StepClock()
        self.announced: list[list[tuple[str, str]]] = []
        self.database: Database | None = None
        self.memory: MemoryStore | None = None
        self.management: SqlManagement | MemoryManagement
        self.store: Backend
        if name == "memory":
            self.memory = MemoryStore(self.clock)
            self.store = self.memory
            self.management = MemoryManagement(self.memory, self.clock, self._announce)
        else:
            driver = make_driver(Settings(database_url=database_url, secret_key=TEST_SECRET_KEY))
            self.database = Database(driver)
            self.store = SqlStore(driver, self.clock)
            self.management = SqlManagement(self.database, self.clock, self._announce)

    async def _announce(self, changes: Sequence[tuple[str, str]]) -> None:
        self.announced.append(list(changes))

    async def log_after(self, mark: int) -> list[tuple[str, str, float]]:
        """(kind, key, at) of every invalidation record above ``mark``."""
        return [(kind, key, at) for _id, kind, key, at in await self.store.invalidations_after(mark, 1000)]

    async def outbox(self) -> list[tuple[str, str, dict[str, object], int, float, float]]:
        """(app_id, event, payload, attempts, next_attempt_at, created_at) of every queued notification."""
        if self.memory is not None:
            return [
                (d.app_id, d.event, d.payload, d.attempts, d.next_attempt_at, d.created_at)
                for d in sorted(self.memory.deliveries.values(), key=lambda d: d.id)
            ]
        assert self.database is not None
        rows = await self.database.read(select(webhook_deliveries).order_by(webhook_deliveries.c.id))
        return [
            (r["app_id"], r["event"], orjson.loads(r["payload"]), r["attempts"], r["next_attempt_at"], r["created_at"])
            for r in rows
        ]

    async def secret_rows(self) -> list[tuple[str, str, bytes, float | None]]:
        """(app_id, secret_hash, secret_enc, expires_at) of every stored secret, oldest first."""
        if self.memory is not None:
            rows = sorted(self.memory.secret_rows.values(), key=lambda r: r.id)
            return [(r.app_id, r.secret_hash, r.secret_enc, r.expires_at) for r in rows]
        assert self.database is not None
        found = await self.database.read(select(app_secrets).order_by(app_secrets.c.id))
        return [(r["app_id"], r["secret_hash"], bytes(r["secret_enc"]), r["expires_at"]) for r in found]

    async def close(self) -> None:
        await self.management.close()
        await self.store.close()  # the same driver on SQL: closing twice is harmless


@pytest.fixture
async def twin(location: tuple[str, str]) -> AsyncIterator[Twin]:
    found = Twin(*location)
    await found.store.start()
    try:
        yield found
    finally:
        await found.close()


def an_app(app_id: str, owner_id: str | None = None, webhook_url: str | None = None) -> App:
    return App(
        app_id=app_id, name=f"App {app_id}", host_url="https://app.example.com/", status=ACTIVE,
        scopes=("customer:read", "site:read"), ip_whitelist=("10.0.0.0/8",), webhook_url=webhook_url,
        owner_id=owner_id, created_at=1.0, secrets=(AppSecret("ignored", None),),
    )  # fmt: skip


async def world(twin: Twin, webhook_url: str | None = "https://app.example.com/hook") -> Seeded:
    """An SPE, a customer in it and an app (not installed)."""
    db = twin.management
    await db.create_spe("spe_1", "SPE One")
    await db.create_customer("cus_1", "spe_1", "Customer One")
    await db.create_app(an_app("app_1", webhook_url=webhook_url), "hash-1", b"enc-1")
    return Seeded("spe_1", "cus_1", "app_1", "")


def installation(iid: str, seeded: Seeded, at: float, customer_id: str | None = "cus_1") -> Installation:
    return Installation(iid, seeded.app_id, seeded.xspe, customer_id, installed_at=at)


# ------------------------------------------------------------------ SPEs, customers


async def test_spes_are_listed_oldest_first_then_by_xspe_and_paged(twin: Twin) -> None:
    db = twin.management
    assert await db.create_spe("spe_b", "B") == Spe("spe_b", "B", T0)
    await db.create_spe("spe_a", "A")  # the same second: xspe breaks the tie
    twin.clock.now = T0 + 5
    await db.create_spe("spe_0", "Zero")
    expected = [Spe("spe_a", "A", T0), Spe("spe_b", "B", T0), Spe("spe_0", "Zero", T0 + 5)]
    assert await db.list_spes() == expected
    assert await db.get_spe("spe_0") == expected[2]
    assert await db.get_spe("spe_none") is None
    assert await db.spes_page(None, 2, 1) == (expected[1:], 3)
    assert await db.spes_page(None, 2, 3) == ([], 3)
    assert await db.spes_page("spe_b", 10, 0) == ([expected[1]], 1)
    assert await db.spes_page("spe_none", 10, 0) == ([], 0)


async def test_a_taken_xspe_is_refused(twin: Twin) -> None:
    await twin.management.create_spe("spe_1", "One")
    with pytest.raises(IntegrityError):
        await twin.management.create_spe("spe_1", "Again")
    assert await twin.management.list_spes() == [Spe("spe_1", "One", T0)]


async def test_a_customer_is_created_active_at_version_1_and_needs_its_spe(twin: Twin) -> None:
    db = twin.management
    await db.create_spe("spe_1", "One")
    twin.clock.now = T0 + 1
    created = await db.create_customer("cus_1", "spe_1", "Customer", "ops@example.com")
    assert created == Customer("cus_1", "spe_1", "Customer", "ops@example.com", ACTIVE, T0 + 1, T0 + 1, 1)
    assert await db.get_customer("cus_1") == created
    assert await db.get_customer("cus_none") is None
    with pytest.raises(IntegrityError):
        await db.create_customer("cus_1", "spe_1", "Taken")
    with pytest.raises(IntegrityError):
        await db.create_customer("cus_2", "spe_none", "No SPE")
    assert await db.get_customer("cus_2") is None


# ---------------------------------------------------------------------------- apps


async def test_a_created_app_is_stored_now_with_its_secret_and_announced(twin: Twin) -> None:
    db = twin.management
    mark = await twin.store.last_invalidation_id()
    await db.create_app(an_app("app_1", owner_id="usr_1"), "hash-1", b"enc-1")
    expected = dataclasses.replace(
        an_app("app_1", owner_id="usr_1"), created_at=T0, secrets=(AppSecret("hash-1", None),)
    )
    assert await db.get_app("app_1") == expected
    assert await twin.store.get_app("app_1") == expected  # what the hot path reads
    assert await db.get_app("app_none") is None
    assert await db.current_secret_enc("app_1") == b"enc-1"
    assert await db.current_secret_enc("app_none") is None
    assert await twin.log_after(mark) == [("app", "app_1", T0)]  # a node may remember it as missing
    assert twin.announced == [[("app", "app_1")]]
    with pytest.raises(IntegrityError):
        await db.create_app(an_app("app_1"), "hash-2", b"enc-2")
    assert await twin.secret_rows() == [("app_1", "hash-1", b"enc-1", None)]


async def test_apps_are_listed_oldest_first_without_secrets_by_owner_and_paged(twin: Twin) -> None:
    db = twin.management
    await db.create_app(an_app("app_b", owner_id="usr_1"), "h", b"e")
    await db.create_app(an_app("app_a", owner_id="usr_2"), "h", b"e")
    twin.clock.now = T0 + 1
    await db.create_app(an_app("app_0", owner_id="usr_1"), "h", b"e")
    listed = [dataclasses.replace(an_app(i, owner_id=o), created_at=t, secrets=())
              for i, o, t in (("app_a", "usr_2", T0), ("app_b", "usr_1", T0), ("app_0", "usr_1", T0 + 1))]  # fmt: skip
    assert await db.list_apps() == listed
    assert await db.list_apps("usr_1") == [listed[1], listed[2]]
    assert await db.list_apps("usr_none") == []
    assert await db.apps_page(None, 1, 1) == ([listed[1]], 3)
    assert await db.apps_page("usr_1", 5, 1) == ([listed[2]], 2)


async def test_a_rotated_secret_keeps_one_previous_secret_for_its_grace_period(twin: Twin) -> None:
    db = twin.management
    await db.create_app(an_app("app_1"), "hash-1", b"enc-1")
    mark = await twin.store.last_invalidation_id()
    twin.clock.now = T0 + 100
    await db.rotate_secret("app_1", "hash-2", b"enc-2", grace=60)
    app = await db.get_app("app_1")
    assert app is not None and app.secrets == (AppSecret("hash-2", None), AppSecret("hash-1", T0 + 160))
    assert await twin.store.get_app("app_1") == app
    assert await db.current_secret_enc("app_1") == b"enc-2"
    twin.clock.now = T0 + 120
    await db.rotate_secret("app_1", "hash-3", b"enc-3", grace=30)  # ends hash-1's grace period
    app = await db.get_app("app_1")
    assert app is not None and app.secrets == (AppSecret("hash-3", None), AppSecret("hash-2", T0 + 150))
    twin.clock.now = T0 + 130
    await db.rotate_secret("app_1", "hash-4", b"enc-4", grace=0)  # no grace: only the new one
    assert await twin.secret_rows() == [("app_1", "hash-4", b"enc-4", None)]
    assert await twin.log_after(mark) == [("app", "app_1", T0 + 100), ("app", "app_1", T0 + 120),
                                          ("app", "app_1", T0 + 130)]  # fmt: skip
    assert twin.announced[1:] == [[("app", "app_1")]] * 3
    mark = await twin.store.last_invalidation_id()
    with pytest.raises(IntegrityError):  # no such app: nothing written
        await db.rotate_secret("app_none", "hash-x", b"enc-x", grace=60)
    assert await twin.log_after(mark) == []
    assert await twin.secret_rows() == [("app_1", "hash-4", b"enc-4", None)]


async def test_the_cleanup_ends_a_previous_secret_once_its_grace_period_is_over(twin: Twin) -> None:
    """SPEC §8: the cleanup deletes a rotated-out secret past its grace period (on SQL its row of
    app_secrets; in memory the row and the verifier the hot path reads), not before, not the current one."""
    db = twin.management
    await db.create_app(an_app("app_1"), "hash-1", b"enc-1")
    await db.rotate_secret("app_1", "hash-2", b"enc-2", grace=60)
    twin.clock.now = T0 + 60  # the last second of the grace period: kept
    assert await twin.store.cleanup(rest=0) == {"codes": 0, "tokens": 0, "invalidations": 0, "audit_events": 0}
    assert [row[1] for row in await twin.secret_rows()] == ["hash-1", "hash-2"]
    twin.clock.now = T0 + 61
    await twin.store.cleanup(rest=0)
    assert await twin.secret_rows() == [("app_1", "hash-2", b"enc-2", None)]
    current = (AppSecret("hash-2", None),)
    app = await db.get_app("app_1")
    assert app is not None and app.secrets == current
    stored = await twin.store.get_app("app_1")
    assert stored is not None and stored.secrets == current


async def test_rekeying_reseals_in_one_go_or_not_at_all(twin: Twin) -> None:
    db = twin.management
    await db.create_app(an_app("app_b"), "hash-b1", b"enc-b1")
    await db.create_app(an_app("app_c"), "hash-c1", b"enc-c1")
    await db.rotate_secret("app_b", "hash-b2", b"enc-b2", grace=60)
    await db.create_app(an_app("app_a"), "hash-a1", b"enc-a1")
    before = await twin.secret_rows()
    seen: list[tuple[str, str, bytes]] = []

    def failing(app_id: str, secret_hash: str, secret_enc: bytes) -> tuple[str, bytes] | None:
        seen.append((app_id, secret_hash, secret_enc))
        if app_id == "app_a":
            raise RuntimeError("no key opens it")
        return secret_hash + "'", secret_enc + b"'"

    mark, announced = await twin.store.last_invalidation_id(), len(twin.announced)
    with pytest.raises(RuntimeError):
        await db.rekey_secrets(failing)
    assert seen == [(a, h, e) for a, h, e, _x in before]  # every row, oldest first, before any write
    assert await twin.secret_rows() == before
    assert await twin.log_after(mark) == [] and len(twin.announced) == announced

    def some(app_id: str, secret_hash: str, secret_enc: bytes) -> tuple[str, bytes] | None:
        return None if app_id == "app_c" else (secret_hash + "'", secret_enc + b"'")

    twin.clock.now = T0 + 10
    assert await db.rekey_secrets(some) == 3
    assert await twin.secret_rows() == [
        (a, h, e, x) if a == "app_c" else (a, h + "'", e + b"'", x) for a, h, e, x in before
    ]
    assert await twin.log_after(mark) == [("app", "app_a", T0 + 10), ("app", "app_b", T0 + 10)]
    assert twin.announced[-1] == [("app", "app_a"), ("app", "app_b")]
    app = await twin.store.get_app("app_b")  # the hot path verifies against the new hashes
    assert app is not None and app.secrets == (AppSecret("hash-b2'", None), AppSecret("hash-b1'", T0 + 60))
    assert await db.rekey_secrets(lambda *_row: None) == 0


async def test_setting_an_apps_status_is_recorded_even_for_no_app(twin: Twin) -> None:
    db = twin.management
    await db.create_app(an_app("app_1"), "hash-1", b"enc-1")
    mark = await twin.store.last_invalidation_id()
    twin.clock.now = T0 + 3
    assert await db.set_app_status("app_1", SUSPENDED) is True
    app = await db.get_app("app_1")
    assert app is not None and app.status == SUSPENDED
    assert await db.set_app_status("app_none", ACTIVE) is False
    assert await twin.log_after(mark) == [("app", "app_1", T0 + 3), ("app", "app_none", T0 + 3)]
    assert twin.announced[1:] == [[("app", "app_1")], [("app", "app_none")]]


# ------------------------------------------------------------------- installations


async def test_racing_installs_make_one_installation_and_one_notification(twin: Twin) -> None:
    seeded = await world(twin)
    mark, announced = await twin.store.last_invalidation_id(), len(twin.announced)
    tries = [installation(f"ins_{n:02}", seeded, T0 + n) for n in range(RACERS)]
    stored = await asyncio.gather(
        *(twin.management.install(i, {"type": 1, "event_id": i.installation_id}) for i in tries)
    )
    winners = [i for i, s in zip(tries, stored, strict=True) if s is i]
    assert len(winners) == 1 and all(s == winners[0] for s in stored)
    winner = winners[0]
    assert await twin.management.list_installations() == [winner]
    assert await twin.management.find_installation("app_1", "spe_1", "cus_1") == winner
    assert await twin.management.find_installation("app_1", "spe_1", None) is None  # SPE-wide is another
    assert await twin.outbox() == [
        ("app_1", "install", {"type": 1, "event_id": winner.installation_id}, 0, winner.installed_at,
         winner.installed_at)
    ]  # fmt: skip
    assert await twin.log_after(mark) == [("app", "app_1", winner.installed_at)]
    assert twin.announced[announced:] == [[("app", "app_1")]]


async def test_an_spe_wide_installation_is_apart_from_a_customers_and_needs_no_notification(twin: Twin) -> None:
    seeded = await world(twin, webhook_url=None)
    spe_wide = await twin.management.install(installation("ins_spe", seeded, T0, customer_id=None))
    mine = await twin.management.install(installation("ins_cus", seeded, T0))
    assert mine.installation_id == "ins_cus" and spe_wide.installation_id == "ins_spe"
    assert await twin.management.find_installation("app_1", "spe_1", None) == spe_wide
    assert await twin.management.find_installation("app_1", "spe_1", "cus_1") == mine
    assert await twin.management.find_installation("app_1", "spe_other", None) is None
    assert await twin.outbox() == []


async def test_an_installation_naming_nothing_is_refused(twin: Twin) -> None:
    seeded = await world(twin)
    mark = await twin.store.last_invalidation_id()
    for wrong in (
        dataclasses.replace(installation("ins_1", seeded, T0), app_id="app_none"),
        dataclasses.replace(installation("ins_1", seeded, T0), customer_id="cus_none"),
        dataclasses.replace(installation("ins_1", seeded, T0, customer_id=None), xspe="spe_none"),
    ):
        with pytest.raises(IntegrityError):
            await twin.management.install(wrong, {"type": 1})
    assert await twin.management.list_installations() == []
    assert await twin.outbox() == [] and await twin.log_after(mark) == []


async def test_an_uninstall_ends_the_installation_and_its_tokens_once(twin: Twin) -> None:
    seeded = await world(twin)
    await twin.management.create_customer("cus_2", "spe_1", "Customer Two")
    mine = await twin.management.install(installation("ins_1", seeded, T0))
    other = await twin.management.install(installation("ins_2", seeded, T0, customer_id="cus_2"))
    backed = dataclasses.replace(seeded, installation_id=mine.installation_id)
    theirs = dataclasses.replace(seeded, customer_id="cus_2", installation_id=other.installation_id)
    ended = [token(seeded=backed, family_id="f" * 64, expires_at=T0 + 3600, at=T0),
             token("refresh", seeded=backed, family_id="f" * 64, expires_at=T0 + 86400, at=T0)]  # fmt: skip
    kept = [token(seeded=theirs, expires_at=T0 + 3600, at=T0), token(expires_at=T0 + 3600, at=T0)]
    await twin.store.save_tokens(*ended, *kept)
    before_outbox = await twin.outbox()
    mark, announced = await twin.store.last_invalidation_id(), len(twin.announced)
    twin.clock.now = T0 + 50
    outcomes = await asyncio.gather(
        *(twin.management.uninstall(mine, {"type": 2, "n": n}, now=T0 + 40) for n in range(RACERS))
    )
    assert outcomes.count(True) == 1
    assert await twin.management.get_installation("ins_1") == dataclasses.replace(mine, uninstalled_at=T0 + 40)
    assert await twin.management.find_installation("app_1", "spe_1", "cus_1") is None
    for record in ended:  # not updated: refused by what they stand on (SPEC §8; migration 0010)
        assert await twin.store.get_token(record.digest) == record
        found = await twin.store.get_token_backed(record.digest)
        assert found is not None and refusal(found[1]) == "the app is no longer installed for this customer"
    for record in kept:
        assert await twin.store.get_token(record.digest) == record
    theirs_found = await twin.store.get_token_backed(kept[0].digest)
    assert theirs_found is not None and refusal(theirs_found[1]) is None
    assert await twin.log_after(mark) == [("installation", "ins_1", T0 + 40), ("app", "app_1", T0 + 40)]
    assert (await twin.outbox())[len(before_outbox):] == [
        ("app_1", "uninstall", {"type": 2, "n": outcomes.index(True)}, 0, T0 + 40, T0 + 40)
    ]  # fmt: skip
    assert twin.announced[announced:] == [[("installation", "ins_1"), ("app", "app_1")]]
    assert await twin.management.uninstall(other) is True  # without ``now``: the clock's
    gone = await twin.management.get_installation("ins_2")
    assert gone is not None and gone.uninstalled_at == T0 + 50
    assert not await twin.management.uninstall(installation("ins_none", seeded, T0))
    again = await twin.management.install(installation("ins_3", seeded, T0 + 60))  # installing anew
    assert again.installation_id == "ins_3"


async def test_installations_are_listed_oldest_first_filtered_and_paged(twin: Twin) -> None:
    seeded = await world(twin)
    db = twin.management
    await db.create_spe("spe_2", "SPE Two")
    await db.create_app(an_app("app_2"), "hash-2", b"enc-2")
    made = [
        await db.install(Installation("ins_b", "app_1", "spe_1", None, T0)),
        await db.install(Installation("ins_a", "app_2", "spe_1", None, T0)),  # a tie: by id
        await db.install(Installation("ins_0", "app_1", "spe_2", None, T0 + 1)),
        await db.install(installation("ins_z", seeded, T0 - 1)),
    ]
    await db.uninstall(made[3], now=T0 + 2)  # an ended one is still listed
    ins_z = dataclasses.replace(made[3], uninstalled_at=T0 + 2)
    ins_b, ins_a, ins_0 = made[:3]
    assert await db.list_installations() == [ins_z, ins_a, ins_b, ins_0]
    assert await db.list_installations(app_id="app_1") == [ins_z, ins_b, ins_0]
    assert await db.list_installations(xspe="spe_1") == [ins_z, ins_a, ins_b]
    assert await db.list_installations("app_1", "spe_2") == [ins_0]
    assert await db.installations_page(None, None, 2, 1) == ([ins_a, ins_b], 4)
    assert await db.installations_page("app_1", "spe_1", 1, 1) == ([ins_b], 2)
    assert await db.installations_page("app_none", None, 5, 0) == ([], 0)
    assert await db.get_installation("ins_0") == ins_0
    assert await db.get_installation("ins_none") is None


# ---------------------------------------------------------------------------- audit


async def record_events(twin: Twin) -> None:
    db = twin.management
    await db.audit("app.created", app_id="app_1")
    twin.clock.now = T0 + 10
    acting = audit_actor.set({"key_id": "key_1", "via": "admin_api"})
    try:
        await db.audit("app.installed", app_id="app_1", xspe="spe_1", customer_id="cus_1", ip="10.0.0.1",
                       scopes=("a", "b"), amount=Decimal("1.5"), detail="dropped")  # fmt: skip
    finally:
        audit_actor.reset(acting)
    twin.clock.now = T0 + 20
    await db.audit("app.created", app_id="app_2", xspe="spe_1")
    twin.clock.now = T0 + 30
    await db.audit("spe.created", xspe="spe_2", key_id="key_2")


def without_ids(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The rows without their ids, once the ids are seen to fall (newest first)."""
    ids = [row["id"] for row in rows]
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted((int(str(i)) for i in ids), reverse=True) and len(set(ids)) == len(ids)
    return [{k: v for k, v in row.items() if k != "id"} for row in rows]


def row(at: float, event: str, detail: object, app_id: str | None = None, xspe: str | None = None,
        customer_id: str | None = None, ip: str | None = None) -> dict[str, object]:  # fmt: skip
    return {"at": at, "event": event, "app_id": app_id, "xspe": xspe, "customer_id": customer_id, "ip": ip,
            "detail": detail, "occurrences": 1}  # fmt: skip


INSTALLED_DETAIL = {"key_id": "key_1", "via": "admin_api", "scopes": ["a", "b"], "amount": "1.5"}


async def test_an_audit_page_filters_counts_and_parses_the_detail(twin: Twin) -> None:
    await record_events(twin)
    page, total = await twin.management.audit_page(AuditFilter(), 10, 0)
    assert total == 4
    assert without_ids(page) == [
        row(T0 + 30, "spe.created", {"key_id": "key_2"}, xspe="spe_2"),
        row(T0 + 20, "app.created", {}, "app_2", "spe_1"),
        row(T0 + 10, "app.installed", INSTALLED_DETAIL, "app_1", "spe_1", "cus_1", "10.0.0.1"),
        row(T0, "app.created", {}, "app_1"),
    ]
    assert list(page[0])[-2:] == ["occurrences", "detail"]
    assert await twin.management.audit_page(AuditFilter(), 2, 1) == (page[1:3], 4)
    assert await twin.management.audit_page(AuditFilter(app_id="app_1"), 1, 0) == ([page[2]], 2)
    assert await twin.management.audit_page(AuditFilter(xspe="spe_1"), 10, 0) == (page[1:3], 2)
    assert await twin.management.audit_page(AuditFilter(event="app.created"), 10, 0) == ([page[1], page[3]], 2)
    bounds = AuditFilter(since=T0 + 10, until=T0 + 20)  # both inclusive
    assert await twin.management.audit_page(bounds, 10, 0) == (page[1:3], 2)
    assert await twin.management.audit_page(AuditFilter(app_id="app_1", since=T0 + 11), 10, 0) == ([], 0)
