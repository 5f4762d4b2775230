"""The management path on SQLAlchemy Core: SPEs, customers, apps, installations.

Not hot, so it favours clarity: each method is one transaction (statements in
SQLAlchemy Core, run through the process's one driver: ``storage.sql.database``),
and every change
that must reach running servers' caches appends to ``invalidations`` in it, and
after the commit is handed to ``announce`` (in a serving process: its cache,
which also publishes to Redis; in the CLI: Redis alone, when configured), so a
revocation reaches every node without waiting for their poll (SPEC §8).
Validation of user input lives in ``openplatform.services``; this layer trusts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import Select, and_, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from openplatform.models import ACTIVE, App, Customer, Installation, Spe
from openplatform.records import Announce, AuditFilter, audit_actor
from openplatform.storage.sql.changes import enqueue_webhook, invalidate
from openplatform.storage.sql.database import Conn, Database
from openplatform.storage.sql.driver import Row
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
    spes,
)


class SqlManagement:
    def __init__(
        self, database: Database, clock: Callable[[], float] = time.time, announce: Announce | None = None
    ) -> None:
        self.database = database
        self.clock = clock
        self.announce = announce

    async def _announce(self, *changes: tuple[str, str]) -> None:
        if self.announce is not None:
            await self.announce(changes)

    async def close(self) -> None:
        """Close the database (its driver); in a serving process the token store shares it, and
        closing it twice is harmless (``web/app.py``'s lifespan closes both)."""
        await self.database.close()

    # ----------------------------------------------------------- SPEs, customers

    async def create_spe(self, xspe: str, name: str) -> Spe:
        now = self.clock()
        await self.database.execute(insert(spes).values(xspe=xspe, name=name, created_at=now))
        return Spe(xspe=xspe, name=name, created_at=now)

    async def get_spe(self, xspe: str) -> Spe | None:
        row = await self.database.read_one(select(spes).where(spes.c.xspe == xspe))
        return _spe(row) if row else None

    async def paged(self, query: Select[Any], limit: int, offset: int) -> tuple[Sequence[Row], int]:
        """One page of ``query``'s rows (``limit`` rows from ``offset``) and how many it has in all.

        ``query`` is ordered down to a unique column, so pages neither repeat nor skip a row.
        """
        count = select(func.count()).select_from(query.order_by(None).subquery())
        rows = await self.database.read(query.limit(limit).offset(offset))
        return rows, int(await self.database.scalar(count) or 0)

    @staticmethod
    def _spes(xspe: str | None = None) -> Select[Any]:
        query = select(spes).order_by(spes.c.created_at, spes.c.xspe)
        return query if xspe is None else query.where(spes.c.xspe == xspe)

    async def list_spes(self) -> list[Spe]:
        return [_spe(r) for r in await self.database.read(self._spes())]

    async def spes_page(self, xspe: str | None, limit: int, offset: int) -> tuple[list[Spe], int]:
        """SPEs (only ``xspe`` if given), oldest first: one page and the total (the admin API)."""
        rows, total = await self.paged(self._spes(xspe), limit, offset)
        return [_spe(r) for r in rows], total

    async def create_customer(self, customer_id: str, xspe: str, name: str, contact: str = "") -> Customer:
        now = self.clock()
        values = dict(
            customer_id=customer_id, xspe=xspe, name=name, contact=contact,
            status=ACTIVE, created_at=now, updated_at=now, version=1,
        )  # fmt: skip
        await self.database.execute(insert(customers).values(**values))
        return Customer(**values)  # type: ignore[arg-type]

    async def get_customer(self, customer_id: str) -> Customer | None:
        row = await self.database.read_one(select(customers).where(customers.c.customer_id == customer_id))
        return customer_from_row(row) if row else None

    # ---------------------------------------------------------------------- apps

    async def create_app(self, app: App, secret_hash: str, secret_enc: bytes) -> None:
        now = self.clock()

        async def transaction(conn: Conn) -> None:
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

        await self.database.transaction(transaction)
        await self._announce(("app", app.app_id))

    async def get_app(self, app_id: str) -> App | None:
        row = await self.database.read_one(select(apps).where(apps.c.app_id == app_id))
        if row is None:
            return None
        return app_from_row(row, await self._secret_rows(app_id))

    @staticmethod
    def _apps(owner_id: str | None) -> Select[Any]:
        query = select(apps).order_by(apps.c.created_at, apps.c.app_id)
        return query if owner_id is None else query.where(apps.c.owner_id == owner_id)

    async def list_apps(self, owner_id: str | None = None) -> list[App]:
        return [app_from_row(r, ()) for r in await self.database.read(self._apps(owner_id))]

    async def apps_page(self, owner_id: str | None, limit: int, offset: int) -> tuple[list[App], int]:
        """Apps (of one owner if given), oldest first: one page and the total (the admin API)."""
        rows, total = await self.paged(self._apps(owner_id), limit, offset)
        return [app_from_row(r, ()) for r in rows], total

    async def _secret_rows(self, app_id: str) -> Sequence[Row]:
        query = select(app_secrets).where(app_secrets.c.app_id == app_id).order_by(app_secrets.c.id.desc())
        return await self.database.read(query)

    async def current_secret_enc(self, app_id: str) -> bytes | None:
        query = select(app_secrets.c.secret_enc).where(
            app_secrets.c.app_id == app_id, app_secrets.c.expires_at.is_(None)
        )
        return await self.database.scalar(query)  # type: ignore[no-any-return]

    async def rotate_secret(self, app_id: str, secret_hash: str, secret_enc: bytes, grace: float) -> None:
        """The new secret becomes current; the previous one works ``grace`` seconds more.

        Only one old secret is kept: rotating again ends the previous grace period.
        """
        now = self.clock()

        async def transaction(conn: Conn) -> None:
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

        await self.database.transaction(transaction)
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
        rows = await self.database.read(select(app_secrets).order_by(app_secrets.c.id))
        resealed = [
            (row, sealed) for row in rows if (sealed := rekey(row["app_id"], row["secret_hash"], row["secret_enc"]))
        ]
        now = self.clock()

        async def transaction(conn: Conn) -> tuple[int, list[str]]:
            count, changed = 0, set[str]()
            for row, (secret_hash, secret_enc) in resealed:
                updated = await conn.execute(
                    update(app_secrets)
                    .where(app_secrets.c.id == row["id"], app_secrets.c.secret_enc == row["secret_enc"])
                    .values(secret_hash=secret_hash, secret_enc=secret_enc)
                )
                if updated == 1:
                    count += 1
                    changed.add(row["app_id"])
            for app_id in sorted(changed):
                await invalidate(conn, "app", app_id, now)
            return count, sorted(changed)

        count, changed = await self.database.transaction(transaction)
        await self._announce(*(("app", app_id) for app_id in changed))
        return count

    async def set_app_status(self, app_id: str, status: str) -> bool:
        now = self.clock()

        async def transaction(conn: Conn) -> int:
            changed = await conn.execute(
                update(apps).where(apps.c.app_id == app_id).values(status=status, updated_at=now)
            )
            await invalidate(conn, "app", app_id, now)
            return changed

        changed = await self.database.transaction(transaction)
        await self._announce(("app", app_id))
        return bool(changed)

    # -------------------------------------------------------------- installations

    async def find_installation(self, app_id: str, xspe: str, customer_id: str | None) -> Installation | None:
        row = await self.database.read_one(select(installations).where(_live_installation(app_id, xspe, customer_id)))
        return installation_from_row(row) if row else None

    async def install(self, installation: Installation, notify: dict[str, object] | None = None) -> Installation:
        """Record it, unless the app is live there already: then that installation is returned and
        nothing is written. ``notify`` (a webhook payload) is queued in the same transaction.

        The look and the insert are one transaction holding the app's row (``FOR NO KEY UPDATE`` on
        PostgreSQL: installs of one app take turns, while rows that only refer to the app, tokens
        and audit events, are not held up; SQLite's writer runs transactions one at a time). Looked
        up apart, two installs at once both found none and both inserted, and uninstalling one left
        the app installed through the other (SPEC §8).
        """

        async def transaction(conn: Conn) -> Installation:
            app_row = select(apps.c.app_id).where(apps.c.app_id == installation.app_id)
            await conn.fetch(app_row.with_for_update(key_share=True))
            live = _live_installation(installation.app_id, installation.xspe, installation.customer_id)
            found = await conn.fetch(select(installations).where(live).limit(1))
            if found:
                return installation_from_row(found[0])
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
                await enqueue_webhook(conn, installation.app_id, "install", notify, installation.installed_at)
            return installation

        stored = await self.database.transaction(transaction)
        if stored is installation:
            await self._announce(("app", installation.app_id))
        return stored

    async def uninstall(
        self, installation: Installation, notify: dict[str, object] | None = None, now: float | None = None
    ) -> bool:
        """Mark it uninstalled, which ends every token it produced at once; False (and nothing
        written) when it was uninstalled already, by an uninstall running at the same time too.

        Its tokens are not updated: every use of a user token reads its installation with it
        (SPEC §8's backing, ``core.lifecycle``), which refuses it from now on, and a new install
        is a new installation. Finding them needed an index that each issued token entered at
        its installation's old page (migration 0010; docs/benchmarks.md).

        Its unused codes are left as they are: they stand on this installation,
        which ``core.lifecycle`` now refuses, with a sentence that says so (marking
        them used would make a later exchange look like a replay: SPEC §8).
        ``notify`` (a webhook payload) is queued in the same transaction.
        """
        now = self.clock() if now is None else now
        iid = installation.installation_id

        async def transaction(conn: Conn) -> bool:
            ended = await conn.execute(
                update(installations)
                .where(installations.c.installation_id == iid, installations.c.uninstalled_at.is_(None))
                .values(uninstalled_at=now)
            )  # on PostgreSQL a concurrent uninstall's update waits for this one, then changes nothing
            if not ended:
                return False
            await invalidate(conn, "installation", iid, now)
            await invalidate(conn, "app", installation.app_id, now)
            if notify is not None:
                await enqueue_webhook(conn, installation.app_id, "uninstall", notify, now)
            return True

        if not await self.database.transaction(transaction):
            return False
        await self._announce(("installation", iid), ("app", installation.app_id))
        return True

    @staticmethod
    def _installations(app_id: str | None, xspe: str | None) -> Select[Any]:
        query = select(installations).order_by(installations.c.installed_at, installations.c.installation_id)
        if app_id is not None:
            query = query.where(installations.c.app_id == app_id)
        if xspe is not None:
            query = query.where(installations.c.xspe == xspe)
        return query

    async def list_installations(self, app_id: str | None = None, xspe: str | None = None) -> list[Installation]:
        return [installation_from_row(r) for r in await self.database.read(self._installations(app_id, xspe))]

    async def installations_page(
        self, app_id: str | None, xspe: str | None, limit: int, offset: int
    ) -> tuple[list[Installation], int]:
        """Installations (of one app, in one SPE, or both), oldest first: one page and the total."""
        rows, total = await self.paged(self._installations(app_id, xspe), limit, offset)
        return [installation_from_row(r) for r in rows], total

    async def get_installation(self, installation_id: str) -> Installation | None:
        query = select(installations).where(installations.c.installation_id == installation_id)
        row = await self.database.read_one(query)
        return installation_from_row(row) if row else None

    # ---------------------------------------------------------------------- audit

    async def audit(self, event: str, **fields: object) -> None:
        actor = audit_actor.get()
        if actor:
            fields = {**actor, **fields}
        values = dict(zip(AUDIT_COLUMNS, audit_values(event, fields), strict=True))
        await self.database.execute(insert(audit_events).values(at=self.clock(), **values))

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
        rows = await self.database.read(query.limit(limit).offset(offset))
        total = int(await self.database.scalar(count) or 0)
        names = [str(column.name) for column in audit_events.columns if column.name != "detail"]
        events = [{**{n: row[n] for n in names}, "detail": orjson.loads(row["detail"] or "{}")} for row in rows]
        return events, total


def _live_installation(app_id: str, xspe: str, customer_id: str | None) -> ColumnElement[bool]:
    """The live installation of an app for one customer, or for the whole SPE (``customer_id`` None)."""
    return and_(
        installations.c.app_id == app_id,
        installations.c.xspe == xspe,
        installations.c.uninstalled_at.is_(None),
        installations.c.customer_id.is_(None) if customer_id is None else installations.c.customer_id == customer_id,
    )


def _spe(row: Row) -> Spe:
    return Spe(xspe=row["xspe"], name=row["name"], created_at=row["created_at"])
