"""The directory and the console's queries, written once and run on memory, SQLite and PostgreSQL.

``MemoryDirectory``/``MemoryConsole`` (``storage/memory``) against their SQL twins
``SqlDirectory``/``SqlConsole`` (``storage/sql``): the same orderings and paging
totals, filters (the name filter takes ``%`` and ``_`` literally), optimistic updates
(``VersionConflict`` changes nothing), the invalidation records and outbox rows each
change writes, deleting a customer with everything that hangs on it, and the activity
read from the audit log (where SQL sums coalesced rows, memory counts events).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from openplatform import events
from openplatform.config import Settings
from openplatform.core.lifecycle import refusal
from openplatform.core.store import Backend
from openplatform.errors import IntegrityError
from openplatform.models import ACTIVE, App, AuthorizationCode, Customer, Installation, Spe, TokenRecord
from openplatform.records import CustomerFilter, InstallRow, TokenCounts, VersionConflict
from openplatform.runtime import make_driver
from openplatform.security import new_id
from openplatform.storage.memory import MemoryStore
from openplatform.storage.memory.console import MemoryConsole
from openplatform.storage.memory.directory import MemoryDirectory
from openplatform.storage.memory.store import SecretRow
from openplatform.storage.sql.console import SqlConsole
from openplatform.storage.sql.database import Database
from openplatform.storage.sql.directory import SqlDirectory
from openplatform.storage.sql.manage import SqlManagement
from openplatform.storage.sql.schema import webhook_deliveries
from openplatform.storage.sql.store import SqlStore
from tests.conftest import TEST_SECRET_KEY
from tests.storage.backends import code_of

START = 1_699_999_200.0  # an hour boundary (UNIX seconds)
HOUR = 3600
AUDIT_COLUMNS = {"id", "at", "event", "app_id", "xspe", "customer_id", "ip", "detail", "occurrences"}


class Clock:
    """A clock that stands still until the test moves it (UNIX seconds)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def entry(name: str, **more: str) -> dict[str, str]:
    """A customer to create, with the id the service would make."""
    return {"customer_id": new_id("cus_"), "name": name, **more}


def notice(installation: Installation, at: float) -> dict[str, object]:
    """A stand-in for ``services.directory.uninstall_notice``: the stored webhook payload."""
    return {"event": "uninstall", "installation_id": installation.installation_id, "at": at}


class World(ABC):
    """The directory and console of one backend, and what other domains write, seeded as that
    backend is fed: memory through ``MemoryStore``, SQL through ``SqlManagement`` and ``SqlStore``."""

    def __init__(self, name: str, clock: Clock, directory: Any, console: Any, tokens: Backend) -> None:
        self.name = name
        self.clock = clock
        self.directory = directory  # MemoryDirectory | SqlDirectory
        self.console = console  # MemoryConsole | SqlConsole
        self.tokens = tokens  # MemoryStore | SqlStore: tokens, codes, the invalidation log

    @abstractmethod
    async def add_spe(self, name: str = "Acme SPE") -> str:
        """A new SPE made now; its xspe."""

    @abstractmethod
    async def add_app(self, name: str = "Test App", webhook_url: str | None = None) -> str:
        """A new active app with one secret, made now; its app_id."""

    @abstractmethod
    async def rotate(self, app_id: str, grace: float) -> None:
        """A new current secret made now; the previous one ends ``grace`` seconds later."""

    @abstractmethod
    async def install(self, app_id: str, xspe: str, customer_id: str | None) -> Installation:
        """A new installation made now (``customer_id`` None: for the whole SPE)."""

    @abstractmethod
    async def uninstall(self, installation: Installation) -> None:
        """End the installation now."""

    @abstractmethod
    async def audit(self, event: str, **fields: object) -> None:
        """One audit event at the clock's now."""

    @abstractmethod
    async def audit_times(self, times: int, event: str, **fields: object) -> None:
        """``times`` identical events at once (the SQL token store makes them one row with a count)."""

    @abstractmethod
    async def customer(self, customer_id: str) -> Customer | None:
        """The customer as stored."""

    @abstractmethod
    async def installation(self, installation_id: str) -> Installation | None:
        """The installation as stored."""

    @abstractmethod
    async def app(self, app_id: str) -> App | None:
        """The app as the hot path reads it."""

    @abstractmethod
    async def outbox(self) -> list[tuple[str, str, dict[str, object], float]]:
        """Every queued notification, oldest first: (app_id, event, payload, next_attempt_at)."""

    @abstractmethod
    async def close(self) -> None:
        """Close what the world opened."""

    async def add_customers(self, xspe: str, *names: str) -> list[Customer]:
        return list(await self.directory.create_customers(xspe, [entry(n) for n in names]))

    async def log_after(self, after_id: int) -> list[tuple[str, str]]:
        return [(kind, key) for _id, kind, key, _at in await self.tokens.invalidations_after(after_id, 1000)]


