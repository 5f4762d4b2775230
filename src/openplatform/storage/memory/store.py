"""The in-memory reference backend: every storage protocol of ``core/store.py``, in one process.

It gives the guarantees the SQL backend gives (``tests/storage/test_contract.py``
runs the same tests on both): a code is consumed once however many calls race
for it, a refresh token is rotated once and every other attempt gets what the
winner left (``RotatedBefore``), ``revoke_family`` ends every token of a family,
every revoking write appends its invalidation record in the same step, and the
cleanup deletes expired rows only. Nothing survives the process: it serves the
core's fast tests (``tests/core/test_grants_memory.py``), the whole suite's memory
case, and ``memory://``, the whole platform inside one process (``runtime.make_database``).

Atomicity: every operation first yields to the event loop once, as a database
round trip would (so racing callers interleave as they do against a database),
then reads and writes without awaiting anything: on one event loop that step is
atomic, as the SQL backend's conditional UPDATE is.

It also holds the tables of the management side, which the twins of the SQL
management modules (``storage/memory/manage.py`` and its siblings) read and write
through ``invalidate``, ``next_id``, ``enqueue_webhook`` and ``sync_secrets``. A test
of the core alone seeds it with ``put_spe``, ``put_customer``, ``put_app`` and
``put_installation`` instead, which write the invalidation records the management
side writes for the same change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import orjson

from openplatform.config import AUDIT_RETENTION_SECONDS, CLEANUP_BATCH_SIZE, CLEANUP_KEEP_SECONDS
from openplatform.core.store import RotatedBefore
from openplatform.errors import IntegrityError
from openplatform.models import (
    App,
    AppSecret,
    AuthorizationCode,
    Backing,
    Customer,
    Installation,
    Installations,
    Site,
    Spe,
    TokenRecord,
    read_backing,
)
from openplatform.records import DELIVERY_ATTEMPTS, AdminKey, User, audit_actor

if TYPE_CHECKING:
    from openplatform.core.store import Backend

# The audit log's columns for fields (``storage/sql/schema.py``); every other field is its detail.
_AUDIT_COLUMNS = ("app_id", "xspe", "customer_id", "ip")
_Key = TypeVar("_Key")
_Row = TypeVar("_Row")


@dataclass(slots=True)
class SecretRow:
    """One app secret as ``app_secrets`` holds it: the verifier the hot path reads (also in
    ``App.secrets``, kept in step by the management side) and the secret sealed under the server key."""

    id: int
    app_id: str
    secret_hash: str
    secret_enc: bytes
    created_at: float
    expires_at: float | None = None  # None: the current secret; a time: a previous one in its grace period


@dataclass(slots=True)
class DeliveryRow:
    """One row of the webhook outbox (``webhook_deliveries``); ``payload`` without the signature."""

    id: int
    app_id: str
    event: str
    payload: dict[str, object]
    next_attempt_at: float
    created_at: float
    attempts: int = 0
    delivered_at: float | None = None
    last_error: str | None = None

    def finished_at(self) -> float | None:
        """When it was delivered, or abandoned (every attempt used, the last one over: its
        ``next_attempt_at``); None while pending (as ``storage.sql.cleanup.FINISHED_AT``)."""
        if self.delivered_at is not None:
            return self.delivered_at
        return self.next_attempt_at if self.attempts >= DELIVERY_ATTEMPTS else None


@dataclass(slots=True)
class SessionRow:
    """One web session (``web_sessions``), keyed by the keyed digest of its cookie."""

    digest: str
    user_id: str
    csrf_token: str
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit event as recorded: ``at`` in UNIX seconds, ``fields`` as given to ``audit``
    (with the acting admin key's, ``records.audit_actor``, merged in); ``id`` rises."""

    at: float
    event: str
    fields: dict[str, object]
    id: int = 0

    def detail_text(self) -> str:
        """The ``detail`` column as the SQL backend writes it (``storage/sql/rows.py`` ``audit_values``):
        the fields without a column of their own, as JSON, a value JSON has no type for as ``str()``;
        a field named ``detail`` is dropped, as there."""
        detail = {k: v for k, v in self.fields.items() if k not in _AUDIT_COLUMNS and k != "detail"}
        return orjson.dumps(detail, default=str).decode()

    def row(self) -> dict[str, object]:
        """The event as a row of ``audit_events``, its columns in table order: ``id``, ``at``,
        ``event``, ``app_id``, ``xspe``, ``customer_id``, ``ip``, ``detail`` (JSON text,
        ``detail_text``) and ``occurrences`` (always 1 here: nothing is coalesced)."""
        return {
            "id": self.id, "at": self.at, "event": self.event, **{c: self.fields.get(c) for c in _AUDIT_COLUMNS},
            "detail": self.detail_text(), "occurrences": 1,
        }  # fmt: skip


