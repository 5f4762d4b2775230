"""The storage protocols the services need, one per domain, and the bundle a process builds.

As the core owns the protocols of the token side (``core/store.py``), the services own
these: each service is typed against the narrow protocol it uses, never a backend's class.
Two backends implement them: ``storage/sql/`` (SQLite and PostgreSQL, on the process's one
driver) and ``storage/memory/`` (one process, nothing kept); ``runtime.build_stores`` picks
one from ``OPENPLATFORM_DATABASE_URL``. The contract tests (``tests/storage/test_contract_*``)
run the same tests on every backend.

Common rules of every implementation: each method is one transaction; a change that running
servers cache (apps, customers, installations, tokens) records its invalidation (SPEC §8) in
that transaction; times are UNIX seconds (``clock()``); lists come in a stable order
(oldest first unless a method says otherwise); ``*_page`` methods return
``(items, total matching)``. Input is validated by the services before it gets here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from openplatform.models import App, Customer, Installation, Site, Spe
from openplatform.records import (
    ADMIN,
    AdminKey,
    Announce,
    AuditFilter,
    CustomerFilter,
    Delivery,
    InstallRow,
    Invalidation,
    Notify,
    TokenCounts,
    User,
    WebSession,
)

Clock = Callable[[], float]


class ManagementStore(Protocol):
    """SPEs, customers, apps and their secrets, installations, the audit log (SPEC §1, §5, §10)."""

    clock: Clock
    announce: Announce | None  # takes the (kind, key) changes a method committed (SPEC §8)

    async def close(self) -> None: ...
    async def create_spe(self, xspe: str, name: str) -> Spe: ...
    async def get_spe(self, xspe: str) -> Spe | None: ...
    async def list_spes(self) -> list[Spe]: ...
    async def spes_page(self, xspe: str | None, limit: int, offset: int) -> tuple[list[Spe], int]: ...
    async def create_customer(self, customer_id: str, xspe: str, name: str, contact: str = "") -> Customer: ...
    async def get_customer(self, customer_id: str) -> Customer | None: ...
    async def create_app(self, app: App, secret_hash: str, secret_enc: bytes) -> None: ...
    async def get_app(self, app_id: str) -> App | None: ...
    async def list_apps(self, owner_id: str | None = None) -> list[App]: ...
    async def apps_page(self, owner_id: str | None, limit: int, offset: int) -> tuple[list[App], int]: ...
    async def current_secret_enc(self, app_id: str) -> bytes | None: ...
    async def rotate_secret(self, app_id: str, secret_hash: str, secret_enc: bytes, grace: float) -> None:
        """The new secret becomes current; the previous one is accepted ``grace`` seconds more."""

    async def rekey_secrets(self, rekey: Callable[[str, str, bytes], tuple[str, bytes] | None]) -> int:
        """``rekey(app_id, secret_hash, secret_enc)`` for every stored secret, all in one transaction;
        a returned pair replaces the row's; the count of rows replaced."""

    async def set_app_status(self, app_id: str, status: str) -> bool: ...
    async def find_installation(self, app_id: str, xspe: str, customer_id: str | None) -> Installation | None: ...
    async def install(self, installation: Installation, notify: dict[str, object] | None = None) -> Installation:
        """The live installation of (app, SPE, customer): ``installation`` when new, else the one
        there (racing installs make one); ``notify`` is queued in the outbox with a new one."""

    async def uninstall(
        self, installation: Installation, notify: dict[str, object] | None = None, now: float | None = None
    ) -> bool:
        """End the installation and every token and code it backs; False when it had ended."""

    async def list_installations(self, app_id: str | None = None, xspe: str | None = None) -> list[Installation]: ...
    async def installations_page(
        self, app_id: str | None, xspe: str | None, limit: int, offset: int
    ) -> tuple[list[Installation], int]: ...
    async def get_installation(self, installation_id: str) -> Installation | None: ...
    async def audit(self, event: str, **fields: object) -> None:
        """Record an event of ``events.py`` (with ``records.audit_actor`` merged in)."""

    async def audit_page(self, spec: AuditFilter, limit: int, offset: int) -> tuple[list[dict[str, object]], int]:
        """Newest first: ``id``, ``at``, ``event``, ``app_id``, ``xspe``, ``customer_id``, ``ip``,
        ``occurrences`` and ``detail`` (a dict)."""