class MemoryWorld(World):
    def __init__(self, clock: Clock) -> None:
        self.memory = MemoryStore(clock)
        super().__init__("memory", clock, MemoryDirectory(self.memory, clock), MemoryConsole(self.memory, clock),
                         self.memory)  # fmt: skip

    async def add_spe(self, name: str = "Acme SPE") -> str:
        spe = Spe(new_id("spe_"), name, self.clock())
        self.memory.put_spe(spe)
        return spe.xspe

    async def add_app(self, name: str = "Test App", webhook_url: str | None = None) -> str:
        app = App(secrets.token_hex(16), name, "https://app.example.com/", ACTIVE, ("customer:read",), (),
                  webhook_url=webhook_url, created_at=self.clock())  # fmt: skip
        self.memory.put_app(app)
        self._add_secret(app.app_id)
        return app.app_id

    def _add_secret(self, app_id: str) -> None:
        row_id = self.memory.next_id("app_secrets")
        self.memory.secret_rows[row_id] = SecretRow(row_id, app_id, secrets.token_hex(32), b"sealed", self.clock())
        self.memory.sync_secrets(app_id)

    async def rotate(self, app_id: str, grace: float) -> None:
        """As ``SqlManagement.rotate_secret``: one previous secret kept for ``grace`` seconds."""
        rows = self.memory.secret_rows
        for row_id, row in list(rows.items()):
            if row.app_id == app_id and (row.expires_at is not None or grace <= 0):
                del rows[row_id]
            elif row.app_id == app_id:
                row.expires_at = self.clock() + grace
        self._add_secret(app_id)

    async def install(self, app_id: str, xspe: str, customer_id: str | None) -> Installation:
        installation = Installation(new_id("ins_"), app_id, xspe, customer_id, self.clock())
        self.memory.put_installation(installation)
        return installation

    async def uninstall(self, installation: Installation) -> None:
        self.memory.put_installation(dataclasses.replace(installation, uninstalled_at=self.clock()))

    async def audit(self, event: str, **fields: object) -> None:
        self.memory.audit(event, **fields)

    async def audit_times(self, times: int, event: str, **fields: object) -> None:
        for _ in range(times):
            self.memory.audit(event, **fields)

    async def customer(self, customer_id: str) -> Customer | None:
        return self.memory.customers.get(customer_id)

    async def installation(self, installation_id: str) -> Installation | None:
        return self.memory.installations.get(installation_id)

    async def app(self, app_id: str) -> App | None:
        return self.memory.apps.get(app_id)

    async def outbox(self) -> list[tuple[str, str, dict[str, object], float]]:
        rows = sorted(self.memory.deliveries.values(), key=lambda d: d.id)
        return [(d.app_id, d.event, d.payload, d.next_attempt_at) for d in rows]

    async def close(self) -> None:
        await self.memory.close()