class MemoryStore:
    """Implements ``core.store.Backend`` in memory; ``clock`` gives UNIX seconds (a test's FakeClock)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.spes: dict[str, Spe] = {}
        self.customers: dict[str, Customer] = {}
        self.apps: dict[str, App] = {}
        self.installations: dict[str, Installation] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.tokens: dict[str, TokenRecord] = {}
        # family_id -> (revoked_at, ends), as the SQL table revoked_families: a token the family
        # gains after its revocation is stored revoked (_insert_tokens), as the SQL reads see it.
        self.revoked_families: dict[str, tuple[float, float | None]] = {}
        self.audit_events: list[AuditEvent] = []
        self.invalidations: list[tuple[int, str, str, float]] = []  # (id, kind, key, at), ids rising
        self._last_id = 0  # never reused, as a database sequence
        # The tables only the management side reads (storage/memory/manage.py and its siblings).
        self.secret_rows: dict[int, SecretRow] = {}
        self.sites: dict[str, Site] = {}
        self.deliveries: dict[int, DeliveryRow] = {}
        self.users: dict[str, User] = {}
        self.sessions: dict[str, SessionRow] = {}
        self.admin_keys: dict[str, tuple[AdminKey, str]] = {}  # key_id -> (key, keyed digest of the key)
        self._sequences: dict[str, int] = {}

    # ------------------------------------------------ the management side (seeding)

    def put_spe(self, spe: Spe) -> None:
        self.spes[spe.xspe] = spe

    def put_customer(self, customer: Customer) -> None:
        """Create or replace a customer (a disabled one: ``status="disabled"``)."""
        replaced = customer.customer_id in self.customers
        self.customers[customer.customer_id] = customer
        if replaced:
            self._invalidate("customer", customer.customer_id, self.clock())

    def put_app(self, app: App) -> None:
        """Create or replace an app (suspend it: ``dataclasses.replace(app, status="suspended")``)."""
        self.apps[app.app_id] = app
        self._invalidate("app", app.app_id, self.clock())  # a node may remember it as missing

    def put_installation(self, installation: Installation) -> None:
        """Create or replace an installation (uninstall it: give it an ``uninstalled_at``)."""
        self.installations[installation.installation_id] = installation
        now = self.clock()
        if installation.uninstalled_at is not None:
            self._invalidate("installation", installation.installation_id, now)
        self._invalidate("app", installation.app_id, now)

    # ------------------------------------------------------------------ lifespan

    async def start(self) -> None:
        await asyncio.sleep(0)

    async def close(self) -> None:
        await asyncio.sleep(0)

    async def ping(self) -> None:
        await asyncio.sleep(0)

    # ------------------------------------------------------------------- reads

    async def get_app(self, app_id: str, fresh: bool = True) -> App | None:
        await asyncio.sleep(0)
        return self.apps.get(app_id)

    async def active_installations(self, app_id: str, fresh: bool = True) -> Installations:
        await asyncio.sleep(0)
        return Installations(i for i in self.installations.values() if i.app_id == app_id and i.uninstalled_at is None)

    def live_installation(self, app_id: str, xspe: str, customer_id: str | None) -> Installation | None:
        """The live installation of an app for one customer, or for the whole SPE (``customer_id`` None)."""
        for i in self.installations.values():
            if i.app_id == app_id and i.xspe == xspe and i.customer_id == customer_id and i.uninstalled_at is None:
                return i
        return None

    async def installation_for(self, app_id: str, xspe: str, customer_id: str) -> Installation | None:
        await asyncio.sleep(0)
        own = self.live_installation(app_id, xspe, customer_id)  # the customer's own first
        return own if own is not None else self.live_installation(app_id, xspe, None)

    async def get_customer(self, customer_id: str) -> Customer | None:
        await asyncio.sleep(0)
        return self.customers.get(customer_id)

    async def backing(
        self, app_id: str, installation_id: str, customer_id: str | None, xspe: str | None, fresh: bool = True
    ) -> Backing:
        """What a user token or code stands on (SPEC §8), read as ``SqlStore.backing`` reads it."""
        await asyncio.sleep(0)
        app = self.apps.get(app_id)
        installation = self.installations.get(installation_id)
        customer = self.customers.get(customer_id) if customer_id is not None else None
        return read_backing({
            "app_status": app.status if app is not None else None,
            "installed": installation is not None and installation.app_id == app_id
            and installation.uninstalled_at is None,
            "customer_status": customer.status if customer is not None and customer.xspe == xspe else None,
            "spe_exists": xspe is not None and xspe in self.spes,
        })  # fmt: skip

    async def get_token(self, digest: str) -> TokenRecord | None:
        await asyncio.sleep(0)
        return self.tokens.get(digest)

    async def get_code_backed(self, digest: str) -> tuple[AuthorizationCode, Backing] | None:
        code = self.codes.get(digest)
        if code is None:
            await asyncio.sleep(0)
            return None
        return code, await self.backing(code.app_id, code.installation_id, code.customer_id, code.xspe)

    async def get_token_backed(self, digest: str) -> tuple[TokenRecord, Backing] | None:
        record = self.tokens.get(digest)
        if record is None:
            await asyncio.sleep(0)
            return None
        backing = await self.backing(record.app_id, record.installation_id or "", record.customer_id, record.xspe)
        return record, backing

    async def invalidations_after(self, after_id: int, limit: int) -> list[tuple[int, str, str, float]]:
        """Up to ``limit`` records with an id above ``after_id``, in id order: (id, kind, key, at)."""
        await asyncio.sleep(0)
        return [record for record in self.invalidations if record[0] > after_id][:limit]

    async def last_invalidation_id(self) -> int:
        await asyncio.sleep(0)
        return self.invalidations[-1][0] if self.invalidations else 0

    # ------------------------------------------------------------------ writes

    async def save_code(self, code: AuthorizationCode) -> None:
        """Store a new code; IntegrityError if its digest is taken (a primary key)."""
        await asyncio.sleep(0)
        if code.digest in self.codes:
            raise IntegrityError("an authorization code with this digest exists")
        self.codes[code.digest] = code

    async def save_tokens(self, *records: TokenRecord) -> None:
        """Store new tokens, all or none; IntegrityError if a digest is taken (a primary key)."""
        await asyncio.sleep(0)
        self._insert_tokens(records)

    async def consume_code(self, digest: str, *records: TokenRecord) -> bool:
        """Mark the code used and store ``records`` in one step: True for exactly one call per
        code; False when it was already used, has expired or is unknown (nothing stored)."""
        await asyncio.sleep(0)
        now = self.clock()
        code = self.codes.get(digest)
        if code is None or code.used_at is not None or code.expires_at <= now:
            return False
        self._insert_tokens(records)
        self.codes[digest] = dataclasses.replace(code, used_at=now)
        return True

    async def rotate_refresh(
        self, old: TokenRecord, new_access: TokenRecord, new_refresh: TokenRecord
    ) -> RotatedBefore | None:
        """Rotate ``old`` into the new pair in one step: None when done, else the state found
        (SPEC §2.3: the grant tells a retry from a theft)."""
        await asyncio.sleep(0)
        now = self.clock()
        found = self.tokens.get(old.digest)
        if found is not None and found.rotated_at is None and found.revoked_at is None:
            self._insert_tokens((new_access, new_refresh))
            self.tokens[old.digest] = dataclasses.replace(found, rotated_at=now, successor=new_refresh.digest)
            return None
        if found is None or found.revoked_at is not None:
            return RotatedBefore(revoked=True, rotated_at=None, successor=None, successor_live=False)
        successor = self.tokens.get(found.successor) if found.successor is not None else None
        live = successor is not None and successor.rotated_at is None and successor.revoked_at is None
        return RotatedBefore(False, found.rotated_at, found.successor, live)

    async def revoke_family(self, family_id: str, ends: float | None) -> None:
        """Revoke every token of the family (a replayed code, a reused refresh token). ``ends``
        is how long the revocation is kept (as the SQL twin's, until the cleanup after it)."""
        await asyncio.sleep(0)
        self._revoke_family(family_id, self.clock(), ends)

    async def revoke_token(self, record: TokenRecord) -> None:
        """RFC 7009: an access token alone; a refresh token with its whole family."""
        await asyncio.sleep(0)
        now = self.clock()
        if record.kind == "refresh" and record.family_id:
            self._revoke_family(record.family_id, now, record.family_expires_at)
            return
        found = self.tokens.get(record.digest)
        if found is not None:
            self.tokens[record.digest] = dataclasses.replace(found, revoked_at=now)
        self._invalidate("token", record.digest, now)

    def audit(self, event: str, **fields: object) -> None:
        """Record an audit event at once (never awaited, as with the SQL backend)."""
        actor = audit_actor.get()
        if actor:
            fields = {**actor, **fields}
        self.audit_events.append(AuditEvent(self.clock(), event, fields, self.next_id("audit_events")))

    async def cleanup(
        self,
        keep_seconds: float = CLEANUP_KEEP_SECONDS,
        audit_retention_seconds: float = AUDIT_RETENTION_SECONDS,
        batch_size: int = CLEANUP_BATCH_SIZE,
        rest: float = 1.0,
    ) -> dict[str, int]:
        """One cleanup pass (SPEC §8), as ``SqlStore.cleanup``: codes and tokens expired more
        than ``keep_seconds`` (seconds) ago (and the revocations of families whose last token
        did), invalidation records as old, app secrets past their grace period, audit events and
        finished webhook deliveries (delivered or abandoned, never pending ones) older than
        ``audit_retention_seconds``. In one step here, so
        ``batch_size`` (at least 1, else ValueError) and ``rest`` change nothing. Returns
        ``{"codes": N, "tokens": N, "invalidations": N, "audit_events": N}``."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        await asyncio.sleep(0)
        now = self.clock()
        horizon = now - keep_seconds
        counts = {
            "codes": _drop(self.codes, lambda code: code.expires_at < horizon),
            "tokens": _drop(self.tokens, lambda token: token.expires_at < horizon),
        }
        _drop(self.revoked_families, lambda row: row[1] is not None and row[1] < horizon)  # unreported
        kept = [record for record in self.invalidations if record[3] >= horizon]
        counts["invalidations"] = len(self.invalidations) - len(kept)
        self.invalidations = kept
        for app in list(self.apps.values()):  # a previous secret stops at the end of its grace period
            live = tuple(s for s in app.secrets if s.expires_at is None or s.expires_at >= now)
            if live != app.secrets:
                self.apps[app.app_id] = dataclasses.replace(app, secrets=live)
        _drop(self.secret_rows, lambda row: row.expires_at is not None and row.expires_at < now)
        retained = now - audit_retention_seconds
        events = [e for e in self.audit_events if e.at >= retained]
        counts["audit_events"] = len(self.audit_events) - len(events)
        self.audit_events = events
        _drop(self.deliveries, lambda row: (at := row.finished_at()) is not None and at < retained)  # unreported
        return counts

    # ----------------------------------------------------------------- helpers

    def _insert_tokens(self, records: tuple[TokenRecord, ...]) -> None:
        digests = {record.digest for record in records}
        if len(digests) < len(records) or not digests.isdisjoint(self.tokens):
            raise IntegrityError("a token with this digest exists")
        for record in records:
            family = self.revoked_families.get(record.family_id) if record.family_id else None
            if family is not None and record.revoked_at is None:
                record = dataclasses.replace(record, revoked_at=family[0])
            self.tokens[record.digest] = record

    def _revoke_family(self, family_id: str, now: float, ends: float | None) -> None:
        revoked_at = self.revoked_families.setdefault(family_id, (now, ends))[0]  # the first revocation stays
        for digest, token in self.tokens.items():
            if token.family_id == family_id and token.revoked_at is None:
                self.tokens[digest] = dataclasses.replace(token, revoked_at=revoked_at)
        self._invalidate("family", family_id, now)

    def _invalidate(self, kind: str, key: str, now: float) -> None:
        """Append the invalidation record of a change, in the same step as the change."""
        self._last_id += 1
        self.invalidations.append((self._last_id, kind, key, now))

    # ------------------------------------------ shared with the management side

    def invalidate(self, kind: str, key: str, now: float) -> None:
        """Record that ``(kind, key)`` changed at ``now`` (as ``storage.sql.changes.invalidate``)."""
        self._invalidate(kind, key, now)

    def next_id(self, table: str) -> int:
        """The next integer key of ``table`` (1, 2, ...; never reused, as a database sequence)."""
        self._sequences[table] = self._sequences.get(table, 0) + 1
        return self._sequences[table]

    def enqueue_webhook(self, app_id: str, event: str, payload: dict[str, object], now: float) -> None:
        """Queue a notification in the outbox (as ``storage.sql.changes.enqueue_webhook``)."""
        row_id = self.next_id("webhook_deliveries")
        self.deliveries[row_id] = DeliveryRow(row_id, app_id, event, payload, next_attempt_at=now, created_at=now)

    def sync_secrets(self, app_id: str) -> None:
        """Make ``App.secrets`` (what the hot path reads) match the app's rows in ``secret_rows``,
        newest first (as ``SqlStore.get_app`` reads them: ``ORDER BY id DESC``)."""
        app = self.apps.get(app_id)
        if app is None:
            return
        rows = sorted((r for r in self.secret_rows.values() if r.app_id == app_id), key=lambda r: -r.id)
        secrets = tuple(AppSecret(r.secret_hash, r.expires_at) for r in rows)
        if secrets != app.secrets:
            self.apps[app_id] = dataclasses.replace(app, secrets=secrets)


def page(items: Sequence[_Row], limit: int, offset: int) -> tuple[list[_Row], int]:
    """``limit`` items of the ordered ``items`` from ``offset`` (as SQL's LIMIT/OFFSET: a negative one
    counts as 0) and how many there are in all: what every ``*_page`` and paged list of the
    management twins returns."""
    offset = max(offset, 0)
    return list(items[offset : offset + max(limit, 0)]), len(items)


def _drop(rows: dict[_Key, _Row], expired: Callable[[_Row], bool]) -> int:
    gone = [key for key, row in rows.items() if expired(row)]
    for key in gone:
        del rows[key]
    return len(gone)


if TYPE_CHECKING:
    _conforms: Backend = MemoryStore()  # mypy checks that it implements every protocol
