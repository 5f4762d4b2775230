"""Lean database drivers for the hot path, with group commit.

The token endpoints write one or two rows per request. Giving every request its
own transaction caps throughput at the database's commit rate; instead, every
write is an *operation* queued to one writer, which runs all operations waiting
when it wakes inside one transaction, commits once, and then resolves each
request's future (group commit). Each operation runs in a savepoint so a failing
one cannot take its batch-mates down with it.

An operation is ``async def op(tx) -> T`` using ``tx.execute`` / ``tx.fetchrow``.
The same operation code runs on both drivers: on PostgreSQL ``tx`` wraps an
asyncpg connection; on SQLite the writer is a thread and ``tx``'s coroutines
never suspend, so the thread drives them to completion with a single ``send``.

SQL is written once with ``?`` placeholders and rewritten to ``$n`` for asyncpg.
"""

from __future__ import annotations

import asyncio
import queue
import re
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from openplatform.errors import StorageUnavailable

T = TypeVar("T")
Row = Any  # sqlite3.Row or asyncpg.Record: both index by column name


class Tx(Protocol):
    async def execute(self, sql: str, *args: object) -> int: ...
    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...
    async def fetch(self, sql: str, *args: object) -> list[Row]: ...


Operation = Callable[[Tx], Awaitable[T]]


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


# --------------------------------------------------------------------- SQLite


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args: object) -> int:
        return self.conn.execute(sql, args).rowcount

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        return self.conn.execute(sql, args).fetchone()

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return self.conn.execute(sql, args).fetchall()


def _run_sync(coro: Awaitable[T]) -> T:
    """Drive a coroutine whose awaits never suspend (SQLite operations)."""
    gen = coro.__await__()
    try:
        gen.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise RuntimeError("a SQLite operation suspended; operations must only await tx calls")


def sqlite_connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteDriver:
    """Reads on the event loop (indexed point reads take microseconds in WAL
    mode); writes on one writer thread with group commit."""

    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._queue: queue.SimpleQueue[tuple[Operation[Any], asyncio.Future[Any] | None] | None]
        self._queue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = sqlite_connect(self.path, self.synchronous)
        writer = sqlite_connect(self.path, self.synchronous)
        self._thread = threading.Thread(target=self._writer_loop, args=(writer,), daemon=True)
        self._thread.start()

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _read(self, sql: str, args: Sequence[object]) -> sqlite3.Cursor:
        if self._reader is None:
            raise StorageUnavailable("the database is closed")
        try:
            return self._reader.execute(sql, args)
        except sqlite3.OperationalError as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        return self._read(sql, args).fetchone()

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return self._read(sql, args).fetchall()

    async def write(self, op: Operation[T]) -> T:
        assert self._loop is not None, "driver not started"
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((op, future))
        return await future

    def write_later(self, op: Operation[Any]) -> None:
        self._queue.put((op, None))

    def _writer_loop(self, conn: sqlite3.Connection) -> None:
        tx = _SqliteTx(conn)
        while True:
            first = self._queue.get()
            if first is None:
                conn.close()
                return
            batch = [first]
            while len(batch) < 512:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(item)
            self._run_batch(conn, tx, batch)

    def _run_batch(
        self,
        conn: sqlite3.Connection,
        tx: _SqliteTx,
        batch: list[tuple[Operation[Any], asyncio.Future[Any] | None]],
    ) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op, _future in batch:
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, _run_sync(op(tx))))
                    conn.execute("RELEASE op")
                except Exception as exc:  # the op's own failure: undo only its writes
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((False, exc))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StorageUnavailable(str(exc))
            outcomes = [(False, failure)] * len(batch)
        assert self._loop is not None
        for (_op, future), outcome in zip(batch, outcomes, strict=True):
            if future is not None:
                self._loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


# ----------------------------------------------------------------- PostgreSQL


class _PgTx:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args: object) -> int:
        status: str = await self.conn.execute(_pg_sql(sql), *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        return await self.conn.fetchrow(_pg_sql(sql), *args)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return list(await self.conn.fetch(_pg_sql(sql), *args))


_PG_SQL_CACHE: dict[str, str] = {}


def _pg_sql(sql: str) -> str:
    converted = _PG_SQL_CACHE.get(sql)
    if converted is None:
        converted = _PG_SQL_CACHE[sql] = to_dollar_params(sql)
    return converted


class PostgresDriver:
    """asyncpg pool for reads; one writer task on its own connection."""

    def __init__(self, dsn: str, pool_size: int = 8) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: Any = None
        self._queue: asyncio.Queue[tuple[Operation[Any], asyncio.Future[Any] | None]] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        import asyncpg

        try:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        self._writer = asyncio.create_task(self._writer_loop())

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        try:
            return await self._pool.fetchrow(_pg_sql(sql), *args)
        except _pg_unavailable_errors() as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        try:
            return list(await self._pool.fetch(_pg_sql(sql), *args))
        except _pg_unavailable_errors() as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def write(self, op: Operation[T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future))
        return await future

    def write_later(self, op: Operation[Any]) -> None:
        self._queue.put_nowait((op, None))

    async def _writer_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < 512:
                batch.append(self._queue.get_nowait())
            try:
                outcomes = await self._run_batch(batch)
            except _pg_unavailable_errors() as exc:
                outcomes = [(False, StorageUnavailable(str(exc)))] * len(batch)
            for (_op, future), outcome in zip(batch, outcomes, strict=True):
                if future is not None:
                    _settle(future, outcome)

    async def _run_batch(
        self, batch: list[tuple[Operation[Any], asyncio.Future[Any] | None]]
    ) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        async with self._pool.acquire() as conn, conn.transaction():
            tx = _PgTx(conn)
            for op, _future in batch:
                try:
                    async with conn.transaction():  # a savepoint per operation
                        outcomes.append((True, await op(tx)))
                except Exception as exc:
                    if isinstance(exc, _pg_unavailable_errors()):
                        raise
                    outcomes.append((False, exc))
        return outcomes


def _pg_unavailable_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (
        OSError,
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.ConnectionFailureError,
        asyncpg.exceptions.InterfaceError,
        asyncpg.exceptions.TooManyConnectionsError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.InvalidCatalogNameError,
    )