class SqlWorld(World):
    def __init__(self, name: str, database_url: str, clock: Clock) -> None:
        self.database = Database(make_driver(Settings(database_url=database_url, secret_key=TEST_SECRET_KEY)))
        self.manage = SqlManagement(self.database, clock)
        self.sql = SqlStore(self.database.driver, clock)
        super().__init__(name, clock, SqlDirectory(self.database, clock), SqlConsole(self.database, clock),
                         self.sql)  # fmt: skip

    async def add_spe(self, name: str = "Acme SPE") -> str:
        return (await self.manage.create_spe(new_id("spe_"), name)).xspe

    async def add_app(self, name: str = "Test App", webhook_url: str | None = None) -> str:
        app = App(secrets.token_hex(16), name, "https://app.example.com/", ACTIVE, ("customer:read",), (),
                  webhook_url=webhook_url)  # fmt: skip
        await self.manage.create_app(app, secrets.token_hex(32), b"sealed")
        return app.app_id

    async def rotate(self, app_id: str, grace: float) -> None:
        await self.manage.rotate_secret(app_id, secrets.token_hex(32), b"sealed", grace)

    async def install(self, app_id: str, xspe: str, customer_id: str | None) -> Installation:
        return await self.manage.install(Installation(new_id("ins_"), app_id, xspe, customer_id, self.clock()))

    async def uninstall(self, installation: Installation) -> None:
        assert await self.manage.uninstall(installation)

    async def audit(self, event: str, **fields: object) -> None:
        await self.manage.audit(event, **fields)

    async def audit_times(self, times: int, event: str, **fields: object) -> None:
        for _ in range(times):
            self.sql.audit(event, **fields)
        await self.database.driver.write(_nothing)  # after the queued audit rows: they are written

    async def customer(self, customer_id: str) -> Customer | None:
        return await self.manage.get_customer(customer_id)

    async def installation(self, installation_id: str) -> Installation | None:
        return await self.manage.get_installation(installation_id)

    async def app(self, app_id: str) -> App | None:
        return await self.manage.get_app(app_id)

    async def outbox(self) -> list[tuple[str, str, dict[str, object], float]]:
        rows = await self.database.read(select(webhook_deliveries).order_by(webhook_deliveries.c.id))
        return [(r["app_id"], r["event"], orjson.loads(r["payload"]), r["next_attempt_at"]) for r in rows]

    async def close(self) -> None:
        await self.database.close()


async def _nothing(_tx: object) -> None:
    return None


@pytest.fixture
async def world(location: tuple[str, str]) -> AsyncIterator[World]:
    name, url = location
    clock = Clock()
    opened: World = MemoryWorld(clock) if name == "memory" else SqlWorld(name, url, clock)
    await opened.tokens.start()
    try:
        yield opened
    finally:
        await opened.close()


def ids(customers: list[Customer]) -> list[str]:
    return [c.customer_id for c in customers]


def token_for(
    customer_id: str | None, at: float, revoked_at: float | None = None, installation: Installation | None = None
) -> TokenRecord:
    """A token of ``customer_id``; issued through ``installation`` (its app, SPE) when given."""
    return TokenRecord(
        digest=secrets.token_hex(32), kind="access", scope="install_login", expires_at=at + 3600, created_at=at,
        app_id=installation.app_id if installation else secrets.token_hex(16), customer_id=customer_id,
        installation_id=installation.installation_id if installation else None,
        xspe=installation.xspe if installation else None, revoked_at=revoked_at,
    )  # fmt: skip


# --------------------------------------------------------------------- customers


async def test_customers_are_listed_oldest_first_a_page_at_a_time(world: World) -> None:
    xspe, other = await world.add_spe(), await world.add_spe()
    first = await world.add_customers(xspe, "Zeta", "Alpha", "Mu")  # one instant: ordered by id
    world.clock.advance(1)
    later = await world.add_customers(xspe, "Beta")
    await world.add_customers(other, "Elsewhere")
    everyone = sorted(ids(first)) + ids(later)
    items, total = await world.directory.list_customers(CustomerFilter(xspe), 10, 0)
    assert (ids(items), total) == (everyone, 4)
    items, total = await world.directory.list_customers(CustomerFilter(xspe), 2, 1)
    assert (ids(items), total) == (everyone[1:3], 4)
    items, total = await world.directory.list_customers(CustomerFilter(xspe), 2, 4)
    assert (items, total) == ([], 4)
    assert await world.directory.list_customers(CustomerFilter("spe_none"), 10, 0) == ([], 0)


async def test_customers_at_an_spe_that_does_not_exist_are_refused_and_none_written(world: World) -> None:
    """The column's foreign key refuses them with ``openplatform.errors.IntegrityError`` on every
    backend (the memory backend raised ValueError before)."""
    with pytest.raises(IntegrityError):
        await world.directory.create_customers("spe_none", [entry("One"), entry("Two")])
    assert await world.directory.list_customers(CustomerFilter("spe_none"), 10, 0) == ([], 0)


