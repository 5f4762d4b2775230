"""The webhook outbox: rows of ``webhook_deliveries``, claimed by one worker at a time.

A row is *due* when it is undelivered, has attempts left and ``next_attempt_at``
has passed. Claiming a row bumps ``next_attempt_at`` by a lease and counts the
attempt in the same statement, so any number of worker processes (or nodes on
one PostgreSQL) can poll together: a row is sent by one of them at a time, and a
worker that dies mid-send only delays the row until the lease runs out.

- PostgreSQL: ``UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``;
  concurrent claimers skip each other's locked rows instead of queueing.
- SQLite: writes are serialised by the database, so a compare-and-set on
  ``(attempts, next_attempt_at)`` suffices; losing the race updates no row.
"""

from __future__ import annotations

from functools import partial

import orjson
from sqlalchemy import ColumnElement, Update, and_, case, func, select, update

from openplatform.records import Delivery
from openplatform.storage.sql.database import Conn, Database
from openplatform.storage.sql.driver import Row
from openplatform.storage.sql.schema import webhook_deliveries as wd


async def _fetch_one(statement: Update, conn: Conn) -> Row | None:
    return await conn.fetchrow(statement)


def _delivery(row: Row) -> Delivery:
    return Delivery(
        id=int(row["id"]), app_id=row["app_id"], event=row["event"],
        payload=orjson.loads(row["payload"]), attempts=int(row["attempts"]), created_at=row["created_at"],
    )  # fmt: skip


def _due(now: float, max_attempts: int) -> list[ColumnElement[bool]]:
    return [wd.c.delivered_at.is_(None), wd.c.attempts < max_attempts, wd.c.next_attempt_at <= now]


class SqlOutbox:
    """Notifications are queued by the transactions that cause them (``changes.enqueue_webhook``)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.postgres = database.postgres

    async def claim(self, now: float, lease: float, max_attempts: int) -> Delivery | None:
        """Take the oldest due row for ``lease`` seconds, or None when nothing is due."""
        if self.postgres:
            return await self._claim_skip_locked(now, lease, max_attempts)
        return await self._claim_compare_and_set(now, lease, max_attempts)

    async def _claim_skip_locked(self, now: float, lease: float, max_attempts: int) -> Delivery | None:
        oldest = (
            select(wd.c.id).where(and_(*_due(now, max_attempts)))
            .order_by(wd.c.next_attempt_at).limit(1)
            .with_for_update(skip_locked=True).scalar_subquery()
        )  # fmt: skip
        claim = (
            update(wd).where(wd.c.id == oldest)
            .values(attempts=wd.c.attempts + 1, next_attempt_at=now + lease).returning(*wd.c)
        )  # fmt: skip
        row = await self.database.transaction(partial(_fetch_one, claim))
        return _delivery(row) if row else None

    async def _claim_compare_and_set(self, now: float, lease: float, max_attempts: int) -> Delivery | None:
        candidates = (
            select(wd.c.id, wd.c.attempts, wd.c.next_attempt_at)
            .where(and_(*_due(now, max_attempts))).order_by(wd.c.next_attempt_at).limit(8)
        )  # fmt: skip
        seen = await self.database.read(candidates)
        for row_id, attempts, next_attempt_at in seen:
            claim = (
                update(wd)
                .where(wd.c.id == row_id, wd.c.attempts == attempts, wd.c.next_attempt_at == next_attempt_at)
                .where(wd.c.delivered_at.is_(None))
                .values(attempts=attempts + 1, next_attempt_at=now + lease).returning(*wd.c)
            )  # fmt: skip
            row = await self.database.transaction(partial(_fetch_one, claim))
            if row is not None:
                return _delivery(row)
        return None

    async def delivered(self, delivery_id: int, now: float) -> None:
        await self.database.execute(update(wd).where(wd.c.id == delivery_id).values(delivered_at=now, last_error=None))

    async def failed(self, delivery_id: int, error: str, retry_at: float) -> None:
        """Record the failure; the row is due again at ``retry_at`` (if it has attempts left)."""
        await self.database.execute(
            update(wd).where(wd.c.id == delivery_id).values(last_error=error[:500], next_attempt_at=retry_at)
        )

    async def pending(self, max_attempts: int) -> int:
        """How many notifications are neither delivered nor abandoned (due now or waiting to retry)."""
        query = select(func.count()).select_from(wd).where(wd.c.delivered_at.is_(None), wd.c.attempts < max_attempts)
        return int(await self.database.scalar(query) or 0)

    async def requeue(self, delivery_id: int, app_id: str, now: float, max_attempts: int) -> dict[str, object] | None:
        """Give a notification of ``app_id`` a fresh set of attempts, whatever its state (delivered,
        waiting to retry, being sent or abandoned), due at ``now`` or, while it is pending (neither
        delivered nor out of ``max_attempts``), at its own due time if that is later: a row being
        sent stays leased, so no other sender takes it before this attempt ends (a second copy at
        once), and a retry keeps its time. The row as it was before, or None when ``app_id`` has
        no such delivery. Its payload (and ``event_id``) stays the same: it is the same event, and
        a receiver that has it can tell. None as well when the row is deleted (``storage.sql.cleanup``)
        between the read and the update: nothing is queued again."""
        found = await self.database.read_one(select(wd).where(wd.c.id == delivery_id, wd.c.app_id == app_id))
        if found is None:
            return None
        pending_later = and_(*_due(now, max_attempts)[:2], wd.c.next_attempt_at > now)
        due = case((pending_later, wd.c.next_attempt_at), else_=now)
        changed = await self.database.execute(
            update(wd).where(wd.c.id == delivery_id).values(attempts=0, next_attempt_at=due, delivered_at=None)
        )
        return dict(found) if changed else None  # 0: the cleanup deleted it after the read

    async def list(self, app_id: str | None = None, limit: int = 100) -> list[dict[str, object]]:
        """Recent rows, newest first (for the console and for tests)."""
        query = select(wd).order_by(wd.c.id.desc()).limit(limit)
        if app_id is not None:
            query = query.where(wd.c.app_id == app_id)
        return [dict(r) for r in await self.database.read(query)]
