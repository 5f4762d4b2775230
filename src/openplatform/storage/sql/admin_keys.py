"""Admin keys (SPEC §10, table of migration 0005): stored only as a keyed digest."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from openplatform.storage.sql.database import Database
from openplatform.storage.sql.schema import admin_keys


@dataclass(frozen=True, slots=True)
class AdminKey:
    key_id: str
    name: str
    xspe: str | None  # None: the whole platform; else only this SPE's customers and installations
    created_at: float
    revoked_at: float | None = None


class AdminKeyStore:
    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock

    async def create(self, key_id: str, name: str, xspe: str | None, digest: str) -> AdminKey:
        now = self.clock()
        await self.database.execute(
            insert(admin_keys).values(key_id=key_id, name=name, xspe=xspe, key_digest=digest, created_at=now)
        )
        return AdminKey(key_id, name, xspe, now)

    async def revoke(self, key_id: str) -> bool:
        """True when a live key was revoked now."""
        revoked = await self.database.execute(
            update(admin_keys)
            .where(admin_keys.c.key_id == key_id, admin_keys.c.revoked_at.is_(None))
            .values(revoked_at=self.clock())
        )
        return bool(revoked)

    async def live_by_digest(self, digest: str) -> AdminKey | None:
        query = select(admin_keys).where(admin_keys.c.key_digest == digest, admin_keys.c.revoked_at.is_(None))
        row = await self.database.read_one(query)
        if row is None:
            return None
        return AdminKey(row["key_id"], row["name"], row["xspe"], row["created_at"], row["revoked_at"])
