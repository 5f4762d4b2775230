"""The webhook outbox in memory (SPEC §3), as ``storage/sql/webhooks.py``: a row is claimed by one sender at a time.

The twin of the SQL ``SqlOutbox`` (``tests/storage/test_contract_outbox.py`` runs
the same tests on both). Rows are the shared ``MemoryStore``'s ``deliveries``
(DeliveryRow by id), queued by ``MemoryStore.enqueue_webhook`` in the same step as the
install or uninstall they report.

A row is *due* when it is undelivered, has attempts left and ``next_attempt_at`` has
passed. ``claim`` takes the oldest due row, counts the attempt and moves
``next_attempt_at`` by the lease in one step (no await between the read and the
write), so racing senders never get the same row while its lease runs. The rows
``list`` and ``requeue`` return have the SQL columns' keys and values: ``payload`` is
the JSON text the SQL twin stores.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import orjson

from openplatform.records import Delivery
from openplatform.storage.memory.store import DeliveryRow, MemoryStore


def _due(row: DeliveryRow, now: float, max_attempts: int) -> bool:
    return row.delivered_at is None and row.attempts < max_attempts and row.next_attempt_at <= now


def _columns(row: DeliveryRow) -> dict[str, object]:
    """The row as the SQL twin's ``dict(row)``: the columns of ``webhook_deliveries`` in table order."""
    return {
        "id": row.id, "app_id": row.app_id, "event": row.event, "payload": orjson.dumps(row.payload).decode(),
        "attempts": row.attempts, "next_attempt_at": row.next_attempt_at, "delivered_at": row.delivered_at,
        "last_error": row.last_error, "created_at": row.created_at,
    }  # fmt: skip


class MemoryOutbox:
    """Implements ``services.stores.WebhookOutbox`` on a ``MemoryStore``. Every time is given by the
    caller (UNIX seconds); ``clock`` is kept only as every memory store has one."""

    def __init__(self, store: MemoryStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def claim(self, now: float, lease: float, max_attempts: int) -> Delivery | None:
        """Take the oldest due row (by ``next_attempt_at``, then id) for ``lease`` seconds, its
        attempt counted; None when nothing is due. ``Delivery.payload`` is a copy (as parsed from
        the stored JSON, so it is what the SQL twin gives)."""
        await asyncio.sleep(0)
        due = [row for row in self.store.deliveries.values() if _due(row, now, max_attempts)]
        if not due:
            return None
        row = min(due, key=lambda r: (r.next_attempt_at, r.id))
        row.attempts += 1
        row.next_attempt_at = now + lease
        payload = orjson.loads(orjson.dumps(row.payload))
        return Delivery(row.id, row.app_id, row.event, payload, row.attempts, row.created_at)

    async def delivered(self, delivery_id: int, now: float) -> None:
        await asyncio.sleep(0)
        row = self.store.deliveries.get(delivery_id)
        if row is not None:
            row.delivered_at, row.last_error = now, None

    async def failed(self, delivery_id: int, error: str, retry_at: float) -> None:
        """Record the failure (``error`` cut to 500 characters); the row is due again at
        ``retry_at`` (if it has attempts left)."""
        await asyncio.sleep(0)
        row = self.store.deliveries.get(delivery_id)
        if row is not None:
            row.last_error, row.next_attempt_at = error[:500], retry_at

    async def pending(self, max_attempts: int) -> int:
        """How many notifications are neither delivered nor abandoned (due now or waiting to retry)."""
        await asyncio.sleep(0)
        return sum(1 for r in self.store.deliveries.values() if r.delivered_at is None and r.attempts < max_attempts)

    async def requeue(self, delivery_id: int, app_id: str, now: float, max_attempts: int) -> dict[str, object] | None:
        """Give a notification of ``app_id`` a fresh set of attempts, due at ``now`` or, while it is
        pending (neither delivered nor out of ``max_attempts``), at its own later due time (a lease
        or a retry; ``SqlOutbox.requeue``); the row as it was before (``list``'s shape), or None
        when ``app_id`` has no such delivery. Its payload and ``last_error`` stay."""
        await asyncio.sleep(0)
        row = self.store.deliveries.get(delivery_id)
        if row is None or row.app_id != app_id:
            return None
        before = _columns(row)
        pending = row.delivered_at is None and row.attempts < max_attempts
        due = row.next_attempt_at if pending and row.next_attempt_at > now else now
        row.attempts, row.next_attempt_at, row.delivered_at = 0, due, None
        return before

    async def list(self, app_id: str | None = None, limit: int = 100) -> list[dict[str, object]]:
        """Recent rows, newest first (by id; of ``app_id`` if given), at most ``limit``: dicts of
        the SQL columns (``payload`` as JSON text), for the console and for tests."""
        await asyncio.sleep(0)
        rows = [r for r in self.store.deliveries.values() if app_id is None or r.app_id == app_id]
        rows.sort(key=lambda r: r.id, reverse=True)
        return [_columns(r) for r in rows[:limit]]
