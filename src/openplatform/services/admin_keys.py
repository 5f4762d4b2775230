"""Admin keys: the credentials of operators' own systems (SPEC §10).

``openplatform admin-key create --name N [--xspe XSPE]`` prints
``{"key_id": ..., "key": ...}`` once; only a keyed digest of the key is stored
(``Keyring.digest``), so a copy of the database holds no usable key. A key is
sent as ``Authorization: Bearer <key>``. Its reach:

- a key of the whole platform: the admin API and ``/metrics``;
- ``--xspe XSPE``: the admin API, only that SPE's customers and installations; not ``/metrics``;
- ``--metrics-only``: ``/metrics`` only (the admin API answers 403), so the key a
  Prometheus server holds cannot create apps, rotate secrets or set passwords.

Creating and revoking are audited with the key id, never the key. A use on the
admin API is audited as ``admin_key.used``: every write, and a read at most once
per key and operation a minute in each process (``KeyUses``; with several nodes or
workers, once per process). ``last_used_at`` is written at most once a minute per
key and process. A bearer value shaped like a key (``opk_…``) that matches no live
key is counted in ``openplatform_admin_key_failures_total``, not audited: a flood
of guesses must not flood the audit log.
"""

from __future__ import annotations

import secrets

from prometheus_client import Counter

from openplatform import events
from openplatform.core.ratelimit import Limiter, limited
from openplatform.records import ADMIN, METRICS, AdminKey
from openplatform.security import Keyring, new_id
from openplatform.services import validation as check
from openplatform.services.stores import Stores
from openplatform.services.validation import NotFound, ValidationError

KEY_PREFIX = "opk_"  # recognisable in a leaked-secrets scan
MAX_KEY_LENGTH = 128
RATE_LIMIT = "admin"  # the rate_limits entry charged per key (core.ratelimit.DEFAULTS)
USE_WINDOW = 60.0  # seconds: a read is audited, and last_used_at written, at most once in it

AUTH_FAILURES = Counter(
    "openplatform_admin_key_failures",
    "Requests to /metrics or the admin API with a bearer value shaped like an admin key that matches no live key",
)


class KeyUses:
    """When this process last recorded each use, so a scrape or a polling portal does not
    write a row per request: ``due`` is true at most once per ``window`` seconds for one
    ``what`` (a (key id, operation) pair, or a key id). Bounded: past ``max_entries`` it
    starts afresh (at worst some uses are recorded twice in a minute)."""

    def __init__(self, window: float = USE_WINDOW, max_entries: int = 10_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self.last: dict[object, float] = {}

    def due(self, what: object, now: float) -> bool:
        """True (and ``now`` remembered) when ``what`` was not recorded in the last window."""
        last = self.last.get(what)
        if last is not None and 0 <= now - last < self.window:
            return False
        if last is None and len(self.last) >= self.max_entries:
            self.last.clear()
        self.last[what] = now  # checked and set with no await between: one event loop, no race
        return True


USES = KeyUses()  # one per process: every app and request of the process shares it


class AdminKeys:
    def __init__(self, stores: Stores, keyring: Keyring, uses: KeyUses = USES) -> None:
        self.db = stores.management
        self.store = stores.admin_keys
        self.keyring = keyring
        self.uses = uses

    async def create(self, name: str, xspe: str | None = None, metrics_only: bool = False) -> tuple[AdminKey, str]:
        """A new key and its value (shown once). Raises ValidationError (bad name; ``metrics_only``
        with ``xspe``: /metrics is the whole platform's), NotFound (unknown xspe)."""
        name = check.text("name", name)
        if metrics_only and xspe is not None:
            raise ValidationError("xspe", "cannot be given with --metrics-only (metrics are the whole platform's)")
        if xspe is not None and await self.db.get_spe(xspe) is None:
            raise NotFound("no SPE", xspe)
        key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 bits
        scope = METRICS if metrics_only else ADMIN
        created = await self.store.create(new_id("key_"), name, xspe, self.keyring.digest(key), scope)
        await self.db.audit(events.ADMIN_KEY_CREATED, xspe=xspe, key_id=created.key_id, scope=scope)
        return created, key

    async def list_keys(self) -> list[AdminKey]:
        """Every key, revoked ones too, oldest first; what they are, never the key or its digest."""
        return await self.store.list_keys()

    async def revoke(self, key_id: str) -> None:
        """Raises NotFound when there is no such live key."""
        if not await self.store.revoke(key_id):
            raise NotFound("no live admin key", key_id)
        await self.db.audit(events.ADMIN_KEY_REVOKED, key_id=key_id)

    async def revoke_key(self, key: str) -> str:
        """Revoke the live key whose value is ``key`` (a leaked key whose id is unknown); its key_id.
        Raises NotFound (never repeating the value) when no live key has it."""
        found = await self.authenticate(f"Bearer {key.strip()}")
        if found is None:
            raise NotFound("no live admin key has that value")
        await self.revoke(found.key_id)
        return found.key_id

    async def authenticate(self, authorization: str | None) -> AdminKey | None:
        """The live key an ``Authorization: Bearer <key>`` header carries, or None; a value shaped
        like a key that matches none counts in ``openplatform_admin_key_failures_total``."""
        scheme, _, value = (authorization or "").partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value.startswith(KEY_PREFIX):
            return None
        # A key created under an old server key keeps working while that key is configured (SPEC §10).
        found = None
        if len(value) <= MAX_KEY_LENGTH:
            found = await self.keyring.find(self.store.live_by_digest, Keyring.digest, value)
        if found is None:
            AUTH_FAILURES.inc()
        return found

    async def charge(self, limiter: Limiter, key: AdminKey) -> None:
        """One request on the key's ``admin`` budget (``OPENPLATFORM_RATE_LIMITS``; in Redis when
        configured). Raises OAuthError 42901 with ``Retry-After`` when it is spent."""
        if wait := await limiter.take(RATE_LIMIT, key.key_id):
            raise limited(wait)

    async def record_use(self, key: AdminKey, operation: str | None, code: int, write: bool) -> None:
        """Audit one use (``admin_key.used``: ``key_id``, ``operation``, ``code``): a ``write`` always,
        a read at most once per key and operation per ``USE_WINDOW`` in this process; ``operation``
        None (a scrape of /metrics) is not audited. Sets ``last_used_at`` at most once per window."""
        now = self.db.clock()
        if operation is not None and (write or self.uses.due((key.key_id, operation), now)):
            await self.db.audit(events.ADMIN_KEY_USED, key_id=key.key_id, xspe=key.xspe, operation=operation, code=code)
        if self.uses.due(key.key_id, now):
            await self.store.touch(key.key_id, now)
