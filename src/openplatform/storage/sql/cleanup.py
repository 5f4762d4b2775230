"""Cleanup (SPEC §8): delete expired rows in small batches that never hold serving up.

One pass sweeps the tables in turn. Each batch is two steps:

1. a plain read, outside any write transaction, of up to ``batch_size`` keys of
   rows past their horizon, in the order of an index (``expires_at`` or ``at``;
   the audit log, whose only index is ``(app_id, event, at)``, is walked along its
   integer primary key from the lowest id and the sweep stops at the first row
   inside the retention period; so is the webhook outbox, see below. A row stamped
   later than the pass's ``now`` (a node whose clock ran ahead, a row written by
   hand) does not stop it: it is walked past and kept, or a year-2100 row would hold
   every row behind it until it aged);
2. one operation of the group-commit writer deleting exactly those keys,
   re-checking the condition (``DELETE … WHERE expires_at < ? AND digest IN (…)``):
   the write lock is held for one small DELETE, committed together with the
   requests queued beside it.

After each batch the pass rests as long as the batch took, so it uses at most
about half of the process's time and slows down when serving is slow. Several
processes may run passes at once: a batch whose rows another pass deleted first
deletes fewer (or none), and the sweep carries on to the end of the table, so a
pass run by hand next to running servers still finishes the job; its counts are
the rows it deleted itself.

The walk along an index starts each read at the last value read (``>=``, as
values may tie), never at the beginning: on PostgreSQL the index entries of
deleted rows stay until VACUUM, and reading past them again on every batch
would make a pass quadratic.

The webhook outbox (``webhook_deliveries``) is also the delivery log: a row that
is finished, delivered or abandoned (undelivered with every attempt used, its last
one over), goes once it finished longer ago than the audit retention, as the audit
events about it do. A pending row (to be sent, or retried) is never deleted,
whatever its age. The walk goes along the primary key (no index is added: the
outbox's are on ``app_id`` and ``next_attempt_at``) and stops at the first row
*made* inside the retention period (a row finishes after it is made); the pending
rows before it, and rows made long ago but finished recently (sent again from the
console), are walked past, not deleted, and do not stop the walk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from openplatform.config import AUDIT_RETENTION_SECONDS, CLEANUP_BATCH_SIZE, CLEANUP_KEEP_SECONDS
from openplatform.records import DELIVERY_ATTEMPTS
from openplatform.storage.sql.driver import Driver, Tx

log = logging.getLogger("openplatform.storage")


@dataclass(frozen=True)
class Sweep:
    """How one table is swept: ``key`` is its primary key, ``column`` the time compared with the horizon."""

    name: str  # its count in the pass's result ("" for app secrets and deliveries: not reported)
    table: str
    key: str
    column: str  # or an expression, NULL for a row never to delete
    by_id: bool = False  # walk the integer primary key instead of an index on ``column``
    stop: str = ""  # by_id: the walk ends at the first row with this column inside the period ("": ``column``)

    def read_sql(self) -> str:
        if self.by_id:
            select = f"SELECT {self.key} AS k, {self.column} AS t, {self.stop or self.column} AS s FROM {self.table}"
            return f"{select} WHERE {self.key} > ? ORDER BY {self.key} LIMIT ?"
        select = f"SELECT {self.key} AS k, {self.column} AS t FROM {self.table}"
        return f"{select} WHERE {self.column} < ? AND {self.column} >= ? ORDER BY {self.column} LIMIT ?"

    def delete_sql(self, batch_size: int) -> str:
        """Always ``batch_size`` placeholders (a short batch repeats its last key): one statement
        text per table, so prepared statements and the drivers' caches see one shape."""
        keys = ", ".join("?" * batch_size)
        return f"DELETE FROM {self.table} WHERE {self.column} < ? AND {self.key} IN ({keys})"


CODES = Sweep("codes", "auth_codes", "digest", "expires_at")
TOKENS = Sweep("tokens", "tokens", "digest", "expires_at")
# A family's revocation goes with its last token (its end, NULL when not known: kept); not reported.
REVOKED_FAMILIES = Sweep("", "revoked_families", "family_id", "expires_at")
INVALIDATIONS = Sweep("invalidations", "invalidations", "id", "at")
SECRETS = Sweep("", "app_secrets", "id", "expires_at")  # a handful of rows; no index needed
AUDIT_EVENTS = Sweep("audit_events", "audit_events", "id", "at", by_id=True)
# When a delivery finished: delivered_at, or for an abandoned one next_attempt_at (the time of its last
# failure, or the end of the lease of a sender that died on it; while its last attempt is being sent,
# the lease's end is still to come); NULL while it is pending.
FINISHED_AT = (
    "(CASE WHEN delivered_at IS NOT NULL THEN delivered_at"
    f" WHEN attempts >= {DELIVERY_ATTEMPTS} THEN next_attempt_at END)"
)
DELIVERIES = Sweep("", "webhook_deliveries", "id", FINISHED_AT, by_id=True, stop="created_at")