async def test_a_taken_customer_id_refuses_the_whole_batch(world: World) -> None:
    """A customer_id taken already, or twice in one batch, is refused with IntegrityError and
    nothing of the batch is written, on every backend (the memory backend overwrote it before)."""
    xspe = await world.add_spe()
    (kept,) = await world.add_customers(xspe, "Kept")
    fresh = entry("Fresh")
    with pytest.raises(IntegrityError):
        await world.directory.create_customers(xspe, [fresh, {**entry("Again"), "customer_id": kept.customer_id}])
    with pytest.raises(IntegrityError):
        await world.directory.create_customers(xspe, [fresh, {**entry("Twin"), "customer_id": fresh["customer_id"]}])
    assert await world.customer(kept.customer_id) == kept
    assert await world.customer(fresh["customer_id"]) is None
    assert (await world.directory.list_customers(CustomerFilter(xspe), 10, 0))[1] == 1


async def test_customers_are_created_active_at_version_one_with_an_empty_contact(world: World) -> None:
    xspe = await world.add_spe()
    entries = [entry("One"), entry("Two", contact="two@example.com", status="disabled")]
    one, two = await world.directory.create_customers(xspe, entries)
    now = world.clock()
    assert (one.name, one.contact, one.status, one.version, one.created_at, one.updated_at) == ("One", "", ACTIVE, 1,
                                                                                                  now, now)  # fmt: skip
    assert (two.contact, two.status) == ("two@example.com", "disabled")
    assert await world.customer(one.customer_id) == one and await world.customer(two.customer_id) == two
    assert await world.directory.create_customers(xspe, []) == []
    assert (one.customer_id, two.customer_id) == (entries[0]["customer_id"], entries[1]["customer_id"])


async def test_the_customer_filters_narrow_the_list_and_its_total(world: World) -> None:
    xspe = await world.add_spe()
    acme, sale, under, plain = await world.add_customers(xspe, "ACME Corp", "50% Off", "a_b", "axb")
    await world.directory.update_customer(plain.customer_id, {"status": "disabled"}, None)
    app_id = await world.add_app()
    await world.install(app_id, xspe, acme.customer_id)
    ended = await world.install(app_id, xspe, sale.customer_id)
    await world.uninstall(ended)
    await world.install(app_id, xspe, None)  # SPE-wide: reaches no customer one by one

    async def listed(**narrowed: Any) -> tuple[list[str], int]:
        items, total = await world.directory.list_customers(CustomerFilter(xspe, **narrowed), 10, 0)
        return ids(items), total

    assert await listed(name="acme") == ([acme.customer_id], 1)  # any case
    assert await listed(name="%") == ([sale.customer_id], 1)  # % and _ are taken literally
    assert await listed(name="_b") == ([under.customer_id], 1)
    assert await listed(status="disabled") == ([plain.customer_id], 1)
    assert await listed(status=ACTIVE, name="a") == (sorted([acme.customer_id, under.customer_id]), 2)
    assert await listed(customer_id=sale.customer_id) == ([sale.customer_id], 1)
    assert await listed(via_app=app_id) == ([acme.customer_id], 1)  # active, per-customer installs only
    assert await listed(via_app=app_id, customer_id=sale.customer_id) == ([], 0)
    assert await listed(name="") == (sorted(ids([acme, sale, under, plain])), 4)  # an empty name filters nothing


async def test_an_update_bumps_the_version_and_records_the_invalidation(world: World) -> None:
    xspe = await world.add_spe()
    (customer,) = await world.add_customers(xspe, "Old Name")
    mark = await world.tokens.last_invalidation_id()
    world.clock.advance(5)
    updated, changes = await world.directory.update_customer(customer.customer_id, {"name": "New", "contact": "x"}, 1)
    expected = dataclasses.replace(customer, name="New", contact="x", version=2, updated_at=world.clock())
    assert (updated, changes) == (expected, [("customer", customer.customer_id)])
    assert await world.customer(customer.customer_id) == expected
    assert await world.log_after(mark) == [("customer", customer.customer_id)]
    updated, _ = await world.directory.update_customer(customer.customer_id, {"status": "disabled"}, None)
    assert updated is not None and (updated.version, updated.status) == (3, "disabled")  # no precondition


