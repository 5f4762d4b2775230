"""Lean database drivers for the hot path, with group commit.

The token endpoints write one or two rows per request. Giving every request its
own transaction caps throughput at the database's commit rate; instead, every
write is an *operation* queued to one writer, which runs all operations waiting
when it wakes inside one transaction, commits once, and then resolves each
request's future (group commit). Nothing is answered before its commit.

An operation is ``async def op(tx) -> T`` using ``tx.execute`` / ``tx.fetchrow``.
The same operation code runs on both drivers: on PostgreSQL ``tx`` wraps an
asyncpg connection; on SQLite ``tx``'s coroutines never suspend, so the writer
drives them to completion with a single ``send`` (``run_sync``).

Batches run optimistically without a savepoint per operation (a round trip
each on PostgreSQL, a page copy per changed page on SQLite). If an operation
raises, the batch is rolled back to its start and replayed with a savepoint
around each operation, so a failing operation never takes its batch-mates down;
operations are closures over their inputs and can run twice.

SQL is written once with ``?`` placeholders and rewritten to ``$n`` for asyncpg.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from prometheus_client import Histogram

T = TypeVar("T")
Row = Any  # sqlite3.Row or asyncpg.Record: both index by column name
Outcome = tuple[bool, Any]  # (True, result) or (False, exception)


class Tx(Protocol):
    # Rows the writer already claimed for this batch, by claim statement (see store.ConsumeCode);
    # a statement not in it: each operation claims its own rows.
    claimed: dict[str, set[str]]

    async def execute(self, sql: str, *args: object) -> int: ...
    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...
    async def fetch(self, sql: str, *args: object) -> list[Row]: ...


Operation = Callable[[Tx], Awaitable[T]]
Pending = tuple[Operation[Any], "asyncio.Future[Any] | None"]  # no future: fire and forget (audit rows)


class Insert:
    """An operation that only inserts rows (a token, an audit event): most of the hot path's writes.

    Run as an operation it executes its rows one by one. The SQLite writer
    instead gathers the ``Insert`` rows of a batch by statement and sends each
    statement once with ``executemany``; the PostgreSQL writer holds all INSERTs
    back and sends each statement's rows as one ``unnest()`` INSERT (``_PgTx``). Rows of different
    statements may thus reach the database in another order than they were
    queued: only use it for tables without foreign keys between them.
    """

    __slots__ = ("sql", "rows")

    def __init__(self, sql: str, *rows: tuple[object, ...]) -> None:
        self.sql, self.rows = sql, rows

    async def __call__(self, tx: Tx) -> None:
        for row in self.rows:
            await tx.execute(self.sql, *row)


class Driver(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...
    async def fetch(self, sql: str, *args: object) -> list[Row]: ...
    async def write(self, op: Operation[T]) -> T: ...
    def write_later(self, op: Operation[Any]) -> None: ...


_PLACEHOLDER = re.compile(r"\?")


def to_dollar_params(sql: str) -> str:
    counter = iter(range(1, 1000))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


def run_sync(coro: Awaitable[T]) -> T:
    """Drive a coroutine whose awaits never suspend (SQLite operations)."""
    gen = coro.__await__()
    try:
        gen.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("a SQLite operation suspended; operations must only await tx calls")


# How many operations each group commit carried: shows whether batches form under load.
BATCH_OPERATIONS = Histogram(
    "openplatform_db_batch_operations",
    "Write operations per group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)


def settle(batch: list[Pending], outcomes: list[Outcome]) -> None:
    """Hand each waiting request its operation's outcome (after the commit)."""
    BATCH_OPERATIONS.observe(len(batch))
    for (_op, future), (ok, value) in zip(batch, outcomes, strict=True):
        if future is None or future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
