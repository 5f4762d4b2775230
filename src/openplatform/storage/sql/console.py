"""Reads and edits of the management screens that the CLI does not need.

Customer search and paging, app edits, installations with names, token activity,
audit events. Edits that running servers cache (apps, customers) append to
``invalidations`` in the same transaction, like every other management write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from openplatform import events
from openplatform.models import Customer
from openplatform.storage.sql.manage import invalidate
from openplatform.storage.sql.rows import customer_from_row
from openplatform.storage.sql.schema import (
    app_secrets,
    apps,
    audit_events,
    customers,
    installations,
    spes,
)

# Audit events that hand out a new access token (a refresh repeated within the leeway counts too).
ISSUING_EVENTS = (events.TOKEN_ISSUED, events.TOKEN_REFRESHED)


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


def _like(column: ColumnElement[str], text: str) -> ColumnElement[bool]:
    return column.icontains(text, autoescape=True)


class ConsoleQueries:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
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
        async with self.engine.connect() as conn:
            total = int((await conn.execute(count)).scalar() or 0)
            rows = (await conn.execute(query.limit(limit).offset(offset))).mappings().all()
        return [customer_from_row(r) for r in rows], total

    # ----------------------------------------------------------------------- apps

    async def update_app(self, app_id: str, **values: object) -> None:
        now = self.clock()
        async with self.engine.begin() as conn:
            await conn.execute(update(apps).where(apps.c.app_id == app_id).values(updated_at=now, **values))
            await invalidate(conn, "app", app_id, now)

    async def current_secret_created_at(self, app_id: str) -> float | None:
        query = select(app_secrets.c.created_at).where(
            app_secrets.c.app_id == app_id, app_secrets.c.expires_at.is_(None)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).scalar()

    async def count_events_since(self, app_id: str, event: str, since: float) -> int:
        query = select(func.sum(audit_events.c.occurrences)).where(
            audit_events.c.app_id == app_id, audit_events.c.event == event, audit_events.c.at >= since
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    # ------------------------------------------------------------- installations

    def _install_query(self) -> object:
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
            query = query.where(installations.c.app_id == app_id)  # type: ignore[attr-defined]
        if xspe is not None:
            query = query.where(installations.c.xspe == xspe)  # type: ignore[attr-defined]
        if customer_id is not None:
            query = query.where(  # type: ignore[attr-defined]
                or_(installations.c.customer_id == customer_id, installations.c.customer_id.is_(None))
            )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()  # type: ignore[call-overload]
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
            for r in rows
        ]

    # ------------------------------------------------------------ token activity

    async def token_counts(self, app_id: str, since: float) -> TokenCounts:
        """Access tokens issued since ``since``, from the audit log: user tokens and app tokens."""
        is_app, times = audit_events.c.customer_id.is_(None), audit_events.c.occurrences
        query = select(func.sum(case((is_app, 0), else_=times)), func.sum(case((is_app, times), else_=0))).where(
            audit_events.c.app_id == app_id, audit_events.c.event.in_(ISSUING_EVENTS), audit_events.c.at >= since
        )
        async with self.engine.connect() as conn:
            user_count, app_count = (await conn.execute(query)).one()
        return TokenCounts(int(user_count or 0), int(app_count or 0))

    async def last_token_at(self, app_ids: Iterable[str]) -> dict[str, float]:
        """When each app last got an access token (from the audit log)."""
        ids = sorted(set(app_ids))
        if not ids:
            return {}
        query = (
            select(audit_events.c.app_id, func.max(audit_events.c.at))
            .where(and_(audit_events.c.app_id.in_(ids), audit_events.c.event.in_(ISSUING_EVENTS)))
            .group_by(audit_events.c.app_id)
        )
        async with self.engine.connect() as conn:
            return {app_id: at for app_id, at in (await conn.execute(query)).all() if at is not None}

    async def recent_events(self, app_id: str, limit: int = 20) -> list[dict[str, object]]:
        query = (
            select(audit_events)
            .where(audit_events.c.app_id == app_id)
            .order_by(audit_events.c.at.desc(), audit_events.c.id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings().all()]
