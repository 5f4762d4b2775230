"""The management path in memory: SPEs, customers, apps and their secrets, installations, the audit log.

The twin of ``storage/sql/manage.py`` (``SqlManagement``) on the tables of the shared
``MemoryStore``: the same methods, orderings, paging totals, invalidation records,
outbox rows, ``announce`` calls and audit rows (``tests/storage/test_contract_manage.py``
runs the same tests on both). Each method is one step: it yields to the event loop
once (a database round trip, so racing callers interleave), then reads and writes
without awaiting, which is atomic on one event loop; then it awaits ``announce``, as
the SQL version does after its commit (SPEC §8).

Where the database refuses a write (a primary key taken, a foreign key naming
nothing), this raises ``openplatform.errors.IntegrityError`` and writes nothing, as the
SQL version's driver does. The services check
before they write, so neither is raised in normal use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable

import orjson

from openplatform.errors import IntegrityError
from openplatform.models import ACTIVE, App, AppSecret, Customer, Installation, Spe
from openplatform.records import Announce, AuditFilter, audit_actor
from openplatform.storage.memory.store import AuditEvent, MemoryStore, SecretRow, page


class MemoryManagement:
    """``storage.sql.manage.SqlManagement`` in memory; ``clock`` gives UNIX seconds (a test's FakeClock)."""

    def __init__(
        self, store: MemoryStore, clock: Callable[[], float] = time.time, announce: Announce | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.announce = announce

    async def _announce(self, *changes: tuple[str, str]) -> None:
        if self.announce is not None:
            await self.announce(changes)

    async def close(self) -> None:
        """Close the store; the token side shares it, and closing it twice is harmless."""
        await self.store.close()

    # ----------------------------------------------------------- SPEs, customers

    async def create_spe(self, xspe: str, name: str) -> Spe:
        """IntegrityError when ``xspe`` is taken."""
        await asyncio.sleep(0)
        if xspe in self.store.spes:
            raise IntegrityError(f"an SPE {xspe} exists")
        spe = self.store.spes[xspe] = Spe(xspe=xspe, name=name, created_at=self.clock())
        return spe

    async def get_spe(self, xspe: str) -> Spe | None:
        await asyncio.sleep(0)
        return self.store.spes.get(xspe)

    def _spes(self, xspe: str | None) -> list[Spe]:
        """Oldest first (then by xspe, so the order is total)."""
        spes = [s for s in self.store.spes.values() if xspe is None or s.xspe == xspe]
        return sorted(spes, key=lambda s: (s.created_at, s.xspe))

    async def list_spes(self) -> list[Spe]:
        await asyncio.sleep(0)
        return self._spes(None)

    async def spes_page(self, xspe: str | None, limit: int, offset: int) -> tuple[list[Spe], int]:
        """SPEs (only ``xspe`` if given), oldest first: one page and the total (the admin API)."""
        await asyncio.sleep(0)
        return page(self._spes(xspe), limit, offset)

    async def create_customer(self, customer_id: str, xspe: str, name: str, contact: str = "") -> Customer:
        """IntegrityError when ``customer_id`` is taken or no SPE ``xspe`` exists."""
        await asyncio.sleep(0)
        if customer_id in self.store.customers:
            raise IntegrityError(f"a customer {customer_id} exists")
        if xspe not in self.store.spes:
            raise IntegrityError(f"no SPE {xspe}")
        now = self.clock()
        customer = Customer(
            customer_id=customer_id, xspe=xspe, name=name, contact=contact,
            status=ACTIVE, created_at=now, updated_at=now, version=1,
        )  # fmt: skip
        self.store.customers[customer_id] = customer
        return customer

    async def get_customer(self, customer_id: str) -> Customer | None:
        await asyncio.sleep(0)
        return self.store.customers.get(customer_id)

    # ---------------------------------------------------------------------- apps

    async def create_app(self, app: App, secret_hash: str, secret_enc: bytes) -> None:
        """Store ``app`` (created now, whatever its ``created_at``) with its first secret;
        IntegrityError when ``app.app_id`` is taken."""
        await asyncio.sleep(0)
        if app.app_id in self.store.apps:
            raise IntegrityError(f"an app {app.app_id} exists")
        now = self.clock()
        # Scopes and the whitelist are stored space-separated and read back split, as on SQL.
        self.store.apps[app.app_id] = dataclasses.replace(
            app, scopes=_words(app.scopes), ip_whitelist=_words(app.ip_whitelist), secrets=(), created_at=now
        )
        self._add_secret(app.app_id, secret_hash, secret_enc, now)
        self.store.sync_secrets(app.app_id)
        self.store.invalidate("app", app.app_id, now)  # a node may remember it as missing
        await self._announce(("app", app.app_id))

    async def get_app(self, app_id: str) -> App | None:
        """The app with its secrets, newest first; None when there is no such app."""
        await asyncio.sleep(0)
        app = self.store.apps.get(app_id)
        if app is None:
            return None
        secrets = tuple(AppSecret(row.secret_hash, row.expires_at) for row in self._secret_rows(app_id))
        return dataclasses.replace(app, secrets=secrets)

    def _apps(self, owner_id: str | None) -> list[App]:
        """Oldest first (then by app_id), without their secrets (as the SQL listings)."""
        apps = [a for a in self.store.apps.values() if owner_id is None or a.owner_id == owner_id]
        return [dataclasses.replace(a, secrets=()) for a in sorted(apps, key=lambda a: (a.created_at, a.app_id))]

    async def list_apps(self, owner_id: str | None = None) -> list[App]:
        await asyncio.sleep(0)
        return self._apps(owner_id)

    async def apps_page(self, owner_id: str | None, limit: int, offset: int) -> tuple[list[App], int]:
        """Apps (of one owner if given), oldest first: one page and the total (the admin API)."""
        await asyncio.sleep(0)
        return page(self._apps(owner_id), limit, offset)

    def _secret_rows(self, app_id: str) -> list[SecretRow]:
        """The app's secret rows, newest first."""
        return sorted((r for r in self.store.secret_rows.values() if r.app_id == app_id), key=lambda r: -r.id)

    def _add_secret(self, app_id: str, secret_hash: str, secret_enc: bytes, now: float) -> None:
        row_id = self.store.next_id("app_secrets")
        self.store.secret_rows[row_id] = SecretRow(row_id, app_id, secret_hash, secret_enc, created_at=now)

    async def current_secret_enc(self, app_id: str) -> bytes | None:
        """The current secret, sealed; None when there is no such app."""
        await asyncio.sleep(0)
        current = [r for r in self._secret_rows(app_id) if r.expires_at is None]
        return current[-1].secret_enc if current else None

    async def rotate_secret(self, app_id: str, secret_hash: str, secret_enc: bytes, grace: float) -> None:
        """The new secret becomes current; the previous one works ``grace`` seconds more.

        Only one old secret is kept: rotating again ends the previous grace period.
        IntegrityError (nothing written) when there is no such app.
        """
        await asyncio.sleep(0)
        if app_id not in self.store.apps:
            raise IntegrityError(f"no app {app_id}")
        now = self.clock()
        rows = self.store.secret_rows
        for row in self._secret_rows(app_id):
            if row.expires_at is not None or grace <= 0:
                del rows[row.id]
            else:
                rows[row.id] = dataclasses.replace(row, expires_at=now + grace)
        self._add_secret(app_id, secret_hash, secret_enc, now)
        self.store.sync_secrets(app_id)
        self.store.invalidate("app", app_id, now)
        await self._announce(("app", app_id))

    async def rekey_secrets(self, rekey: Callable[[str, str, bytes], tuple[str, bytes] | None]) -> int:
        """Re-seal app secrets (``openplatform db reencrypt``, SPEC §10); all or nothing.

        ``rekey(app_id, secret_hash, secret_enc)`` gives a row's new ``(secret_hash, secret_enc)``,
        or None to leave it; it runs on every row (oldest first) before anything is written, so
        whatever it raises leaves the table as it was. Returns the number of rows re-sealed;
        their apps are invalidated in every cache (in app_id order). Reading and writing are one
        step here, so no rotation can come between them (on SQL, the update is guarded instead).
        """
        await asyncio.sleep(0)
        rows = sorted(self.store.secret_rows.values(), key=lambda r: r.id)
        resealed = [(row, sealed) for row in rows if (sealed := rekey(row.app_id, row.secret_hash, row.secret_enc))]
        for row, (secret_hash, secret_enc) in resealed:
            self.store.secret_rows[row.id] = dataclasses.replace(row, secret_hash=secret_hash, secret_enc=secret_enc)
        changed = sorted({row.app_id for row, _sealed in resealed})
        now = self.clock()
        for app_id in changed:
            self.store.sync_secrets(app_id)
            self.store.invalidate("app", app_id, now)
        await self._announce(*(("app", app_id) for app_id in changed))
        return len(resealed)

    async def set_app_status(self, app_id: str, status: str) -> bool:
        """False when there is no such app; the invalidation is recorded (and announced) either way."""
        await asyncio.sleep(0)
        now = self.clock()
        app = self.store.apps.get(app_id)
        if app is not None:
            self.store.apps[app_id] = dataclasses.replace(app, status=status)
        self.store.invalidate("app", app_id, now)
        await self._announce(("app", app_id))
        return app is not None

    # -------------------------------------------------------------- installations

    async def find_installation(self, app_id: str, xspe: str, customer_id: str | None) -> Installation | None:
        await asyncio.sleep(0)
        return self.store.live_installation(app_id, xspe, customer_id)

    async def install(self, installation: Installation, notify: dict[str, object] | None = None) -> Installation:
        """Record it, unless the app is live there already: then that installation is returned and
        nothing is written. ``notify`` (a webhook payload) is queued in the same step.

        The look and the insert are one step, so of installs racing for one (app, SPE, customer)
        exactly one inserts (SPEC §8). IntegrityError (nothing written) when its id is taken or its
        app, SPE or customer does not exist.
        """
        await asyncio.sleep(0)
        found = self.store.live_installation(installation.app_id, installation.xspe, installation.customer_id)
        if found is not None:
            return found
        self._check_references(installation)
        at = installation.installed_at
        self.store.installations[installation.installation_id] = installation
        self.store.invalidate("app", installation.app_id, at)
        if notify is not None:
            self.store.enqueue_webhook(installation.app_id, "install", dict(notify), at)
        await self._announce(("app", installation.app_id))
        return installation

    def _check_references(self, installation: Installation) -> None:
        """IntegrityError unless the installation is new and names an existing app, SPE and customer."""
        store = self.store
        if installation.installation_id in store.installations:
            raise IntegrityError(f"an installation {installation.installation_id} exists")
        if installation.app_id not in store.apps or installation.xspe not in store.spes:
            raise IntegrityError(f"no app {installation.app_id} or no SPE {installation.xspe}")
        if installation.customer_id is not None and installation.customer_id not in store.customers:
            raise IntegrityError(f"no customer {installation.customer_id}")

    async def uninstall(
        self, installation: Installation, notify: dict[str, object] | None = None, now: float | None = None
    ) -> bool:
        """Mark it uninstalled, which ends every token it produced at once; False (and nothing
        written) when it was uninstalled already, by an uninstall running at the same time too.

        Its tokens and unused codes are left as they are: they stand on this installation,
        which ``core.lifecycle`` now refuses (SPEC §8), as the SQL twin's. ``notify`` (a webhook payload)
        is queued in the same step.
        """
        now = self.clock() if now is None else now
        iid = installation.installation_id
        await asyncio.sleep(0)
        stored = self.store.installations.get(iid)
        if stored is None or stored.uninstalled_at is not None:
            return False
        self.store.installations[iid] = dataclasses.replace(stored, uninstalled_at=now)
        self.store.invalidate("installation", iid, now)
        self.store.invalidate("app", installation.app_id, now)
        if notify is not None:
            self.store.enqueue_webhook(installation.app_id, "uninstall", dict(notify), now)
        await self._announce(("installation", iid), ("app", installation.app_id))
        return True

    def _installations(self, app_id: str | None, xspe: str | None) -> list[Installation]:
        """Oldest first (then by installation_id), of one app, in one SPE, or both."""
        found = [
            i
            for i in self.store.installations.values()
            if (app_id is None or i.app_id == app_id) and (xspe is None or i.xspe == xspe)
        ]
        return sorted(found, key=lambda i: (i.installed_at, i.installation_id))

    async def list_installations(self, app_id: str | None = None, xspe: str | None = None) -> list[Installation]:
        await asyncio.sleep(0)
        return self._installations(app_id, xspe)

    async def installations_page(
        self, app_id: str | None, xspe: str | None, limit: int, offset: int
    ) -> tuple[list[Installation], int]:
        """Installations (of one app, in one SPE, or both), oldest first: one page and the total."""
        await asyncio.sleep(0)
        return page(self._installations(app_id, xspe), limit, offset)

    async def get_installation(self, installation_id: str) -> Installation | None:
        await asyncio.sleep(0)
        return self.store.installations.get(installation_id)

    # ---------------------------------------------------------------------- audit

    async def audit(self, event: str, **fields: object) -> None:
        """Record an event at ``clock()``, with the acting admin key's fields (``records.audit_actor``) merged in."""
        await asyncio.sleep(0)
        actor = audit_actor.get()
        if actor:
            fields = {**actor, **fields}
        self.store.audit_events.append(AuditEvent(self.clock(), event, fields, self.store.next_id("audit_events")))

    def _newest_first(self) -> list[AuditEvent]:
        return sorted(self.store.audit_events, key=lambda e: -e.id)

    async def audit_page(self, spec: AuditFilter, limit: int, offset: int) -> tuple[list[dict[str, object]], int]:
        """Audit events matching ``spec``, newest first, and how many match in all.

        Each event: ``id``, ``at`` (UNIX seconds), ``event``, ``app_id``, ``xspe``,
        ``customer_id``, ``ip``, ``occurrences`` and ``detail`` (the JSON object of its other fields).
        """
        await asyncio.sleep(0)
        matching = [e for e in self._newest_first() if _matches(e, spec)]
        found, total = page(matching, limit, offset)
        events = []
        for event in found:
            row = event.row()
            detail = orjson.loads(str(row.pop("detail")))
            events.append({**row, "detail": detail})
        return events, total


def _words(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(" ".join(values).split())


def _matches(event: AuditEvent, spec: AuditFilter) -> bool:
    fields = event.fields
    return (
        (spec.app_id is None or fields.get("app_id") == spec.app_id)
        and (spec.xspe is None or fields.get("xspe") == spec.xspe)
        and (spec.event is None or event.event == spec.event)
        and (spec.since is None or event.at >= spec.since)
        and (spec.until is None or event.at <= spec.until)
    )
