"""The storage the core depends on: narrow, verb-named protocols, one per artifact (as fosite's).

The core owns them, as fosite's handlers own their storage interfaces: storage
implements them (``storage.sql.store.SqlStore`` on SQLite and PostgreSQL,
``storage.memory.MemoryStore`` in memory; ``storage.cache.CachedStore`` wraps
either with in-process caches that follow the invalidation log), and the core
imports no storage module. Storage offers atomic steps; what their outcomes
mean (a replay, a retry, a theft) is decided in the grants.

Each core component is typed against the protocols it uses
(``Platform[AppStorage]``, ``Platform[ClientStorage]``, ...), so its signature
says what it reads and writes:

- ``AppStorage`` (get_app, active_installations): client_auth, authorize, resources, server;
- ``InstallationLookup`` (installation_for): authorize (the installation a code stands on);
- ``CustomerStorage`` (get_customer): authorize;
- ``BackingStorage`` (backing): lifecycle (SPEC §8);
- ``CodeStorage`` (get_code, get_code_backed, save_code, consume_code): authorize, the code grant;
- ``TokenStorage`` (get_token, get_token_backed, save_tokens, rotate_refresh, revoke_family,
  revoke_token): the grants, introspection, resources;
- ``AuditLog`` (audit): every door, through ``Platform.audit``;
- ``Lifespan`` (start, close, ping, cleanup): the web layer's lifespan and health check, the CLI;
- ``InvalidationLog`` (invalidations_after, last_invalidation_id): ``storage.cache``, which
  follows a backend's log.

``Store`` is their union without the invalidation log: what a ``Platform`` is
wired with. ``Backend`` adds the log: what a backend implements and a cache wraps.

The guarantees every backend gives (tests/storage/test_contract.py runs them on
memory, SQLite and PostgreSQL): a code is consumed once however many race for
it; a refresh token is rotated once, and every other attempt gets what the
winner left (``RotatedBefore``); a revoking write appends its invalidation
record in the same transaction; the cleanup deletes expired rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from openplatform.models import App, AuthorizationCode, Backing, Customer, Installation, Installations, TokenRecord


@dataclass(frozen=True, slots=True)
class RotatedBefore:
    """What ``rotate_refresh`` found when it could not rotate: the grant decides what it means."""

    revoked: bool  # the token is revoked (or gone)
    rotated_at: float | None  # when it was rotated
    successor: str | None  # digest of the refresh token that replaced it
    successor_live: bool  # that successor is neither rotated nor revoked


class AppStorage(Protocol):
    """Apps and their installations, read side (the management side writes them)."""

    async def get_app(self, app_id: str, fresh: bool = ...) -> App | None:
        """The app, or None; ``fresh`` reads past any cache (a secret or status changed elsewhere)."""
        ...

    async def active_installations(self, app_id: str, fresh: bool = ...) -> Installations:
        """The app's installations not uninstalled; ``fresh`` reads past any cache (SPEC §8)."""
        ...


class InstallationLookup(Protocol):
    async def installation_for(self, app_id: str, xspe: str, customer_id: str) -> Installation | None:
        """The app's live installation a code for ``customer_id`` stands on: the customer's own,
        else the SPE-wide one of ``xspe``; None when there is neither. Whether the customer belongs
        to ``xspe`` is the caller's to check. Read past any cache (it issues a code: SPEC §8), and
        by two lookups whatever the number of the app's installations: ``active_installations``
        read them all on every ``GET /oauth/connect`` (docs/benchmarks.md, "Many customers")."""
        ...


class CustomerStorage(Protocol):
    async def get_customer(self, customer_id: str) -> Customer | None: ...


class BackingStorage(Protocol):
    async def backing(
        self, app_id: str, installation_id: str, customer_id: str | None, xspe: str | None, fresh: bool = ...
    ) -> Backing:
        """What a user token or code stands on (SPEC §8); ``fresh`` reads past any cache."""
        ...


class CodeStorage(Protocol):
    async def get_code_backed(self, digest: str) -> tuple[AuthorizationCode, Backing] | None:
        """The code and what it stands on (SPEC §8), read together from the backend past any cache:
        the exchange's one read (a code is read for nothing else)."""
        ...

    async def save_code(self, code: AuthorizationCode) -> None: ...
    async def consume_code(self, digest: str, *records: TokenRecord) -> bool:
        """Mark the code used and store ``records``, atomically: True for exactly one call per
        code (however many race); False when it was already used or has expired (nothing stored)."""
        ...


class TokenStorage(Protocol):
    async def get_token(self, digest: str) -> TokenRecord | None: ...
    async def get_token_backed(self, digest: str) -> tuple[TokenRecord, Backing] | None:
        """The token and what it stands on (SPEC §8; an app token's ``Backing`` says not installed),
        read together from the backend past any cache: the rotation's one read."""
        ...

    async def save_tokens(self, *records: TokenRecord) -> None: ...
    async def rotate_refresh(
        self, old: TokenRecord, new_access: TokenRecord, new_refresh: TokenRecord
    ) -> RotatedBefore | None:
        """Mark ``old`` rotated into ``new_refresh`` and store the pair, atomically: None for
        exactly one call per token; every other gets the state found (SPEC §2.3)."""
        ...

    async def revoke_family(self, family_id: str, ends: float | None) -> None:
        """Revoke every token of the family (writes the invalidation record ``("family", id)``),
        including any the family gains afterwards. ``ends``: when the family's last token expires
        (its ``family_expires_at``, epoch seconds, which no token of the family outlives), after
        which the cleanup may forget the revocation (SPEC §8); None, when not known, keeps it for
        ever."""
        ...

    async def revoke_token(self, record: TokenRecord) -> None:
        """RFC 7009: an access token alone (``("token", digest)``), a refresh token with its family."""
        ...


class AuditLog(Protocol):
    def audit(self, event: str, **fields: object) -> None:
        """Record an audit event (``openplatform.events``); queued with the next write, never awaited."""
        ...


class Lifespan(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> None:
        """Raise when the storage cannot be reached (the health check)."""
        ...

    async def cleanup(
        self,
        keep_seconds: float = ...,
        audit_retention_seconds: float = ...,
        batch_size: int = ...,
        rest: float = ...,
    ) -> dict[str, int]:
        """One cleanup pass (SPEC §8): codes and tokens expired more than ``keep_seconds`` ago,
        invalidation records as old, audit events and finished (delivered or abandoned) webhook
        deliveries older than ``audit_retention_seconds``;
        returns ``{"codes": N, "tokens": N, "invalidations": N, "audit_events": N}``."""
        ...


class InvalidationLog(Protocol):
    async def invalidations_after(self, after_id: int, limit: int) -> list[tuple[int, str, str, float]]:
        """Up to ``limit`` records with an id above ``after_id``, in id order: (id, kind, key, at)."""
        ...

    async def last_invalidation_id(self) -> int: ...


class Store(
    AppStorage,
    InstallationLookup,
    CustomerStorage,
    BackingStorage,
    CodeStorage,
    TokenStorage,
    AuditLog,
    Lifespan,
    Protocol,
):
    """Everything the core and the web layer use: what a ``Platform`` is wired with."""


class Backend(Store, InvalidationLog, Protocol):
    """A storage backend: the ``Store`` and the invalidation log its revoking writes append to."""
