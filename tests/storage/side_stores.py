"""Accounts, admin keys and the webhook outbox on each backend, for the contract tests written once.

``Side`` holds the three stores of one backend (memory: ``storage/memory``'s twins on one
``MemoryStore``; SQLite and PostgreSQL: ``storage/sql``'s classes on one ``Database``),
sharing a clock the test moves, and seeds what other domains write in real life (an SPE,
an outbox row queued with an install) the way that backend is fed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert

from openplatform.config import Settings
from openplatform.errors import IntegrityError
from openplatform.models import Spe
from openplatform.runtime import make_driver
from openplatform.storage.memory import MemoryStore
from openplatform.storage.memory.accounts import MemoryAccounts
from openplatform.storage.memory.admin_keys import MemoryAdminKeys
from openplatform.storage.memory.webhooks import MemoryOutbox
from openplatform.storage.sql.accounts import SqlAccounts
from openplatform.storage.sql.admin_keys import SqlAdminKeys
from openplatform.storage.sql.changes import enqueue_webhook
from openplatform.storage.sql.cleanup import cleanup_pass
from openplatform.storage.sql.database import Conn, Database
from openplatform.storage.sql.schema import spes
from openplatform.storage.sql.webhooks import SqlOutbox
from tests.conftest import TEST_SECRET_KEY

START = 1_700_000_000.0
REFUSED = IntegrityError  # a refused key, on every backend


class Clock:
    """A clock that stands still until the test moves it (UNIX seconds)."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Side:
    name: str
    clock: Clock
    accounts: Any  # MemoryAccounts | SqlAccounts
    admin_keys: Any  # MemoryAdminKeys | SqlAdminKeys
    outbox: Any  # MemoryOutbox | SqlOutbox
    memory: MemoryStore | None = None
    database: Database | None = None

    async def add_spe(self, xspe: str) -> None:
        if self.memory is not None:
            self.memory.put_spe(Spe(xspe, "An SPE", self.clock()))
            return
        assert self.database is not None
        await self.database.execute(insert(spes).values(xspe=xspe, name="An SPE", created_at=self.clock()))

    async def enqueue(self, app_id: str, payload: dict[str, object], event: str = "install") -> None:
        """Queue a notification at the clock's now, as an install does in its own transaction."""
        now = self.clock()
        if self.memory is not None:
            self.memory.enqueue_webhook(app_id, event, payload, now)
            return
        assert self.database is not None

        async def queue(conn: Conn) -> None:
            await enqueue_webhook(conn, app_id, event, payload, now)

        await self.database.transaction(queue)

    async def cleanup(self, audit_retention_seconds: float, batch_size: int) -> dict[str, int]:
        """One cleanup pass at the clock's now (memory: ``MemoryStore.cleanup``; SQL: ``cleanup_pass``)."""
        if self.memory is not None:
            return await self.memory.cleanup(
                audit_retention_seconds=audit_retention_seconds, batch_size=batch_size, rest=0
            )
        assert self.database is not None
        await self.database.start()
        return await cleanup_pass(
            self.database.driver, self.clock(), audit_retention_seconds=audit_retention_seconds,
            batch_size=batch_size, rest=0,
        )  # fmt: skip


async def open_side(name: str, database_url: str) -> AsyncIterator[Side]:
    """The three stores of backend ``name`` (``backends.backend_location``), closed when the iteration ends."""
    clock = Clock()
    if name == "memory":
        memory = MemoryStore(clock)
        accounts, keys, outbox = MemoryAccounts(memory, clock), MemoryAdminKeys(memory, clock), MemoryOutbox(memory)
        yield Side(name, clock, accounts, keys, outbox, memory=memory)
        return
    database = Database(make_driver(Settings(database_url=database_url, secret_key=TEST_SECRET_KEY)))
    try:
        accounts, keys, outbox = SqlAccounts(database, clock), SqlAdminKeys(database, clock), SqlOutbox(database)
        yield Side(name, clock, accounts, keys, outbox, database=database)
    finally:
        await database.close()
