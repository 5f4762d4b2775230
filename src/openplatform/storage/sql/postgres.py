"""PostgreSQL through asyncpg: a pool for reads, one writer task with group commit, and a small
pool of its own for the keyed reads (a code or token with its backing, several keys a statement:
``KeyedReads``).

The writer takes everything queued, runs it in one transaction and commits;
while that batch is in flight (its statements are network round trips) the
next one gathers. With PostgreSQL's default ``synchronous_commit=on`` the
COMMIT is flushed to the WAL on disk before any request of the batch is answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from prometheus_client import Histogram

from openplatform.errors import StorageUnavailable
from openplatform.storage.sql.driver import (
    Claim,
    InsertSpec,
    KeyedRead,
    Operation,
    Outcome,
    Pending,
    Row,
    Sql,
    T,
    leading_claims,
    refused,
    settle,
    to_dollar_params,
)

MAX_BATCH = 512
# A batch claim joins an unnest() of keys to its table. Its plan must not depend on the table's size
# or statistics when it was made: a plan made while the table was small (a fresh database), or
# never analyzed, or analyzed when most codes were used (``used_at IS NULL`` then looks like a row
# or two), scanned the whole table for every batch once it had grown (measured: 21 ms per batch of
# 31 rotations on 16,000 tokens; 8.4 ms a batch of about 10 exchanges on 1,500 codes, most of the
# code exchange's database CPU, issue 14). Each claim therefore also says ``digest = ANY(keys)``
# (store.ConsumeCode, store.RotateRefresh), and a batch that claims together forbids sequential
# scans (every statement of the writer goes by a key; one with no usable index still scans) and
# nested loops (one would rescan the unnest() for each claimed row: quadratic in the batch): every
# plan left finds the rows through the primary key by the batch's keys, whatever the table's size
# when it was made. So the claim runs on one generic plan, cached with the prepared statement,
# instead of being planned for each batch (force_custom_plan was 85-100 µs a batch, against 13-19).
# The settings last to the batch's COMMIT: its other statements each read or write one table by key.
# A statement the writer's connection prepares for the first time inside such a batch also keeps the
# generic plan made under these settings after the COMMIT (PostgreSQL does not re-plan when they
# change): harmless while every writer statement is a one-table lookup by key, but a writer statement
# with a join or a scan added later must be checked (EXPLAIN) under these settings too.
CLAIM_SETTINGS = (
    "SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off; SET LOCAL enable_nestloop = off"
)
DEADLOCK_RETRIES = 3


class _PgTx:
    """Statements of one batch on the writer's connection.

    Every statement is a network round trip, and on this hot path most of them
    are INSERTs whose result nobody reads (a token, an audit row), which the
    operations hand to ``insert`` with their ``InsertSpec``. With
    ``defer_inserts`` those rows are held back, and all rows held go as one
    statement (``_chained_inserts``), just before the next other statement that
    touches their tables, and at the end of the batch. The transaction itself is begun
    lazily: a batch of nothing but INSERTs (every app-token grant) is sent as a
    single statement, its INSERTs chained as data-modifying CTEs, which
    PostgreSQL runs atomically without BEGIN and COMMIT (one round trip instead
    of four). If a held-back row fails, the whole batch is replayed one
    operation at a time, so the failure lands on the operation that caused it.
    Held-back rows of different tables may reach the database in another order
    than they were written: the tables written here have no foreign keys between them.
    """

    def __init__(self, conn: Any, defer_inserts: bool = False) -> None:
        self.conn = conn
        self.defer_inserts = defer_inserts
        self.begun = not defer_inserts  # without deferral the caller runs it in a transaction
        self.claimed: dict[Claim, bool] = {}
        self._held: dict[InsertSpec, list[tuple[object, ...]]] = {}

    async def claim_together(self, batch: list[Pending]) -> None:
        """One statement per ``Claim.claim_many`` for the rows the batch's claims would each
        take with their own UPDATE (store.ConsumeCode, store.RotateRefresh): one round trip
        instead of one each. Only the claims ahead of any other write (``leading_claims``)."""
        groups: dict[str, list[Claim]] = {}
        for claim in leading_claims(batch):
            groups.setdefault(claim.claim_many, []).append(claim)
        for sql, ops in groups.items():
            if len(ops) < 2:
                continue
            # The first claim of each key, as one at a time would take it: an UPDATE … FROM joining
            # one row to several would set it from any of them (another successor, another time).
            first: dict[object, tuple[object, ...]] = {}
            for op in ops:
                first.setdefault(op.claim_args[0], op.claim_args)
            columns = zip(*first.values(), strict=True)
            await self._begin(CLAIM_SETTINGS)
            won = {row[0] for row in await self.fetch(sql, *map(list, columns))}
            for op in ops:  # a repeat of a key in the batch finds it taken, as it would one at a time
                key = op.claim_args[0]
                self.claimed[op] = key in won
                won.discard(key)

    async def insert(self, spec: InsertSpec, *rows: tuple[object, ...]) -> None:
        if self.defer_inserts:
            self._held.setdefault(spec, []).extend(rows)
            return
        await self._send(spec, list(rows))

    async def execute(self, sql: str, *args: object) -> int:
        await self._prepare(sql)
        status: str = await self.conn.execute(_pg_sql(sql), *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        await self._prepare(sql)
        return await self.conn.fetchrow(_pg_sql(sql), *args)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        await self._prepare(sql)
        return list(await self.conn.fetch(_pg_sql(sql), *args))

    async def _begin(self, settings: str = "") -> None:
        if not self.begun:
            await self.conn.execute(f"BEGIN; {settings}" if settings else "BEGIN")  # one round trip
            self.begun = True

    async def _prepare(self, sql: str) -> None:
        """Before a statement that touches a table with rows held back (a rotation reading the
        tokens table), they go; an ``Sql`` names its tables, so the rows of others (a batch's
        app tokens before a code's claim) stay held and go as one statement with the rest."""
        await self._begin()
        if self._held and (not isinstance(sql, Sql) or any(spec.table in sql.tables for spec in self._held)):
            await self.flush()

    async def commit(self) -> None:
        """The end of an optimistic batch: what is held, then COMMIT (or one atomic statement)."""
        if not self.begun and self._held:  # nothing but INSERTs: one statement, atomic without BEGIN
            await self.flush()
            return
        await self._begin()
        await self.flush()
        await self.conn.execute("COMMIT")

    async def rollback(self) -> None:
        if self.begun and self.conn.is_in_transaction():
            await self.conn.execute("ROLLBACK")

    async def flush(self) -> None:
        if self._held:
            held, self._held = self._held, {}
            await self.conn.execute(*_chained_inserts(held))

    async def _send(self, spec: InsertSpec, rows: list[tuple[object, ...]]) -> None:
        if len(rows) == 1:
            await self.conn.execute(_pg_sql(spec.sql), *rows[0])
        elif rows:  # one statement for all rows: a column per array parameter
            await self.conn.execute(*_chained_inserts({spec: rows}))


def _chained_inserts(held: dict[InsertSpec, list[tuple[object, ...]]]) -> tuple[object, ...]:
    """One statement inserting every held row, and its arguments: per spec, an ``INSERT … SELECT …
    FROM jsonb_array_elements($n::jsonb)`` of one JSON parameter (``InsertSpec.from_json``),
    chained as data-modifying CTEs when there are several.

    PostgreSQL then plans and runs one statement per batch instead of one per
    row (asyncpg's executemany pipelines rows but runs the plan for each).
    Measured on the app-token grant: 10,100 -> 10,700 req/s with one statement per
    spec alone; 12,800 -> 19,500 req/s with the whole batch as one statement (no
    BEGIN/COMMIT). The rows as JSON rather than an array per column: docs/benchmarks.md,
    "PostgreSQL's rows as one JSON parameter".
    """
    statements: list[str] = []
    args: list[object] = []
    for spec, rows in held.items():
        args.append(orjson.dumps(rows).decode())
        statements.append(spec.from_json(len(args)))
    *first, last = statements
    ctes = ", ".join(f"held{i} AS ({statement})" for i, statement in enumerate(first))
    return (f"WITH {ctes} {last}" if ctes else last, *args)


_PG_SQL_CACHE: dict[str, str] = {}
_PG_SQL_CACHE_SIZE = 4096  # the management path's IN (…) lists make a text per length: keep it bounded


def _pg_sql(sql: str) -> str:
    converted = _PG_SQL_CACHE.get(sql)
    if converted is None:
        if len(_PG_SQL_CACHE) >= _PG_SQL_CACHE_SIZE:
            _PG_SQL_CACHE.clear()
        converted = _PG_SQL_CACHE[sql] = to_dollar_params(sql)
    return converted


def is_deadlock(exc: BaseException) -> bool:
    """PostgreSQL chose this transaction to break a deadlock (40P01) or a serialization conflict (40001)."""
    return getattr(exc, "sqlstate", None) in ("40P01", "40001")


async def retrying_deadlocks(work: Callable[[], Awaitable[T]]) -> T:
    """Run a transaction, again when PostgreSQL aborted it to break a deadlock.

    A management transaction that locks several rows (an uninstall, a customer's
    deletion with its sites and installations) may meet the group-commit writer,
    which locks rows of its own batch in another order: PostgreSQL then aborts one
    side. The writer replays its batch; a management transaction is tried again
    here, from the start (it changed nothing), so it never fails for it. (Until
    migration 0010 the bulk ``UPDATE tokens`` of an uninstall was the usual case.)
    """
    for attempt in range(DEADLOCK_RETRIES):
        try:
            return await work()
        except Exception as exc:
            if not is_deadlock(exc) or attempt == DEADLOCK_RETRIES - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def unavailable_errors() -> tuple[type[BaseException], ...]:
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
        # 55000, e.g. "database ... is not currently accepting connections" on connect
        asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
        # a pooled connection the server terminated, used before asyncpg noticed
        # ("cannot switch to state 12; another operation (2) is in progress")
        asyncpg.exceptions.InternalClientError,
    )


