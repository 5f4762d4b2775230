"""Admin keys: the credentials of operators' own systems (SPEC §10).

``openplatform admin-key create --name N [--xspe XSPE]`` prints
``{"key_id": ..., "key": ...}`` once; only a keyed digest of the key is stored
(``Keyring.digest``), so a copy of the database holds no usable key. A key is
sent as ``Authorization: Bearer <key>``; ``/metrics`` takes only a key of the
whole platform (one bound to an SPE sees only that SPE's data). Creating and
revoking are audited with the key id, never the key.
"""

from __future__ import annotations

import secrets

from openplatform import events
from openplatform.security import Keyring, new_id
from openplatform.services import validation as check
from openplatform.services.validation import NotFound
from openplatform.storage.sql.admin_keys import AdminKey, AdminKeyStore
from openplatform.storage.sql.manage import Management

KEY_PREFIX = "opk_"  # recognisable in a leaked-secrets scan
MAX_KEY_LENGTH = 128


class AdminKeys:
    def __init__(self, management: Management, keyring: Keyring) -> None:
        self.db = management
        self.store = AdminKeyStore(management.database, management.clock)
        self.keyring = keyring

    async def create(self, name: str, xspe: str | None = None) -> tuple[AdminKey, str]:
        """A new key and its value (shown once). Raises ValidationError, NotFound (unknown xspe)."""
        name = check.text("name", name)
        if xspe is not None and await self.db.get_spe(xspe) is None:
            raise NotFound(f"no SPE {xspe!r}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 bits
        created = await self.store.create(new_id("key_"), name, xspe, self.keyring.digest(key))
        await self.db.audit(events.ADMIN_KEY_CREATED, xspe=xspe, key_id=created.key_id)
        return created, key

    async def revoke(self, key_id: str) -> None:
        """Raises NotFound when there is no such live key."""
        if not await self.store.revoke(key_id):
            raise NotFound(f"no live admin key {key_id!r}")
        await self.db.audit(events.ADMIN_KEY_REVOKED, key_id=key_id)

    async def authenticate(self, authorization: str | None) -> AdminKey | None:
        """The live key an ``Authorization: Bearer <key>`` header carries, or None."""
        scheme, _, value = (authorization or "").partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value.startswith(KEY_PREFIX) or len(value) > MAX_KEY_LENGTH:
            return None
        # A key created under an old server key keeps working while that key is configured (SPEC §10).
        return await self.keyring.find(self.store.live_by_digest, Keyring.digest, value)