async def test_a_stale_version_is_refused_and_changes_nothing(world: World) -> None:
    xspe = await world.add_spe()
    (customer,) = await world.add_customers(xspe, "Name")
    mark = await world.tokens.last_invalidation_id()
    world.clock.advance(5)
    with pytest.raises(VersionConflict) as refused:
        await world.directory.update_customer(customer.customer_id, {"name": "Lost"}, 7)
    assert refused.value.current == 1
    with pytest.raises(VersionConflict):  # no changes: a pure precondition check
        await world.directory.update_customer(customer.customer_id, {}, 2)
    assert await world.directory.update_customer(customer.customer_id, {}, 1) == (customer, [])
    assert await world.directory.update_customer(customer.customer_id, {}, None) == (customer, [])
    assert await world.directory.update_customer("cus_none", {"name": "X"}, 1) == (None, [])
    assert await world.customer(customer.customer_id) == customer
    assert await world.log_after(mark) == []


async def test_of_two_updates_racing_on_one_version_exactly_one_wins(world: World) -> None:
    xspe = await world.add_spe()
    (customer,) = await world.add_customers(xspe, "Name")
    outcomes = await asyncio.gather(
        *(world.directory.update_customer(customer.customer_id, {"name": n}, 1) for n in ("A", "B")),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, tuple)]
    lost = [o for o in outcomes if isinstance(o, VersionConflict)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].current == 2
    assert await world.customer(customer.customer_id) == won[0][0]


async def test_deleting_a_customer_takes_its_sites_installations_and_tokens(world: World) -> None:
    xspe = await world.add_spe()
    gone, kept = await world.add_customers(xspe, "Gone", "Kept")
    hooked, quiet = await world.add_app(webhook_url="https://app.example.com/hook"), await world.add_app()
    ended = await world.install(hooked, xspe, gone.customer_id)
    world.clock.advance(1)
    await world.uninstall(ended)
    live = await world.install(hooked, xspe, gone.customer_id)
    unhooked = await world.install(quiet, xspe, gone.customer_id)
    others = [await world.install(hooked, xspe, kept.customer_id), await world.install(quiet, xspe, None)]
    site = await world.directory.create_site(new_id("site_"), gone, "Shop", "shop.example.com", ACTIVE)
    kept_site = await world.directory.create_site(new_id("site_"), kept, "Kept", "kept.example.com", ACTIVE)
    earlier = world.clock()
    live_token = token_for(gone.customer_id, earlier, None, live)
    revoked = token_for(gone.customer_id, earlier, earlier)
    spe_wide_token = token_for(gone.customer_id, earlier, None, others[1])  # the customer's, through an SPE install
    untouched = [token_for(kept.customer_id, earlier, None, others[0]), token_for(None, earlier)]
    await world.tokens.save_tokens(live_token, spe_wide_token, revoked, *untouched)
    code = AuthorizationCode(
        secrets.token_hex(32), hooked, live.installation_id, gone.customer_id, xspe, "https://app.example.com/cb",
        "install_login", earlier + 300,
    )  # fmt: skip
    await world.tokens.save_code(code)
    mark, queued = await world.tokens.last_invalidation_id(), len(await world.outbox())
    world.clock.advance(10)
    now = world.clock()

    deleted, changes = await world.directory.delete_customer(gone.customer_id, notice)

    assert deleted
    mine = {ended.installation_id, live.installation_id, unhooked.installation_id}
    assert changes[0] == ("customer", gone.customer_id) and changes[4:] == sorted([("app", hooked), ("app", quiet)])
    assert {key for kind, key in changes[1:4] if kind == "installation"} == mine
    assert await world.log_after(mark) == changes
    # Only the active installation of an app with a webhook is notified.
    assert (await world.outbox())[queued:] == [(hooked, "uninstall", notice(live, now), now)]
    assert await world.customer(gone.customer_id) is None
    assert [await world.installation(i) for i in sorted(mine)] == [None] * 3
    assert [await world.installation(i.installation_id) for i in others] == others
    assert await world.directory.get_site(site.site_id if site else "") is None
    assert await world.directory.get_site(kept_site.site_id if kept_site else "") == kept_site
    # Its tokens are not updated (migration 0010): what they stand on refuses them (SPEC §8).
    assert [await world.tokens.get_token(t.digest) for t in (live_token, spe_wide_token, revoked)] == [
        live_token, spe_wide_token, revoked,
    ]  # fmt: skip
    for record, reason in ((live_token, "the app is no longer installed for this customer"),
                           (spe_wide_token, "the customer no longer exists"), (untouched[0], None)):  # fmt: skip
        found = await world.tokens.get_token_backed(record.digest)
        assert found is not None and refusal(found[1]) == reason, record
    assert [await world.tokens.get_token(t.digest) for t in untouched] == untouched
    assert await code_of(world.tokens, code.digest) == code  # refused by what it stands on (SPEC §8)
    items, total = await world.directory.list_customers(CustomerFilter(xspe), 10, 0)
    assert (ids(items), total) == ([kept.customer_id], 1)

    assert await world.directory.delete_customer(gone.customer_id, notice) == (False, [])
    assert await world.log_after(mark) == changes
    assert (await world.directory.delete_customer(kept.customer_id))[0]  # no notify: nothing queued
    assert (await world.outbox())[queued + 1 :] == []


