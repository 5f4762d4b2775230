"""One adapter per storage backend, for tests written once against ``core.store.Backend``.

Each adapter holds a started backend (``store``), whose clock is ``clock``, and
seeds it the way that backend is fed in real life: SQLite and PostgreSQL through
the management services (``runtime.build_admin``), memory through
``MemoryStore.put_*`` (it has no management side).
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from openplatform.config import Settings
from openplatform.core.store import Backend, CodeStorage
from openplatform.models import ACTIVE, SUSPENDED, App, AuthorizationCode, Customer, Installation, Spe, TokenRecord
from openplatform.runtime import build_admin, make_driver
from openplatform.services.admin import Admin
from openplatform.storage.memory import MemoryStore
from openplatform.storage.sql.driver import Driver
from openplatform.storage.sql.store import SqlStore
from tests.conftest import TEST_SECRET_KEY, FakeClock, _truncate

BACKENDS = ("memory", "sqlite", "postgres")


@asynccontextmanager
async def pg_store(pg_database: str, *setup: str) -> AsyncIterator[tuple[Driver, SqlStore]]:
    """A started PostgreSQL driver and its token store on ``pg_database``, after ``setup`` (SQL
    statements run first on a connection of their own); the driver is closed on the way out."""
    import asyncpg

    admin = await asyncpg.connect(pg_database)
    try:
        for statement in setup:
            await admin.execute(statement)
    finally:
        await admin.close()
    driver = make_driver(Settings(database_url=pg_database, secret_key="k" * 32))
    await driver.start()
    try:
        yield driver, SqlStore(driver)
    finally:
        await driver.close()


async def code_of(store: CodeStorage, digest: str) -> AuthorizationCode | None:
    """The stored code, whatever it stands on (a backend reads a code only with its backing)."""
    found = await store.get_code_backed(digest)
    return found[0] if found is not None else None


@dataclass(frozen=True)
class Seeded:
    """One SPE, one customer, one app installed for that customer."""

    xspe: str
    customer_id: str
    app_id: str
    installation_id: str


class Adapter(Protocol):
    name: str
    store: Backend
    clock: FakeClock

    async def seed(self) -> Seeded: ...
    async def add_customer(self, seeded: Seeded) -> str:
        """Another customer of the seeded SPE (its id), with no installation of its own."""

    async def install_spe_wide(self, seeded: Seeded) -> str:
        """The seeded app installed SPE-wide in the seeded SPE (the installation's id)."""

    async def suspend(self, seeded: Seeded) -> None: ...
    async def uninstall(self, seeded: Seeded) -> None: ...
    async def flush(self) -> None:
        """Commit what ``store.audit`` queued, so a read or a cleanup sees it."""

    async def close(self) -> None: ...


class MemoryAdapter:
    name = "memory"

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.memory = MemoryStore(clock=self.clock)
        self.store: Backend = self.memory

    async def seed(self) -> Seeded:
        n = len(self.memory.apps) + 1
        spe = Spe(f"spe_{n}", "Acme SPE", created_at=self.clock())
        customer = Customer(f"cus_{n}", spe.xspe, "Customer One", created_at=self.clock())
        app = App(secrets.token_hex(16), "Test App", "https://app.example.com/", ACTIVE, ("customer:read",), ())
        install = Installation(f"ins_{n}", app.app_id, spe.xspe, customer.customer_id, self.clock())
        self.memory.put_spe(spe)
        self.memory.put_customer(customer)
        self.memory.put_app(app)
        self.memory.put_installation(install)
        return Seeded(spe.xspe, customer.customer_id, app.app_id, install.installation_id)

    async def add_customer(self, seeded: Seeded) -> str:
        customer = Customer(f"cus_{len(self.memory.customers) + 1}", seeded.xspe, "Another", created_at=self.clock())
        self.memory.put_customer(customer)
        return customer.customer_id

    async def install_spe_wide(self, seeded: Seeded) -> str:
        iid = f"ins_{len(self.memory.installations) + 1}"
        install = Installation(iid, seeded.app_id, seeded.xspe, None, self.clock())
        self.memory.put_installation(install)
        return install.installation_id

    async def suspend(self, seeded: Seeded) -> None:
        self.memory.put_app(dataclasses.replace(self.memory.apps[seeded.app_id], status=SUSPENDED))

    async def uninstall(self, seeded: Seeded) -> None:
        installation = self.memory.installations[seeded.installation_id]
        self.memory.put_installation(dataclasses.replace(installation, uninstalled_at=self.clock()))

    async def flush(self) -> None:
        """Nothing: the memory store records an audit event at once."""

    async def close(self) -> None:
        await self.store.close()


class SqlAdapter:
    """SqlStore on a real database; seeded and changed through the management services."""

    def __init__(self, name: str, database_url: str) -> None:
        self.name = name
        self.clock = FakeClock()
        settings = Settings(database_url=database_url, secret_key=TEST_SECRET_KEY)
        self.sql = SqlStore(make_driver(settings), clock=self.clock)
        self.store: Backend = self.sql
        self.admin: Admin = build_admin(settings)

    async def seed(self) -> Seeded:
        spe = await self.admin.create_spe("Acme SPE")
        customer = await self.admin.create_customer(spe.xspe, "Customer One")
        app, _secret = await self.admin.create_app("Test App", "https://app.example.com/", ["customer:read"])
        install = await self.admin.install(app.app_id, customer_id=customer.customer_id)
        return Seeded(spe.xspe, customer.customer_id, app.app_id, install.installation_id)

    async def add_customer(self, seeded: Seeded) -> str:
        return (await self.admin.create_customer(seeded.xspe, "Another")).customer_id

    async def install_spe_wide(self, seeded: Seeded) -> str:
        return (await self.admin.install(seeded.app_id, xspe=seeded.xspe)).installation_id

    async def suspend(self, seeded: Seeded) -> None:
        await self.admin.set_status(seeded.app_id, SUSPENDED)

    async def uninstall(self, seeded: Seeded) -> None:
        await self.admin.uninstall(seeded.app_id, customer_id=seeded.customer_id)

    async def flush(self) -> None:
        """A write of nothing: the group commit that carries it commits the queued audit rows first."""
        await self.sql.driver.write(_nothing)

    async def close(self) -> None:
        await self.store.close()
        await self.admin.db.close()


async def _nothing(_tx: object) -> None:
    return None


def backend_location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """``(name, database_url)`` for ``request.param`` in ``BACKENDS``: a fresh copy of the migrated
    SQLite file, the emptied PostgreSQL test database, or nothing for memory."""
    if request.param == "sqlite":
        target = tmp_path / "openplatform.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), target)
        return "sqlite", f"sqlite:///{target}"
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_database")
        asyncio.run(_truncate(url))
        return "postgres", url
    return "memory", ""


async def open_backend(name: str, database_url: str) -> AsyncIterator[Adapter]:
    """A started backend at ``backend_location``, closed when the iteration ends."""
    adapter: Adapter = MemoryAdapter() if name == "memory" else SqlAdapter(name, database_url)
    await adapter.store.start()
    try:
        yield adapter
    finally:
        await adapter.close()


def token(
    kind: str = "access", *, family_id: str | None = None, seeded: Seeded | None = None, expires_at: float, at: float
) -> TokenRecord:
    """A token record with a fresh 64-hex digest, a user token when ``seeded`` is given."""
    return TokenRecord(
        digest=secrets.token_hex(32), kind=kind, app_id=seeded.app_id if seeded else secrets.token_hex(16),
        scope="install_login", expires_at=expires_at, created_at=at,
        installation_id=seeded.installation_id if seeded else None,
        customer_id=seeded.customer_id if seeded else None, xspe=seeded.xspe if seeded else None,
        family_id=family_id, family_expires_at=at + 86400 if family_id else None,
    )  # fmt: skip
