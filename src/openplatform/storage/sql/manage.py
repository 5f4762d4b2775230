"""The management path on SQLAlchemy Core: SPEs, customers, apps, installations.

Not hot, so it favours clarity: each method is one transaction, and every change
that must reach running servers' caches appends to ``invalidations`` in it, and
after the commit is handed to ``announce`` (in a serving process: its cache,
which also publishes to Redis; in the CLI: Redis alone, when configured), so a
revocation reaches every node without waiting for their poll (SPEC §8).
Validation of user input lives in ``openplatform.services``; this layer trusts it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import orjson
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from openplatform.config import Settings
from openplatform.models import ACTIVE, App, Customer, Installation, Spe
from openplatform.storage.sql.rows import (
    AUDIT_COLUMNS,
    app_from_row,
    audit_values,
    customer_from_row,
    installation_from_row,
)
from openplatform.storage.sql.schema import (
    app_secrets,
    apps,
    audit_events,
    customers,
    installations,
    invalidations,
    spes,
    tokens,
)
from openplatform.storage.sql.webhooks import enqueue


def sqlalchemy_url(settings: Settings) -> str:
    if settings.is_sqlite:
        return f"sqlite+aiosqlite:///{settings.sqlite_path}"
    return "postgresql+asyncpg://" + settings.database_url.split("://", 1)[1]


def make_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(sqlalchemy_url(settings))
    if settings.is_sqlite:
        from sqlalchemy import event

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    return engine


DEADLOCK_RETRIES = 3
T = TypeVar("T")


def is_deadlock(exc: DBAPIError) -> bool:
    """PostgreSQL chose this transaction to break a deadlock (40P01) or a serialization conflict (40001)."""
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return code in ("40P01", "40001")


async def retrying_deadlocks(work: Callable[[], Awaitable[T]]) -> T:
    """Run a transaction, again when PostgreSQL aborted it to break a deadlock.

    A bulk revocation (``UPDATE tokens … WHERE installation_id``) locks many token
    rows while the group-commit writer may be rotating some of them in a batch, in
    another order: PostgreSQL then aborts one side. The writer replays its batch;
    a management transaction is tried again here, from the start (it changed
    nothing), so an uninstall never fails for it.
    """
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return await work()
        except DBAPIError as exc:
            if not is_deadlock(exc) or attempt == DEADLOCK_RETRIES - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def invalidate(conn: AsyncConnection, kind: str, key: str, now: float) -> None:
    await conn.execute(insert(invalidations).values(at=now, kind=kind, key=key))


Announce = Callable[[Sequence[tuple[str, str]]], Awaitable[None]]  # committed (kind, key) changes

# Who acts, merged into every audit event recorded while it is set: the admin API sets
# ``{"key_id": ..., "via": "admin_api"}`` around a request (web.manage_api), so the events
# the shared services record name the admin key (its id, never the key: SPEC §10).
audit_actor: ContextVar[Mapping[str, object] | None] = ContextVar("audit_actor", default=None)


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which audit events a listing shows (``None``: any); ``since``/``until`` in UNIX seconds, inclusive."""

    app_id: str | None = None
    xspe: str | None = None
    event: str | None = None
    since: float | None = None
    until: float | None = None