class DirectoryStore(Protocol):
    """Customers and sites of the Open APIs (SPEC §2.5); updates are optimistic on ``version``."""

    clock: Clock

    async def list_customers(self, spec: CustomerFilter, limit: int, offset: int) -> tuple[list[Customer], int]: ...
    async def create_customers(self, xspe: str, entries: Iterable[Mapping[str, str]]) -> list[Customer]:
        """Insert customers in one transaction, all or none: each entry's ``customer_id`` (made by
        the service, as ``ManagementStore.create_customer`` takes it), ``name``, and optionally
        ``contact`` ("") and ``status`` (active)."""

    async def update_customer(
        self, customer_id: str, changes: Mapping[str, object], expected_version: int | None
    ) -> tuple[Customer | None, list[Invalidation]]:
        """None when there is no such customer; ``records.VersionConflict`` when ``expected_version``
        is not the stored one."""

    async def delete_customer(self, customer_id: str, notify: Notify | None = None) -> tuple[bool, list[Invalidation]]:
        """Delete the customer, its sites, its installations (``notify`` builds each one's uninstall
        notification) and every token they back."""

    async def list_sites(
        self, customer_id: str, status: str | None, limit: int, offset: int
    ) -> tuple[list[Site], int]: ...
    async def get_site(self, site_id: str) -> Site | None: ...
    async def create_site(self, site_id: str, customer: Customer, name: str, domain: str, status: str) -> Site | None:
        """None when the customer is gone (deleted meanwhile). ``site_id`` is the service's to make."""

    async def update_site(
        self, site_id: str, changes: Mapping[str, object], expected_version: int | None
    ) -> Site | None: ...
    async def delete_site(self, site_id: str) -> bool: ...


class ConsoleStore(Protocol):
    """The screens' reads and edits that the CLI does not need (SPEC §4)."""

    clock: Clock

    async def search_customers(
        self, xspe: str, text: str = "", limit: int = 20, offset: int = 0
    ) -> tuple[list[Customer], int]: ...
    async def update_app(self, app_id: str, **values: object) -> None: ...
    async def current_secret_created_at(self, app_id: str) -> float | None: ...
    async def count_events_since(self, app_id: str, event: str, since: float) -> int: ...
    async def installs(
        self, app_id: str | None = None, xspe: str | None = None, customer_id: str | None = None
    ) -> list[InstallRow]: ...
    async def token_counts(self, app_id: str, since: float) -> TokenCounts: ...
    async def last_token_at(self, app_ids: Iterable[str]) -> dict[str, float]: ...
    async def recent_events(
        self, app_id: str, limit: int = 20, event: str | None = None
    ) -> list[dict[str, object]]: ...
    async def grants_per_bucket(self, app_id: str, ranges: Sequence[tuple[float, float]]) -> list[int]: ...
    async def denials_per_bucket(self, app_id: str, since: float, width: int) -> list[tuple[int, str, int]]: ...


class AccountStore(Protocol):
    """Users of the screens and their sessions, keyed by the keyed digest of the cookie (SPEC §4, §9)."""

    clock: Clock

    async def create_user(self, user: User) -> User:
        """``records.DuplicateEmail`` when the e-mail address is taken."""

    async def get_user(self, user_id: str) -> User | None: ...
    async def find_by_email(self, email: str) -> User | None: ...
    async def list_users(self) -> list[User]: ...
    async def users_page(self, xspe: str | None, limit: int, offset: int) -> tuple[list[User], int]: ...
    async def emails(self, user_ids: set[str]) -> dict[str, str]: ...
    async def update_user(self, user_id: str, **values: object) -> None: ...
    async def store_rehash(self, user_id: str, password_hash: str) -> None: ...
    async def create_session(self, digest: str, user_id: str, csrf_token: str, expires_at: float) -> None: ...
    async def get_session(self, digest: str, max_age: float) -> WebSession | None: ...
    async def touch_session(self, digest: str, expires_at: float) -> None: ...
    async def delete_session(self, digest: str) -> None: ...
    async def count_sessions(self, user_id: str) -> int: ...


class AdminKeyStore(Protocol):
    """Admin keys (SPEC §10), stored only as a keyed digest."""

    clock: Clock

    async def create(self, key_id: str, name: str, xspe: str | None, digest: str, scope: str = ADMIN) -> AdminKey: ...
    async def revoke(self, key_id: str) -> bool: ...
    async def live_by_digest(self, digest: str) -> AdminKey | None: ...
    async def list_keys(self) -> list[AdminKey]: ...
    async def touch(self, key_id: str, at: float) -> None: ...


class WebhookOutbox(Protocol):
    """The webhook outbox (SPEC §3): a due row is claimed by one sender at a time, for ``lease`` seconds."""

    async def claim(self, now: float, lease: float, max_attempts: int) -> Delivery | None: ...
    async def delivered(self, delivery_id: int, now: float) -> None: ...
    async def failed(self, delivery_id: int, error: str, retry_at: float) -> None: ...
    async def pending(self, max_attempts: int) -> int: ...
    async def requeue(
        self, delivery_id: int, app_id: str, now: float, max_attempts: int
    ) -> dict[str, object] | None: ...
    async def list(self, app_id: str | None = None, limit: int = 100) -> list[dict[str, object]]: ...


@dataclass
class Stores:
    """One backend's management side, built once per process (``runtime.build_stores``)."""

    management: ManagementStore
    directory: DirectoryStore
    console: ConsoleStore
    accounts: AccountStore
    admin_keys: AdminKeyStore
    outbox: WebhookOutbox

    def set_clock(self, clock: Clock) -> None:
        """Give every store ``clock`` (tests move time with a FakeClock)."""
        self.management.clock = self.directory.clock = self.console.clock = clock
        self.accounts.clock = self.admin_keys.clock = clock

    async def close(self) -> None:
        await self.management.close()
