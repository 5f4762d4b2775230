"""Admin keys (SPEC §10, table of migrations 0005 and 0007): stored only as a keyed digest."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import insert, select, update

from openplatform.records import ADMIN, AdminKey
from openplatform.storage.sql.database import Database
from openplatform.storage.sql.schema import admin_keys


def _key(row: Mapping[str, Any]) -> AdminKey:
    return AdminKey(
        row["key_id"], row["name"], row["xspe"], row["created_at"], row["revoked_at"], row["scope"], row["last_used_at"]
    )


class SqlAdminKeys:
    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock

    async def create(self, key_id: str, name: str, xspe: str | None, digest: str, scope: str = ADMIN) -> AdminKey:
        now = self.clock()
        await self.database.execute(
            insert(admin_keys).values(
                key_id=key_id, name=name, xspe=xspe, key_digest=digest, created_at=now, scope=scope
            )
        )
        return AdminKey(key_id, name, xspe, now, scope=scope)

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
        return None if row is None else _key(row)

    async def list_keys(self) -> list[AdminKey]:
        """Every key, revoked ones included, oldest first (never a digest)."""
        rows = await self.database.read(select(admin_keys).order_by(admin_keys.c.created_at, admin_keys.c.key_id))
        return [_key(row) for row in rows]

    async def touch(self, key_id: str, at: float) -> None:
        """Record ``at`` (UNIX seconds) as the key's last use; an older value never overwrites a newer one."""
        await self.database.execute(
            update(admin_keys)
            .where(admin_keys.c.key_id == key_id)
            .where((admin_keys.c.last_used_at.is_(None)) | (admin_keys.c.last_used_at < at))
            .values(last_used_at=at)
        )