class Management:
    def __init__(
        self, engine: AsyncEngine, clock: Callable[[], float] = time.time, announce: Announce | None = None
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.announce = announce

    async def _announce(self, *changes: tuple[str, str]) -> None:
        if self.announce is not None:
            await self.announce(changes)

    async def close(self) -> None:
        await self.engine.dispose()

    # ----------------------------------------------------------- SPEs, customers

    async def create_spe(self, xspe: str, name: str) -> Spe:
        now = self.clock()
        async with self.engine.begin() as conn:
            await conn.execute(insert(spes).values(xspe=xspe, name=name, created_at=now))
        return Spe(xspe=xspe, name=name, created_at=now)

    async def get_spe(self, xspe: str) -> Spe | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(spes).where(spes.c.xspe == xspe))).mappings().first()
        return Spe(xspe=row["xspe"], name=row["name"], created_at=row["created_at"]) if row else None

    async def list_spes(self) -> list[Spe]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(spes).order_by(spes.c.created_at))).mappings().all()
        return [Spe(xspe=r["xspe"], name=r["name"], created_at=r["created_at"]) for r in rows]

    async def create_customer(self, customer_id: str, xspe: str, name: str, contact: str = "") -> Customer:
        now = self.clock()
        values = dict(
            customer_id=customer_id, xspe=xspe, name=name, contact=contact,
            status=ACTIVE, created_at=now, updated_at=now, version=1,
        )  # fmt: skip
        async with self.engine.begin() as conn:
            await conn.execute(insert(customers).values(**values))
        return Customer(**values)  # type: ignore[arg-type]

    async def get_customer(self, customer_id: str) -> Customer | None:
        async with self.engine.connect() as conn:
            query = select(customers).where(customers.c.customer_id == customer_id)
            row = (await conn.execute(query)).mappings().first()
        return customer_from_row(row) if row else None

    # ---------------------------------------------------------------------- apps

    async def create_app(self, app: App, secret_hash: str, secret_enc: bytes) -> None:
        now = self.clock()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(apps).values(
                    app_id=app.app_id,
                    name=app.name,
                    host_url=app.host_url,
                    webhook_url=app.webhook_url,
                    scopes=" ".join(app.scopes),
                    ip_whitelist=" ".join(app.ip_whitelist),
                    status=app.status,
                    owner_id=app.owner_id,
                    created_at=now,
                    updated_at=now,
                )  # fmt: skip
            )
            await conn.execute(
                insert(app_secrets).values(
                    app_id=app.app_id, secret_hash=secret_hash, secret_enc=secret_enc, created_at=now
                )
            )
            await invalidate(conn, "app", app.app_id, now)  # a node may remember it as missing
        await self._announce(("app", app.app_id))

    async def get_app(self, app_id: str) -> App | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(apps).where(apps.c.app_id == app_id))).mappings().first()
            if row is None:
                return None
            secrets = await self._secret_rows(conn, app_id)
        return app_from_row(row, secrets)

    async def list_apps(self, owner_id: str | None = None) -> list[App]:
        query = select(apps).order_by(apps.c.created_at)
        if owner_id is not None:
            query = query.where(apps.c.owner_id == owner_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [app_from_row(r, ()) for r in rows]

    async def _secret_rows(self, conn: AsyncConnection, app_id: str) -> Sequence[object]:
        query = select(app_secrets).where(app_secrets.c.app_id == app_id).order_by(app_secrets.c.id.desc())
        return (await conn.execute(query)).mappings().all()

    async def current_secret_enc(self, app_id: str) -> bytes | None:
        query = select(app_secrets.c.secret_enc).where(
            app_secrets.c.app_id == app_id, app_secrets.c.expires_at.is_(None)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).scalar()

    async def rotate_secret(self, app_id: str, secret_hash: str, secret_enc: bytes, grace: float) -> None:
        """The new secret becomes current; the previous one works ``grace`` seconds more.

        Only one old secret is kept: rotating again ends the previous grace period.
        """
        now = self.clock()
        async with self.engine.begin() as conn:
            await conn.execute(
                app_secrets.delete().where(app_secrets.c.app_id == app_id, app_secrets.c.expires_at.is_not(None))
            )
            if grace > 0:
                await conn.execute(
                    update(app_secrets)
                    .where(app_secrets.c.app_id == app_id, app_secrets.c.expires_at.is_(None))
                    .values(expires_at=now + grace)
                )
            else:
                await conn.execute(app_secrets.delete().where(app_secrets.c.app_id == app_id))
            await conn.execute(
                insert(app_secrets).values(
                    app_id=app_id, secret_hash=secret_hash, secret_enc=secret_enc, created_at=now
                )
            )
            await invalidate(conn, "app", app_id, now)
        await self._announce(("app", app_id))

    async def rekey_secrets(self, rekey: Callable[[str, str, bytes], tuple[str, bytes] | None]) -> int:
        """Re-seal app secrets (``openplatform db reencrypt``, SPEC §10); all or nothing.

        ``rekey(app_id, secret_hash, secret_enc)`` gives a row's new ``(secret_hash, secret_enc)``,
        or None to leave it. It runs on every row before anything is written, so whatever it
        raises leaves the table as it was; then one transaction writes, each update guarded
        by the row's old ciphertext (a row a concurrent rotation replaced meanwhile is left to
        it: its new secret is sealed afresh). Writing first, the transaction takes SQLite's write
        lock at once instead of failing to upgrade a read. Returns the number of rows re-sealed;
        their apps are invalidated in every cache.
        """
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(app_secrets).order_by(app_secrets.c.id))).mappings().all()
        resealed = [
            (row, sealed) for row in rows if (sealed := rekey(row["app_id"], row["secret_hash"], row["secret_enc"]))
        ]
        now = self.clock()
        count, changed = 0, set[str]()
        async with self.engine.begin() as conn:
            for row, (secret_hash, secret_enc) in resealed:
                result = await conn.execute(
                    update(app_secrets)
                    .where(app_secrets.c.id == row["id"], app_secrets.c.secret_enc == row["secret_enc"])
                    .values(secret_hash=secret_hash, secret_enc=secret_enc)
                )
                if result.rowcount == 1:
                    count += 1
                    changed.add(row["app_id"])
            for app_id in sorted(changed):
                await invalidate(conn, "app", app_id, now)
        await self._announce(*(("app", app_id) for app_id in sorted(changed)))
        return count

    async def set_app_status(self, app_id: str, status: str) -> bool:
        now = self.clock()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(apps).where(apps.c.app_id == app_id).values(status=status, updated_at=now)
            )
            await invalidate(conn, "app", app_id, now)
        await self._announce(("app", app_id))
        return bool(result.rowcount)

    # -------------------------------------------------------------- installations

    async def find_installation(self, app_id: str, xspe: str, customer_id: str | None) -> Installation | None:
        where = [
            installations.c.app_id == app_id,
            installations.c.xspe == xspe,
            installations.c.uninstalled_at.is_(None),
            installations.c.customer_id.is_(None)
            if customer_id is None
            else installations.c.customer_id == customer_id,
        ]
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(installations).where(and_(*where)))).mappings().first()
        return installation_from_row(row) if row else None

    async def install(self, installation: Installation, notify: dict[str, object] | None = None) -> None:
        """Record it; ``notify`` (a webhook payload) is queued in the same transaction."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(installations).values(
                    installation_id=installation.installation_id,
                    app_id=installation.app_id,
                    xspe=installation.xspe,
                    customer_id=installation.customer_id,
                    installed_at=installation.installed_at,
                )  # fmt: skip
            )
            await invalidate(conn, "app", installation.app_id, installation.installed_at)
            if notify is not None:
                await enqueue(conn, installation.app_id, "install", notify, installation.installed_at)
        await self._announce(("app", installation.app_id))

    async def uninstall(
        self, installation: Installation, notify: dict[str, object] | None = None, now: float | None = None
    ) -> None:
        """Mark it uninstalled and revoke every token it produced, at once.

        Its unused codes are left as they are: they stand on this installation,
        which ``core.lifecycle`` now refuses, with a sentence that says so (marking
        them used would make a later exchange look like a replay: SPEC §8).
        ``notify`` (a webhook payload) is queued in the same transaction.
        """
        now = self.clock() if now is None else now
        iid = installation.installation_id

        async def transaction() -> None:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(installations).where(installations.c.installation_id == iid).values(uninstalled_at=now)
                )
                await conn.execute(
                    update(tokens)
                    .where(tokens.c.installation_id == iid, tokens.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                await invalidate(conn, "installation", iid, now)
                await invalidate(conn, "app", installation.app_id, now)
                if notify is not None:
                    await enqueue(conn, installation.app_id, "uninstall", notify, now)

        await retrying_deadlocks(transaction)
        await self._announce(("installation", iid), ("app", installation.app_id))

    async def list_installations(self, app_id: str | None = None, xspe: str | None = None) -> list[Installation]:
        query = select(installations).order_by(installations.c.installed_at)
        if app_id is not None:
            query = query.where(installations.c.app_id == app_id)
        if xspe is not None:
            query = query.where(installations.c.xspe == xspe)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [installation_from_row(r) for r in rows]

    async def get_installation(self, installation_id: str) -> Installation | None:
        query = select(installations).where(installations.c.installation_id == installation_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return installation_from_row(row) if row else None

    # ---------------------------------------------------------------------- audit

    async def audit(self, event: str, **fields: object) -> None:
        actor = audit_actor.get()
        if actor:
            fields = {**actor, **fields}
        values = dict(zip(AUDIT_COLUMNS, audit_values(event, fields), strict=True))
        async with self.engine.begin() as conn:
            await conn.execute(insert(audit_events).values(at=self.clock(), **values))

    async def recent_audit(self, app_id: str | None = None, limit: int = 50) -> list[dict[str, object]]:
        query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
        if app_id is not None:
            query = query.where(audit_events.c.app_id == app_id)
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings().all()]

    async def audit_page(self, spec: AuditFilter, limit: int, offset: int) -> tuple[list[dict[str, object]], int]:
        """Audit events matching ``spec``, newest first, and how many match in all.

        Each event: ``id``, ``at`` (UNIX seconds), ``event``, ``app_id``, ``xspe``,
        ``customer_id``, ``ip``, ``occurrences`` and ``detail`` (the JSON object of its other fields).
        """
        where = [
            column == value
            for column, value in (
                (audit_events.c.app_id, spec.app_id), (audit_events.c.xspe, spec.xspe),
                (audit_events.c.event, spec.event),
            )
            if value is not None
        ]  # fmt: skip
        if spec.since is not None:
            where.append(audit_events.c.at >= spec.since)
        if spec.until is not None:
            where.append(audit_events.c.at <= spec.until)
        query = select(audit_events).where(*where).order_by(audit_events.c.id.desc())
        count = select(func.count()).select_from(audit_events).where(*where)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).mappings().all()
            total = int((await conn.execute(count)).scalar() or 0)
        names = [str(column.name) for column in audit_events.columns if column.name != "detail"]
        events = [{**{n: row[n] for n in names}, "detail": orjson.loads(row["detail"] or "{}")} for row in rows]
        return events, total
