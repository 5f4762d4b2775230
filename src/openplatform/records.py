"""The records of the management side: what its stores take and return.

The objects of SPEC §1 are in ``models.py``; these are the rest the services and
screens handle (accounts, admin keys, filters, webhook deliveries, the console's
rows). They live in the shared layer so that every backend (``storage/sql/``,
``storage/memory/``) returns the same types and the services import no backend:
the services own the protocols (``services/stores.py``), the backends implement them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from openplatform.models import Installation

# ----------------------------------------------------------------- accounts

ACTIVE = "active"
DISABLED = "disabled"


class DuplicateEmail(Exception):
    """An account with this e-mail address exists (the address is unique, case-folded by the caller)."""


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    email: str
    role: str  # admin | developer | spe-admin
    xspe: str | None
    status: str
    failed_logins: int
    locked_until: float | None
    created_at: float
    password_hash: str = field(default="", repr=False)

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    def locked_for(self, now: float) -> float:
        """Seconds left in the lock-out, 0 when not locked."""
        return max(0.0, (self.locked_until or 0.0) - now)


@dataclass(frozen=True, slots=True)
class WebSession:
    digest: str
    user: User
    csrf_token: str
    expires_at: float
    created_at: float = 0.0


# --------------------------------------------------------------- admin keys

ADMIN = "admin"  # the admin API and /metrics
METRICS = "metrics"  # /metrics only (admin-key create --metrics-only)


@dataclass(frozen=True, slots=True)
class AdminKey:
    key_id: str
    name: str
    xspe: str | None  # None: the whole platform; else only this SPE's customers and installations
    created_at: float
    revoked_at: float | None = None
    scope: str = ADMIN  # ADMIN or METRICS
    last_used_at: float | None = None  # at most a minute behind per process (services.admin_keys.KeyUses)

    @property
    def metrics_only(self) -> bool:
        return self.scope == METRICS


# --------------------------------------------------- customers and the audit log

Invalidation = tuple[str, str]  # (kind, key) as in the invalidations log
Notify = Callable[[Installation, float], dict[str, object]]  # the stored webhook payload of an uninstall
Announce = Callable[[Sequence[Invalidation]], Awaitable[None]]  # committed (kind, key) changes

# Who acts, merged into every audit event recorded while it is set: the admin API sets
# ``{"key_id": ..., "via": "admin_api"}`` around a request (web.manage_api), so the events
# the shared services record name the admin key (its id, never the key: SPEC §10).
audit_actor: ContextVar[Mapping[str, object] | None] = ContextVar("audit_actor", default=None)


class VersionConflict(Exception):
    """The stored version differs from the caller's precondition."""

    def __init__(self, current: int) -> None:
        super().__init__(f"current version is {current}")
        self.current = current


@dataclass(frozen=True, slots=True)
class CustomerFilter:
    """Which customers a list shows: one SPE, optionally narrowed to what a token reaches."""

    xspe: str
    via_app: str | None = None  # only customers with an active per-customer install of this app
    customer_id: str | None = None  # only this customer (user tokens)
    status: str | None = None
    name: str | None = None  # case-insensitive substring


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which audit events a listing shows (``None``: any); ``since``/``until`` in UNIX seconds, inclusive."""

    app_id: str | None = None
    xspe: str | None = None
    event: str | None = None
    since: float | None = None
    until: float | None = None


# ------------------------------------------------------------------ the screens


@dataclass(frozen=True, slots=True)
class InstallRow:
    """An active installation with the names a person needs to recognise it."""

    installation_id: str
    app_id: str
    app_name: str
    host_url: str
    app_status: str
    xspe: str
    spe_name: str
    customer_id: str | None
    customer_name: str | None
    installed_at: float


@dataclass(frozen=True, slots=True)
class TokenCounts:
    user_tokens: int
    app_tokens: int

    @property
    def total(self) -> int:
        return self.user_tokens + self.app_tokens


# ------------------------------------------------------------------ webhooks

# The retry schedule of a notification (SPEC §3): the waits after failed attempts 1, 2, …, 7; the
# 8th failure abandons it (~10.7 h in all). ``services.webhooks`` sends by it; it is here because the
# storage needs the count too: an undelivered row with no attempt left is finished, and the
# cleanup deletes finished rows in time (``storage.sql.cleanup``).
DELIVERY_BACKOFF = (10, 30, 120, 600, 3600, 3 * 3600, 6 * 3600)
DELIVERY_ATTEMPTS = len(DELIVERY_BACKOFF) + 1


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    app_id: str
    event: str
    payload: dict[str, object]  # the stored body, without the secret-derived signature
    attempts: int  # including the attempt this claim is for
    created_at: float