# ------------------------------------------------------------------------- sites


async def test_sites_are_listed_oldest_first_and_updated_on_their_version(world: World) -> None:
    xspe = await world.add_spe()
    customer, other = await world.add_customers(xspe, "Owner", "Other")
    made = [
        await world.directory.create_site(new_id("site_"), customer, n, f"{n}.example.com", ACTIVE) for n in ("b", "a")
    ]
    world.clock.advance(1)
    paused = await world.directory.create_site(new_id("site_"), customer, "c", "c.example.com", "disabled")
    await world.directory.create_site(new_id("site_"), other, "d", "d.example.com", ACTIVE)
    assert None not in made and paused is not None
    everyone = sorted(s.site_id for s in made if s) + [paused.site_id]
    items, total = await world.directory.list_sites(customer.customer_id, None, 2, 1)
    assert ([s.site_id for s in items], total) == (everyone[1:3], 3)
    assert await world.directory.list_sites(customer.customer_id, "disabled", 10, 0) == ([paused], 1)
    assert await world.directory.get_site(paused.site_id) == paused
    assert (paused.customer_id, paused.xspe, paused.version, paused.created_at) == (customer.customer_id, xspe, 1,
                                                                                    world.clock())  # fmt: skip

    mark = await world.tokens.last_invalidation_id()
    world.clock.advance(1)
    updated = await world.directory.update_site(paused.site_id, {"status": ACTIVE, "name": "C"}, 1)
    assert updated == dataclasses.replace(paused, status=ACTIVE, name="C", version=2, updated_at=world.clock())
    with pytest.raises(VersionConflict) as refused:
        await world.directory.update_site(paused.site_id, {"name": "Lost"}, 1)
    assert refused.value.current == 2
    assert await world.directory.get_site(paused.site_id) == updated
    assert await world.directory.update_site("site_none", {"name": "X"}, None) is None
    assert await world.log_after(mark) == []  # no cache holds sites

    assert await world.directory.delete_site(paused.site_id)
    assert not await world.directory.delete_site(paused.site_id)
    assert await world.directory.get_site(paused.site_id) is None


async def test_a_site_for_a_deleted_customer_is_not_made(world: World) -> None:
    xspe = await world.add_spe()
    (customer,) = await world.add_customers(xspe, "Owner")
    await world.directory.delete_customer(customer.customer_id)
    assert await world.directory.create_site(new_id("site_"), customer, "Shop", "shop.example.com", ACTIVE) is None
    assert await world.directory.list_sites(customer.customer_id, None, 10, 0) == ([], 0)


async def test_a_taken_site_id_is_not_made_and_the_first_site_stays(world: World) -> None:
    """As the SQL twins on their primary key: None, and the site as it was (the memory backend
    overwrote it before)."""
    xspe = await world.add_spe()
    (customer,) = await world.add_customers(xspe, "Owner")
    first = await world.directory.create_site(new_id("site_"), customer, "Shop", "shop.example.com", ACTIVE)
    assert first is not None
    assert await world.directory.create_site(first.site_id, customer, "Other", "other.example.com", ACTIVE) is None
    assert await world.directory.get_site(first.site_id) == first


# ---------------------------------------------------------------------- console


async def test_the_customer_search_matches_name_contact_or_id_by_name(world: World) -> None:
    xspe, other = await world.add_spe(), await world.add_spe()
    entries = [entry("Zed", contact="ops@ACME.example"), entry("Acme"), entry("acme"), entry("Bee")]
    zed, acme, lower, bee = await world.directory.create_customers(xspe, entries)
    await world.add_customers(other, "Acme Elsewhere")
    # By name (code point order: capitals first), then id.
    assert await world.console.search_customers(xspe, "acme") == ([acme, zed, lower], 3)
    assert await world.console.search_customers(xspe, "ACME", limit=1, offset=1) == ([zed], 3)
    assert await world.console.search_customers(xspe, bee.customer_id[-6:].upper()) == ([bee], 1)
    assert await world.console.search_customers(xspe) == ([acme, bee, zed, lower], 4)
    assert await world.console.search_customers(xspe, "%") == ([], 0)


