"""Reads and edits of the management screens that the CLI does not need.

Customer search and paging, app edits, installations with names, token activity,
audit events. Edits that running servers cache (apps, customers) append to
``invalidations`` in the same transaction, like every other management write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, case, cast, func, literal_column, or_, select, update

from openplatform import events
from openplatform.models import Customer
from openplatform.records import InstallRow, TokenCounts
from openplatform.storage.sql.changes import invalidate
from openplatform.storage.sql.database import Conn, Database
from openplatform.storage.sql.rows import customer_from_row
from openplatform.storage.sql.schema import (
    app_secrets,
    apps,
    audit_events,
    customers,
    installations,
    spes,
)

# Audit events that issue an access token (a refresh retried within the leeway, token.refresh_retried,
# gets the pair already issued: not counted).
ISSUING_EVENTS = (events.TOKEN_ISSUED, events.TOKEN_REFRESHED)
LAST_TOKEN_CHUNK = 200  # apps per statement of last_token_at (two columns each)


def _like(column: ColumnElement[str], text: str) -> ColumnElement[bool]:
    return column.icontains(text, autoescape=True)


class SqlConsole:
    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock

    # ------------------------------------------------------------------ customers

    async def search_customers(
        self, xspe: str, text: str = "", limit: int = 20, offset: int = 0
    ) -> tuple[list[Customer], int]:
        """A page of the SPE's customers whose name, contact or id contains ``text``."""
        where = [customers.c.xspe == xspe]
        if text:
            where.append(or_(*(_like(c, text) for c in (customers.c.name, customers.c.contact,
                                                          customers.c.customer_id))))  # fmt: skip
        query = select(customers).where(*where).order_by(customers.c.name, customers.c.customer_id)
        count = select(func.count()).select_from(customers).where(*where)
        total = int(await self.database.scalar(count) or 0)
        rows = await self.database.read(query.limit(limit).offset(offset))
        return [customer_from_row(r) for r in rows], total

    # ----------------------------------------------------------------------- apps

    async def update_app(self, app_id: str, **values: object) -> None:
        now = self.clock()

        async def transaction(conn: Conn) -> None:
            await conn.execute(update(apps).where(apps.c.app_id == app_id).values(updated_at=now, **values))
            await invalidate(conn, "app", app_id, now)

        await self.database.transaction(transaction)

    async def current_secret_created_at(self, app_id: str) -> float | None:
        query = select(app_secrets.c.created_at).where(
            app_secrets.c.app_id == app_id, app_secrets.c.expires_at.is_(None)
        )
        return await self.database.scalar(query)  # type: ignore[no-any-return]

    async def count_events_since(self, app_id: str, event: str, since: float) -> int:
        query = select(func.sum(audit_events.c.occurrences)).where(
            audit_events.c.app_id == app_id, audit_events.c.event == event, audit_events.c.at >= since
        )
        return int(await self.database.scalar(query) or 0)

    # ------------------------------------------------------------- installations

    def _install_query(self) -> Select[Any]:
        return (
            select(
                installations,
                apps.c.name.label("app_name"),
                apps.c.host_url,
                apps.c.status.label("app_status"),
                spes.c.name.label("spe_name"),
                customers.c.name.label("customer_name"),
            )  # fmt: skip
            .join(apps, apps.c.app_id == installations.c.app_id)
            .join(spes, spes.c.xspe == installations.c.xspe)
            .outerjoin(customers, customers.c.customer_id == installations.c.customer_id)
            .where(installations.c.uninstalled_at.is_(None))
            .order_by(installations.c.installed_at)
        )

    async def installs(
        self, app_id: str | None = None, xspe: str | None = None, customer_id: str | None = None
    ) -> list[InstallRow]:
        """Active installations of an app, at an SPE, or for a customer (with SPE-wide ones)."""
        query = self._install_query()
        if app_id is not None:
            query = query.where(installations.c.app_id == app_id)
        if xspe is not None:
            query = query.where(installations.c.xspe == xspe)
        if customer_id is not None:
            query = query.where(or_(installations.c.customer_id == customer_id, installations.c.customer_id.is_(None)))
        return [
            InstallRow(
                r["installation_id"],
                r["app_id"],
                r["app_name"],
                r["host_url"],
                r["app_status"],
                r["xspe"],
                r["spe_name"],
                r["customer_id"],
                r["customer_name"],
                r["installed_at"],
            )  # fmt: skip
            for r in await self.database.read(query)
        ]

    # ------------------------------------------------------------ token activity

    async def token_counts(self, app_id: str, since: float) -> TokenCounts:
        """Access tokens issued since ``since``, from the audit log: user tokens and app tokens."""
        is_app, times = audit_events.c.customer_id.is_(None), audit_events.c.occurrences
        query = select(func.sum(case((is_app, 0), else_=times)), func.sum(case((is_app, times), else_=0))).where(
            audit_events.c.app_id == app_id, audit_events.c.event.in_(ISSUING_EVENTS), audit_events.c.at >= since
        )
        row = await self.database.read_one(query)  # an aggregate: always one row
        user_count, app_count = row if row is not None else (0, 0)
        return TokenCounts(int(user_count or 0), int(app_count or 0))

    async def last_token_at(self, app_ids: Iterable[str]) -> dict[str, float]:
        """When each app last got an access token (from the audit log).

        One ``max(at)`` per app and issuing event, each a single seek at the end of its range of
        ``ix_audit_events_app_event_at``: a GROUP BY app_id would read every row of those apps.
        """
        ids = sorted(set(app_ids))
        result: dict[str, float] = {}
        per_app, at = len(ISSUING_EVENTS), audit_events.c.at
        for first in range(0, len(ids), LAST_TOKEN_CHUNK):  # a statement's columns are bounded (SQLite: 2000)
            chunk = ids[first : first + LAST_TOKEN_CHUNK]
            latest = [
                select(func.max(at)).where(audit_events.c.app_id == app_id, audit_events.c.event == event)
                .scalar_subquery()
                for app_id in chunk for event in ISSUING_EVENTS
            ]  # fmt: skip
            row = await self.database.read_one(select(*latest))
            found = list(row) if row is not None else []
            for i, app_id in enumerate(chunk):
                ats = [at for at in found[i * per_app : (i + 1) * per_app] if at is not None]
                if ats:
                    result[app_id] = max(ats)
        return result

    async def recent_events(self, app_id: str, limit: int = 20, event: str | None = None) -> list[dict[str, object]]:
        """An app's newest audit rows (of one ``event`` when given), newest first: each a dict of the
        ``audit_events`` columns (``at`` in UNIX seconds, ``detail`` a JSON text). Read along
        ``ix_audit_events_app_at`` (or ``ix_audit_events_app_event_at`` with an event): no sort."""
        where = [audit_events.c.app_id == app_id]
        if event is not None:
            where.append(audit_events.c.event == event)
        query = (
            select(audit_events).where(*where)
            .order_by(audit_events.c.at.desc(), audit_events.c.id.desc()).limit(limit)
        )  # fmt: skip
        return [dict(r) for r in await self.database.read(query)]

    async def grants_per_bucket(self, app_id: str, ranges: Sequence[tuple[float, float]]) -> list[int]:
        """Access tokens issued (``ISSUING_EVENTS``, occurrences counted) in each ``[start, end)``
        of ``ranges`` (UNIX seconds), in that order.

        One statement of one scalar subquery per range: each is a range of the covering index
        ``ix_audit_events_app_event_at`` (app_id, event, at, occurrences), so no table row is read
        and nothing is sorted — a GROUP BY over a computed bucket sorts every row of the period
        (about 4 times slower on 200,000 rows, docs/benchmarks.md).
        """
        if not ranges:
            return []
        columns = [
            select(func.coalesce(func.sum(audit_events.c.occurrences), 0)).where(
                audit_events.c.app_id == app_id, audit_events.c.event.in_(ISSUING_EVENTS),
                audit_events.c.at >= start, audit_events.c.at < end,
            ).scalar_subquery()
            for start, end in ranges
        ]  # fmt: skip
        row = await self.database.read_one(select(*columns))
        return [int(n or 0) for n in row] if row is not None else [0] * len(ranges)

    async def denials_per_bucket(self, app_id: str, since: float, width: int) -> list[tuple[int, str, int]]:
        """Refused token requests (``token.denied``) since ``since``: ``(bucket, detail, count)`` rows,
        ``bucket`` = ``floor(at / width)`` (UNIX seconds / width), ``detail`` the row's JSON text
        (its ``error`` is the reason). Refusals are few next to grants and identical ones of a
        group commit are one row, so grouping them (the index finds them) stays cheap.
        """
        at = audit_events.c.at
        # The width is written into the SQL: as a parameter it would be two different ones in SELECT
        # and GROUP BY, which PostgreSQL refuses. It rounds a float cast to integer, SQLite
        # truncates (and has no floor() before 3.35).
        per = at / literal_column(str(int(width)))
        bucket = func.floor(per) if self.database.postgres else cast(per, Integer)
        query = (
            select(bucket.label("bucket"), audit_events.c.detail, func.sum(audit_events.c.occurrences))
            .where(audit_events.c.app_id == app_id, audit_events.c.event == events.TOKEN_DENIED, at >= since)
            .group_by(bucket, audit_events.c.detail)
        )  # fmt: skip
        return [(int(b), str(detail), int(n or 0)) for b, detail, n in await self.database.read(query)]