class Delete:
    """The write operation of one batch: delete the keys read, if still past the horizon; returns the count."""

    __slots__ = ("sql", "args")

    def __init__(self, sql: str, args: tuple[object, ...]) -> None:
        self.sql, self.args = sql, args

    async def __call__(self, tx: Tx) -> int:
        return await tx.execute(self.sql, *self.args)


async def sweep(driver: Driver, table: Sweep, horizon: float, now: float, batch_size: int, rest: float = 1.0) -> int:
    """Delete the rows of ``table`` whose ``column`` is before ``horizon`` (epoch seconds),
    ``batch_size`` rows per write operation; returns how many were deleted.

    ``now`` (epoch seconds): a walk along the primary key stops at the first row stamped
    between ``horizon`` and ``now``; one stamped later is out of order, walked past.
    ``rest``: after each batch, wait ``rest`` times as long as the batch took (0: only yield).
    """
    read, delete = table.read_sql(), table.delete_sql(batch_size)
    deleted = 0
    after: object = -1 if table.by_id else float("-inf")
    while True:
        started = time.perf_counter()
        if table.by_id:
            rows = await driver.fetch(read, after, batch_size)
            keys: list[object] = []
            more = len(rows) == batch_size
            for row in rows:  # the walk ends at the first row inside the period kept
                if horizon <= row["s"] <= now:
                    more = False
                    break
                if row["t"] is not None and row["t"] < horizon:  # else kept (a pending delivery): walked past
                    keys.append(row["k"])
        else:
            rows = await driver.fetch(read, horizon, after, batch_size)
            keys = [row["k"] for row in rows]
            more = len(rows) == batch_size
        if not rows:
            return deleted
        after = rows[-1]["k"] if table.by_id else rows[-1]["t"]
        if keys:
            padded = keys + [keys[-1]] * (batch_size - len(keys))
            deleted += await driver.write(Delete(delete, (horizon, *padded)))
        if not more:  # the end of what is past the horizon
            return deleted
        await asyncio.sleep(rest * (time.perf_counter() - started))


async def cleanup_pass(
    driver: Driver,
    now: float,
    keep_seconds: float = CLEANUP_KEEP_SECONDS,
    audit_retention_seconds: float = AUDIT_RETENTION_SECONDS,
    batch_size: int = CLEANUP_BATCH_SIZE,
    rest: float = 1.0,
) -> dict[str, int]:
    """One pass of the cleanup (SPEC §8); times in epoch seconds and seconds.

    Deletes codes and tokens that expired more than ``keep_seconds`` before
    ``now``, the revocations of families whose last token did, invalidation records
    older than that, app secrets whose grace period is over, and audit events and
    finished webhook deliveries (delivered or abandoned, never pending ones) older
    than ``audit_retention_seconds``. Returns the counts ``{"codes": N, "tokens": N,
    "invalidations": N, "audit_events": N}`` (SPEC §8's four: app secrets, family
    revocations and deliveries go unreported).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    log.info("cleanup pass started")
    started = time.monotonic()
    horizons = (
        (CODES, now - keep_seconds),
        (TOKENS, now - keep_seconds),
        (REVOKED_FAMILIES, now - keep_seconds),
        (INVALIDATIONS, now - keep_seconds),
        (SECRETS, now),  # a previous secret stops at the end of its grace period
        (AUDIT_EVENTS, now - audit_retention_seconds),
        (DELIVERIES, now - audit_retention_seconds),  # the delivery log, kept as long as the audit log
    )
    counts: dict[str, int] = {}
    for table, horizon in horizons:
        deleted = await sweep(driver, table, horizon, now, batch_size, rest)
        if table.name:
            counts[table.name] = deleted
    log.info("cleanup pass finished in %.1f s, deleted: %s", time.monotonic() - started, json.dumps(counts))
    return counts