async def _nothing_to_reset(_conn: Any) -> None:
    """The pool's connections run single reads and the management path's transactions (each
    ends with its COMMIT or ROLLBACK): no session state to undo.

    asyncpg's default reset sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` every time a connection goes back to the pool: a
    round trip per read (it still rolls back an open transaction, if any).
    """


# The keyed reads' connections (KeyedReads) keep one generic plan per statement, made at its first
# execution: a read for an array of keys is otherwise planned afresh at every execution (its custom
# plan, for the batch's few keys, looks cheaper than the generic one, made for ten), 60-90 µs of the
# backend's CPU a statement. Without sequential scans a plan made while the table was empty or never
# analyzed still looks the keys up in the primary key (as the claims', CLAIM_SETTINGS; these
# statements read the table by key and its backing by key, nothing else); without bitmap scans it
# walks the primary key for the keys instead of building a bitmap first (the generic plan's choice
# for ten keys; 5-15 % of the backend's CPU a statement of one to four keys, the usual sizes).
# Session settings, sent in the connection's startup packet: no round trip.
READER_SETTINGS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off", "enable_bitmapscan": "off"}
MAX_IN_FLIGHT = 2  # statements of one KeyedRead out at once: docs/benchmarks.md has the 1, 2, 8 measured
READERS = 2 * MAX_IN_FLIGHT  # the keyed reads' connections at most: two reads (a code's, a token's)
KEYED_READS = Histogram(
    "openplatform_db_keyed_reads",
    "Keys read per keyed read statement (PostgreSQL: the codes or tokens read with their backing)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
_Waiting = dict[object, list["asyncio.Future[Row | None]"]]  # key -> the reads waiting for its row


class KeyedReads:
    """The keyed reads (``driver.KeyedRead``) of several requests as one statement for all their
    keys (``KeyedRead.many``), on connections of their own pool (``READER_SETTINGS``).

    Each read of a code or token with its backing (SPEC §8) was a round trip, a Bind that starts
    the executor's five index scans and an Execute on the database's side, and a call of asyncpg's
    on the server's; under load the grants ask for them together, and one statement serves them
    all. The reads asked for in one turn of the event loop go together; while ``max_in_flight``
    statements of one read are out, the next reads gather and go as one when a statement is back
    (as the writer's batches do). Each read is still a read of the database when it is asked for.
    """

    def __init__(self, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.pool: Any = None
        self.max_in_flight = max_in_flight
        self._waiting: dict[KeyedRead, _Waiting] = {}
        self._in_flight: dict[KeyedRead, int] = {}
        self._running: set[asyncio.Task[None]] = set()

    def read(self, sql: KeyedRead, key: object) -> asyncio.Future[Row | None]:
        """The row of ``key`` (None when there is none) once the statement that reads it is back;
        StorageUnavailable when the database cannot be reached."""
        loop = asyncio.get_running_loop()
        waiting = self._waiting.get(sql)
        if waiting is None:
            waiting = self._waiting[sql] = {}
            loop.call_soon(self._send, sql)  # after this turn's other requests have asked
        future: asyncio.Future[Row | None] = loop.create_future()
        waiting.setdefault(key, []).append(future)
        return future

    async def stop(self) -> None:
        """Cancel the statements out; their reads fail with StorageUnavailable."""
        while self._running:  # a statement cancelled sends what gathered meanwhile: cancel that too
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    def _send(self, sql: KeyedRead) -> None:
        in_flight = self._in_flight.get(sql, 0)
        if in_flight >= self.max_in_flight or sql not in self._waiting:
            return  # they go when a statement is back (or they went already)
        self._in_flight[sql] = in_flight + 1
        task = asyncio.get_running_loop().create_task(self._run(sql, self._waiting.pop(sql)))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, sql: KeyedRead, waiting: _Waiting) -> None:
        KEYED_READS.observe(len(waiting))
        try:
            if self.pool is None:
                raise StorageUnavailable("the database driver is closed")
            rows = await self.pool.fetch(sql.many, list(waiting))
        except BaseException as exc:  # CancelledError too: no read may wait forever
            for futures in waiting.values():
                _settle(futures, None, _read_error(exc))
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._in_flight[sql] -= 1
            self._send(sql)  # what gathered meanwhile
        key = sql.key
        for row in rows:
            _settle(waiting.pop(row[key], ()), row, None)
        for futures in waiting.values():  # no such row
            _settle(futures, None, None)


def _read_error(exc: BaseException) -> BaseException:
    """What a read waiting on a failed statement raises, with the statement's error as its cause."""
    if isinstance(exc, asyncio.CancelledError):
        error = StorageUnavailable("the database driver closed")
    elif isinstance(exc, unavailable_errors()):
        error = StorageUnavailable(str(exc))
    else:
        return exc
    error.__cause__ = exc
    return error


def _settle(futures: Iterable[asyncio.Future[Row | None]], row: Row | None, error: BaseException | None) -> None:
    for future in futures:
        if future.done():  # its request was cancelled
            continue
        if error is None:
            future.set_result(row)
        else:
            future.set_exception(error)


class PostgresDriver:
    """asyncpg pool for reads and the management path's transactions; one writer task on its
    own connection for the hot path's group commits; a pool of its own for the keyed reads
    (``KeyedReads``: a code or token with its backing, several keys a statement).

    The writer keeps its connection rather than taking one from the pool per
    batch: giving it back runs asyncpg's reset query, a round trip and about a
    tenth of the writer's CPU in the profile. After a failure it connects anew.
    """

    def __init__(self, dsn: str, pool_size: int) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: Any = None
        self._conn: Any = None  # the writer's connection
        # What waits for the next batch: a list and an Event (0.05 µs per write; asyncio.Queue 0.29 µs).
        self._pending: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._reads = KeyedReads()

    dialect = "postgresql"

    async def start(self) -> None:
        import asyncpg

        if self._pool is not None:  # already started (the store and the management path share it)
            return
        try:
            readers = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=min(self.pool_size, READERS), reset=_nothing_to_reset,
                server_settings=READER_SETTINGS,
            )  # fmt: skip
            try:
                pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size, reset=_nothing_to_reset)
            except BaseException:
                await readers.close()
                raise
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        self._reads.pool, self._pool = readers, pool
        self._writer = asyncio.create_task(self._writer_loop())

    async def close(self) -> None:
        await self._reads.stop()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
            self._writer = None
        await self._drop_connection()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._reads.pool is not None:
            await self._reads.pool.close()
            self._reads.pool = None

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            import asyncpg

            self._conn = await asyncpg.connect(self.dsn)
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # no goodbye round trip: it may be broken

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        if type(sql) is KeyedRead:
            return await self._reads.read(sql, args[0])
        try:
            return await self._pool.fetchrow(_pg_sql(sql), *args)
        except unavailable_errors() as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        try:
            return list(await self._pool.fetch(_pg_sql(sql), *args))
        except unavailable_errors() as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def write(self, op: Operation[T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue((op, future))
        return await future

    def write_later(self, op: Operation[Any]) -> None:
        self._enqueue((op, None))

    async def transaction(self, op: Operation[T]) -> T:
        """A management transaction on a connection of the pool (not the writer's: it may lock
        many rows for a while); tried again from the start when PostgreSQL picks it to break
        a deadlock with the writer (``retrying_deadlocks``)."""
        import asyncpg

        async def attempt() -> T:
            async with self._pool.acquire() as conn, conn.transaction():
                return await op(_PgTx(conn))

        try:
            return await retrying_deadlocks(attempt)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise refused(exc) from exc
        except unavailable_errors() as exc:
            raise StorageUnavailable(str(exc)) from exc

    def _enqueue(self, item: Pending) -> None:
        self._pending.append(item)
        if not self._wakeup.is_set():
            self._wakeup.set()

    async def _writer_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            if self._pending:
                self._wakeup.set()
            if not batch:
                continue
            try:
                outcomes = await self._run_batch(batch)
            except unavailable_errors() as exc:
                await self._drop_connection()
                outcomes = [(False, StorageUnavailable(str(exc)))] * len(batch)
            except Exception as exc:  # the writer must outlive it, or every later write waits forever
                outcomes = [(False, exc)] * len(batch)
            settle(batch, outcomes)

    async def _run_batch(self, batch: list[Pending]) -> list[Outcome]:
        conn = await self._connection()
        tx = _PgTx(conn, defer_inserts=True)
        try:
            await tx.claim_together(batch)
            outcomes: list[Outcome] = [(True, await op(tx)) for op, _future in batch]
            await tx.commit()
            return outcomes
        except unavailable_errors():
            raise
        except Exception:  # one operation failed, all rolled back: replay them one savepoint each
            await tx.rollback()
            async with conn.transaction():
                plain = _PgTx(conn)
                return [await self._run_isolated(conn, plain, op) for op, _future in batch]

    @staticmethod
    async def _run_isolated(conn: Any, tx: _PgTx, op: Operation[Any]) -> Outcome:
        try:
            async with conn.transaction():
                return (True, await op(tx))
        except Exception as exc:
            if isinstance(exc, unavailable_errors()):
                raise
            import asyncpg

            return (False, refused(exc) if isinstance(exc, asyncpg.IntegrityConstraintViolationError) else exc)