async def test_an_app_edit_is_stored_and_recorded_for_the_caches(world: World) -> None:
    app_id = await world.add_app(webhook_url="https://app.example.com/hook")
    mark = await world.tokens.last_invalidation_id()
    await world.console.update_app(app_id, name="Renamed", host_url="https://new.example.com/", webhook_url=None,
                                   scopes="customer:read customer:write", ip_whitelist="")  # fmt: skip
    app = await world.app(app_id)
    assert app is not None
    assert (app.name, app.host_url, app.webhook_url, app.scopes, app.ip_whitelist) == (
        "Renamed", "https://new.example.com/", None, ("customer:read", "customer:write"), ()
    )  # fmt: skip
    await world.console.update_app("app_none", name="Ghost")
    assert await world.log_after(mark) == [("app", app_id), ("app", "app_none")]


async def test_the_current_secret_is_the_one_made_last(world: World) -> None:
    app_id = await world.add_app()
    assert await world.console.current_secret_created_at(app_id) == START
    world.clock.advance(60)
    await world.rotate(app_id, grace=600)
    assert await world.console.current_secret_created_at(app_id) == START + 60
    assert await world.console.current_secret_created_at("app_none") is None


async def test_installs_are_the_active_ones_with_their_names(world: World) -> None:
    xspe = await world.add_spe("First SPE")
    other = await world.add_spe("Second SPE")
    alice, bob = await world.add_customers(xspe, "Alice", "Bob")
    app_id, second = await world.add_app("One"), await world.add_app("Two")
    made = []
    for target_app, target_spe, customer_id in [
        (app_id, xspe, alice.customer_id), (app_id, xspe, None), (second, xspe, bob.customer_id),
        (second, other, None), (app_id, xspe, bob.customer_id),
    ]:  # fmt: skip
        world.clock.advance(1)
        made.append(await world.install(target_app, target_spe, customer_id))
    await world.uninstall(made[4])

    def row(i: int, app_name: str, spe_name: str, customer_name: str | None) -> InstallRow:
        m = made[i]
        return InstallRow(m.installation_id, m.app_id, app_name, "https://app.example.com/", ACTIVE, m.xspe, spe_name,
                          m.customer_id, customer_name, m.installed_at)  # fmt: skip

    everything = [row(0, "One", "First SPE", "Alice"), row(1, "One", "First SPE", None),
                  row(2, "Two", "First SPE", "Bob"), row(3, "Two", "Second SPE", None)]  # fmt: skip
    assert await world.console.installs() == everything
    assert await world.console.installs(app_id=app_id) == everything[:2]
    assert await world.console.installs(xspe=other) == everything[3:]
    # A customer's: its own and every SPE-wide one (narrowed to an SPE by xspe).
    assert await world.console.installs(customer_id=bob.customer_id) == everything[1:]
    assert await world.console.installs(xspe=xspe, customer_id=bob.customer_id) == everything[1:3]
    assert await world.console.installs(app_id=second, xspe=xspe, customer_id=alice.customer_id) == []


