"""Writes every management domain makes inside its own transactions.

The invalidation record that tells every process's cache about a change
(SPEC §8), and the webhook notification queued with the install or uninstall it
reports (the outbox, ``storage.sql.webhooks``, delivers it). They live here so
that no domain module imports another.
"""

from __future__ import annotations

import orjson
from sqlalchemy import insert

from openplatform.storage.sql.database import Conn
from openplatform.storage.sql.schema import invalidations, webhook_deliveries


async def invalidate(conn: Conn, kind: str, key: str, now: float) -> None:
    """Record that ``(kind, key)`` changed at ``now`` (UNIX seconds), in the caller's transaction."""
    await conn.execute(insert(invalidations).values(at=now, kind=kind, key=key))


async def enqueue_webhook(conn: Conn, app_id: str, event: str, payload: dict[str, object], now: float) -> None:
    """Queue a notification inside the caller's transaction (the install/uninstall itself)."""
    await conn.execute(
        insert(webhook_deliveries).values(
            app_id=app_id,
            event=event,
            payload=orjson.dumps(payload).decode(),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )  # fmt: skip
    )
