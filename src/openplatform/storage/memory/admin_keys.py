"""Admin keys in memory (SPEC §10), as ``storage/sql/admin_keys.py``: stored only as a keyed digest.

The twin of the SQL ``SqlAdminKeys`` (``tests/storage/test_contract_accounts.py`` runs
the same tests on both). Rows live on the shared ``MemoryStore``: ``admin_keys`` maps a
key_id to ``(AdminKey, digest)``. What the table's keys refuse is refused here with
``openplatform.errors.IntegrityError``, as the SQL twin's driver does: a taken
key_id or digest, an ``xspe`` that names no SPE.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

from openplatform.errors import IntegrityError
from openplatform.records import ADMIN, AdminKey
from openplatform.storage.memory.store import MemoryStore


class MemoryAdminKeys:
    """Implements ``services.stores.AdminKeyStore`` on a ``MemoryStore``; ``clock`` gives UNIX seconds."""

    def __init__(self, store: MemoryStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def create(self, key_id: str, name: str, xspe: str | None, digest: str, scope: str = ADMIN) -> AdminKey:
        """A new live key made now, of the whole platform (``xspe`` None) or of one SPE. IntegrityError
        when ``key_id`` or ``digest`` is taken or ``xspe`` names no SPE (nothing is stored then)."""
        await asyncio.sleep(0)
        keys = self.store.admin_keys
        if key_id in keys or any(taken == digest for _key, taken in keys.values()):
            raise IntegrityError("an admin key with this key_id or digest exists")
        if xspe is not None and xspe not in self.store.spes:
            raise IntegrityError("no SPE with this xspe")
        key = AdminKey(key_id, name, xspe, self.clock(), scope=scope)
        keys[key_id] = (key, digest)
        return key

    async def revoke(self, key_id: str) -> bool:
        """True when a live key was revoked now (False: no such key, or revoked before)."""
        await asyncio.sleep(0)
        found = self.store.admin_keys.get(key_id)
        if found is None or found[0].revoked_at is not None:
            return False
        key, digest = found
        self.store.admin_keys[key_id] = (dataclasses.replace(key, revoked_at=self.clock()), digest)
        return True

    async def live_by_digest(self, digest: str) -> AdminKey | None:
        """The unrevoked key with this keyed digest, or None."""
        await asyncio.sleep(0)
        return next((k for k, d in self.store.admin_keys.values() if d == digest and k.revoked_at is None), None)

    async def list_keys(self) -> list[AdminKey]:
        """Every key, revoked ones included, oldest first (created_at, then key_id; never a digest)."""
        await asyncio.sleep(0)
        return sorted((key for key, _digest in self.store.admin_keys.values()), key=lambda k: (k.created_at, k.key_id))

    async def touch(self, key_id: str, at: float) -> None:
        """Record ``at`` (UNIX seconds) as the key's last use; an older value never overwrites a newer one."""
        await asyncio.sleep(0)
        found = self.store.admin_keys.get(key_id)
        if found is None:
            return
        key, digest = found
        if key.last_used_at is None or key.last_used_at < at:
            self.store.admin_keys[key_id] = (dataclasses.replace(key, last_used_at=at), digest)
