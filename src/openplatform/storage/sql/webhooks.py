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

from dataclasses import dataclass

import orjson
from sqlalchemy import ColumnElement, and_, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from openplatform.storage.sql.schema import webhook_deliveries as wd


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    app_id: str
    event: str
    payload: dict[str, object]  # the stored body, without the secret-derived signature
    attempts: int  # including the attempt this claim is for
    created_at: float


async def enqueue(conn: AsyncConnection, app_id: str, event: str, payload: dict[str, object], now: float) -> None:
    """Add a notification inside the caller's transaction (the install/uninstall itself)."""
    await conn.execute(
        insert(wd).values(
            app_id=app_id,
            event=event,
            payload=orjson.dumps(payload).decode(),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )  # fmt: skip
    )


def _delivery(row: RowMapping) -> Delivery:
    return Delivery(
        id=int(row["id"]), app_id=row["app_id"], event=row["event"],
        payload=orjson.loads(row["payload"]), attempts=int(row["attempts"]), created_at=row["created_at"],
    )  # fmt: skip


def _due(now: float, max_attempts: int) -> list[ColumnElement[bool]]:
    return [wd.c.delivered_at.is_(None), wd.c.attempts < max_attempts, wd.c.next_attempt_at <= now]


class WebhookOutbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

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
        async with self.engine.begin() as conn:
            row = (await conn.execute(claim)).mappings().first()
        return _delivery(row) if row else None

    async def _claim_compare_and_set(self, now: float, lease: float, max_attempts: int) -> Delivery | None:
        candidates = (
            select(wd.c.id, wd.c.attempts, wd.c.next_attempt_at)
            .where(and_(*_due(now, max_attempts))).order_by(wd.c.next_attempt_at).limit(8)
        )  # fmt: skip
        async with self.engine.connect() as conn:
            seen = (await conn.execute(candidates)).all()
        for row_id, attempts, next_attempt_at in seen:
            claim = (
                update(wd)
                .where(wd.c.id == row_id, wd.c.attempts == attempts, wd.c.next_attempt_at == next_attempt_at)
                .where(wd.c.delivered_at.is_(None))
                .values(attempts=attempts + 1, next_attempt_at=now + lease).returning(*wd.c)
            )  # fmt: skip
            async with self.engine.begin() as conn:
                row = (await conn.execute(claim)).mappings().first()
            if row is not None:
                return _delivery(row)
        return None

    async def delivered(self, delivery_id: int, now: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(wd).where(wd.c.id == delivery_id).values(delivered_at=now, last_error=None))

    async def failed(self, delivery_id: int, error: str, retry_at: float) -> None:
        """Record the failure; the row is due again at ``retry_at`` (if it has attempts left)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(wd).where(wd.c.id == delivery_id).values(last_error=error[:500], next_attempt_at=retry_at)
            )

    async def pending(self, max_attempts: int) -> int:
        """How many notifications are neither delivered nor abandoned (due now or waiting to retry)."""
        query = select(func.count()).select_from(wd).where(wd.c.delivered_at.is_(None), wd.c.attempts < max_attempts)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def list(self, app_id: str | None = None, limit: int = 100) -> list[dict[str, object]]:
        """Recent rows, newest first (for the console and for tests)."""
        query = select(wd).order_by(wd.c.id.desc()).limit(limit)
        if app_id is not None:
            query = query.where(wd.c.app_id == app_id)
        async with self.engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(query)).mappings().all()]