async def test_token_activity_is_read_from_the_audit_log(world: World) -> None:
    app_id, quiet, other = await world.add_app(), await world.add_app(), await world.add_app()
    await world.audit(events.TOKEN_ISSUED, app_id=app_id, customer_id="cus_1")  # before the window
    world.clock.advance(HOUR)
    since = world.clock()
    await world.audit(events.TOKEN_ISSUED, app_id=app_id, customer_id="cus_1")
    await world.audit_times(3, events.TOKEN_ISSUED, app_id=app_id, ip="203.0.113.5")  # app tokens
    world.clock.advance(HOUR - 1)
    await world.audit(events.TOKEN_REFRESHED, app_id=app_id, customer_id="cus_1")
    await world.audit(events.TOKEN_REFRESH_RETRIED, app_id=app_id, customer_id="cus_1")  # the pair issued before
    await world.audit(events.TOKEN_ISSUED, app_id=other)
    last = world.clock()
    world.clock.advance(1)
    await world.audit(events.TOKEN_DENIED, app_id=app_id)

    assert await world.console.token_counts(app_id, since) == TokenCounts(2, 3)
    assert await world.console.token_counts(app_id, last + 1) == TokenCounts(0, 0)
    assert await world.console.count_events_since(app_id, events.TOKEN_ISSUED, since) == 4
    assert await world.console.count_events_since(app_id, events.TOKEN_ISSUED, START) == 5
    assert await world.console.count_events_since(quiet, events.TOKEN_ISSUED, START) == 0
    assert await world.console.last_token_at([app_id, quiet, other, app_id]) == {app_id: last, other: last}
    assert await world.console.last_token_at([]) == {}
    # [start, end): the start is in, the end out.
    ranges = [(START, since), (since, last), (last, last + HOUR), (START, START + 10 * HOUR)]
    assert await world.console.grants_per_bucket(app_id, ranges) == [1, 4, 1, 6]
    assert await world.console.grants_per_bucket(app_id, []) == []


async def test_recent_events_are_the_newest_rows_with_their_detail_as_json(world: World) -> None:
    app_id = await world.add_app()
    await world.audit(events.TOKEN_ISSUED, app_id=app_id, customer_id="cus_1", xspe="spe_1", ip="203.0.113.5")
    world.clock.advance(1)
    await world.audit(events.TOKEN_DENIED, app_id=app_id, ip="203.0.113.6", error="invalid_client", tries=[1, 2])
    await world.audit(events.TOKEN_ISSUED, app_id=app_id)  # the same instant: the later one first
    await world.audit(events.TOKEN_ISSUED, app_id="another_app")

    rows = await world.console.recent_events(app_id)
    assert all(set(r) == AUDIT_COLUMNS for r in rows)
    assert rows[0]["id"] > rows[1]["id"] > rows[2]["id"]
    assert [{k: v for k, v in r.items() if k != "id"} for r in rows] == [
        dict(at=START + 1, event=events.TOKEN_ISSUED, app_id=app_id, xspe=None, customer_id=None, ip=None,
             detail="{}", occurrences=1),
        dict(at=START + 1, event=events.TOKEN_DENIED, app_id=app_id, xspe=None, customer_id=None, ip="203.0.113.6",
             detail='{"error":"invalid_client","tries":[1,2]}', occurrences=1),
        dict(at=START, event=events.TOKEN_ISSUED, app_id=app_id, xspe="spe_1", customer_id="cus_1",
             ip="203.0.113.5", detail="{}", occurrences=1),
    ]  # fmt: skip
    assert await world.console.recent_events(app_id, limit=2) == rows[:2]
    assert await world.console.recent_events(app_id, event=events.TOKEN_ISSUED) == [rows[0], rows[2]]
    assert await world.console.recent_events("app_none") == []


async def test_denials_are_counted_per_bucket_and_detail(world: World) -> None:
    app_id = await world.add_app()
    await world.audit(events.TOKEN_DENIED, app_id=app_id, error="invalid_client")  # before ``since``
    world.clock.advance(HOUR)
    since = world.clock()
    await world.audit_times(3, events.TOKEN_DENIED, app_id=app_id, error="invalid_client", ip="203.0.113.5")
    world.clock.advance(HOUR - 0.5)  # still the same hour
    await world.audit(events.TOKEN_DENIED, app_id=app_id, error="invalid_client")
    await world.audit(events.TOKEN_DENIED, app_id=app_id, error="invalid_scope")
    await world.audit(events.TOKEN_ISSUED, app_id=app_id)
    world.clock.advance(1)  # the next hour
    await world.audit(events.TOKEN_DENIED, app_id=app_id, error="invalid_client", ip="203.0.113.7")
    await world.audit(events.TOKEN_DENIED, app_id="another_app", error="invalid_client")

    first = int(since // HOUR)
    found = await world.console.denials_per_bucket(app_id, since, HOUR)
    assert sorted(found) == [
        (first, '{"error":"invalid_client"}', 4), (first, '{"error":"invalid_scope"}', 1),
        (first + 1, '{"error":"invalid_client"}', 1),
    ]  # fmt: skip
    assert await world.console.denials_per_bucket(app_id, world.clock() + 1, HOUR) == []
