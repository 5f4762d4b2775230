"""SQLite (WAL) on the event loop's own thread, with group commit.

Why not a writer thread: under the GIL, a thread that wants the interpreter back
after each sqlite3 call waits up to the switch interval (5 ms) while the event
loop is busy. Measured here, that kept batches at about two requests and made
an app token cost four times the CPU of a token check. Point writes in WAL mode
take microseconds, so the loop runs them itself: the operations queued during
two loop iterations run as one transaction at the start of the next (group
commit), and their requests are answered only after the COMMIT.

Nothing here may block the loop for long:
- the write lock is taken without waiting (``busy_timeout=0``); while another
  process (the CLI, the management screens) holds it, the batch is retried a
  moment later instead of stalling every request;
- copying the WAL into the database file (a checkpoint, with fsync) runs on a
  background thread with its own connection once a second; the writer never
  checkpoints. The WAL starts over (``RESTART``, which holds writes back) only
  once it holds ``RESTART_AT_FRAMES`` frames, so that pause comes every few
  seconds of sustained writing instead of every second.

Durability: a request is answered after its batch's COMMIT. With
``synchronous=NORMAL`` that commit survives a crash of the process; the last
commits may be lost on power failure. ``FULL`` fsyncs the WAL on every commit.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from prometheus_client import Counter

from openplatform.errors import StorageUnavailable
from openplatform.storage.sql.driver import (
    Claim,
    Insert,
    InsertSpec,
    Operation,
    Outcome,
    Pending,
    Row,
    T,
    refused,
    run_sync,
    settle,
)

log = logging.getLogger("openplatform.storage")

# Group commits put off because another connection held the write lock (SQLITE_BUSY): another
# process (``serve --workers N``, the CLI), or the checkpointer's RESTART for a moment. Over the
# group commits (``openplatform_db_batch_operations_count``) it is the share of commits that waited
# for a lock (issue 14: with several workers on one file).
BUSY_RETRIES = Counter(
    "openplatform_db_busy_retries",
    "SQLite group commits retried because another connection held the write lock (SQLITE_BUSY)",
)

# None binds as NULL either way; but sqlite3 sends every parameter that is not an exact int, float,
# str or bytearray through its adapter protocol, and for None, finding no adapter, it then looks up
# ``__adapt__`` and ``__conform__`` (two failed attribute lookups, 3,300 instructions per None,
# counted with callgrind). A token row binds three to eight of them. An adapter for NoneType that
# answers None (``{}.get`` is a C function that does) makes it one dictionary lookup instead.
sqlite3.register_adapter(type(None), cast("Callable[[None], None]", {}.get))

LOCK_RETRY_SECONDS = 0.002  # wait before retrying a batch while another process writes
LOCK_GIVE_UP_SECONDS = 30.0  # then answer temporarily_unavailable
CHECKPOINT_EVERY_SECONDS = 1.0
CHECKPOINT_BUSY_TIMEOUT_MS = 100
# The WAL size (in frames: pages with a 24-byte header) at which the checkpointer starts it over:
# 32,768 frames, 128 MiB of 4 KiB pages, a few seconds of the heaviest grant (docs/benchmarks.md,
# "The checkpoint's pause"). Below it, frames already copied cost readers nothing: a reader only
# searches the WAL index past the last checkpoint (SQLite's ``minFrame``).
RESTART_AT_FRAMES = 32768


def sqlite_connect(path: str, synchronous: str, busy_timeout_ms: int = 30000) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    return conn


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.claimed: dict[Claim, bool] = {}  # statements are cheap calls here: each operation claims its own

    async def execute(self, sql: str, *args: object) -> int:
        return self.conn.execute(sql, args).rowcount

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        return self.conn.execute(sql, args).fetchone()

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return self.conn.execute(sql, args).fetchall()

    async def insert(self, spec: InsertSpec, *rows: tuple[object, ...]) -> None:
        if len(rows) == 1:
            self.conn.execute(spec.sql, rows[0])
        elif len(rows) == 2:  # a token pair: one statement of two rows is about 7,000 instructions fewer
            self.conn.execute(spec.sql_two, rows[0] + rows[1])  # than an executemany of two (callgrind)
        else:
            self.conn.executemany(spec.sql, rows)


def _is_locked(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


def run_batch(conn: sqlite3.Connection, batch: list[Pending]) -> list[Outcome]:
    """One transaction for the batch; raises sqlite3.Error when the batch as a whole fails.

    No savepoint while all goes well: inside one, SQLite copies every page it is
    about to change to a sub-journal first, which measured here as a third of
    the cost of a token INSERT.
    """
    tx = _SqliteTx(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        try:
            outcomes = _run_optimistic(conn, tx, batch)
        except Exception:  # one operation failed: start over, one savepoint each
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [_run_isolated(conn, tx, op) for op, _future in batch]
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


_INSERTED: Outcome = (True, None)


def _run_optimistic(conn: sqlite3.Connection, tx: _SqliteTx, batch: list[Pending]) -> list[Outcome]:
    """The batch in order, except that ``Insert`` rows wait and go with one executemany per
    statement, before the next other operation (which may read them) and at the end.
    Measured: a third less CPU for a token and its audit row than one execute each."""
    outcomes: list[Outcome] = []
    held: dict[str, list[tuple[object, ...]]] = {}
    for op, _future in batch:
        if type(op) is Insert:
            held.setdefault(op.spec.sql, []).extend(op.rows)
            outcomes.append(_INSERTED)
            continue
        if held:
            _send_held(conn, held)
        outcomes.append((True, run_sync(op(tx))))
    if held:
        _send_held(conn, held)
    return outcomes


def _send_held(conn: sqlite3.Connection, held: dict[str, list[tuple[object, ...]]]) -> None:
    for sql, rows in held.items():
        conn.executemany(sql, rows)
    held.clear()


def _run_isolated(conn: sqlite3.Connection, tx: _SqliteTx, op: Operation[Any]) -> Outcome:
    conn.execute("SAVEPOINT op")
    try:
        result = run_sync(op(tx))
    except Exception as exc:  # the operation's own failure: undo only its writes
        conn.execute("ROLLBACK TO op")
        conn.execute("RELEASE op")
        return (False, refused(exc) if isinstance(exc, sqlite3.IntegrityError) else exc)
    conn.execute("RELEASE op")
    return (True, result)


class _Checkpointer(threading.Thread):
    """Copies committed WAL frames into the database file, off the event loop.

    PASSIVE copies the bulk without blocking anyone, and fsyncs the database file.
    Under a steady write load it never catches up with the last commit, so SQLite
    never starts the WAL over on its own and the file grows without bound
    (measured: 340 MB in 12 s of app-token grants). RESTART makes the next commit
    start from the beginning, but it holds writes back while it copies the frames
    left and fsyncs the WAL and the database file (two fsyncs: 5-10 ms each on this
    machine's disk); the loop retries them meanwhile, which was the write
    scenarios' p99 when it ran every second. So it runs only once the WAL holds
    ``RESTART_AT_FRAMES``: every few seconds under the heaviest load, never under a
    light one (a WAL fully copied starts over by itself at the next commit). Its
    short busy timeout makes it give up, until the next round, rather than hold
    writes back while a long read is in the way.
    """

    def __init__(self, path: str, synchronous: str) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self.path, self.synchronous = path, synchronous
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = sqlite_connect(self.path, self.synchronous, busy_timeout_ms=CHECKPOINT_BUSY_TIMEOUT_MS)
        try:
            while not self.stopping.wait(CHECKPOINT_EVERY_SECONDS):
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()

    @staticmethod
    def checkpoint(conn: sqlite3.Connection) -> bool:
        """One round: PASSIVE, then RESTART when the WAL holds ``RESTART_AT_FRAMES`` or more.
        Answers whether it ran the RESTART. Raises ``sqlite3.Error`` as the PRAGMAs do."""
        # (busy, frames in the WAL, frames copied): the bulk, without blocking the writer
        _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames < RESTART_AT_FRAMES:
            return False
        conn.execute("PRAGMA wal_checkpoint(RESTART)")  # the rest; the next commit starts the WAL over
        return True


class SqliteDriver:
    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Pending] = []
        self._flush: asyncio.Handle | None = None  # scheduled run of the pending batch
        self._locked_since: float | None = None
        self._checkpointer: _Checkpointer | None = None

    dialect = "sqlite"

    async def start(self) -> None:
        if self._writer is not None:  # already started (the store and the management path share it)
            return
        self._loop = asyncio.get_running_loop()
        self._reader = sqlite_connect(self.path, self.synchronous)
        self._writer = sqlite_connect(self.path, self.synchronous, busy_timeout_ms=0)
        self._writer.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer thread does it
        self._checkpointer = _Checkpointer(self.path, self.synchronous)
        self._checkpointer.start()

    async def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._writer is not None:
            self._writer.execute("PRAGMA busy_timeout=30000")  # shutting down: waiting is fine now
            self._run_pending()
            self._writer.close()
            self._writer = None
        if self._checkpointer is not None:
            self._checkpointer.stopping.set()
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # ------------------------------------------------------------------ reads

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

    # ----------------------------------------------------------------- writes

    async def write(self, op: Operation[T]) -> T:
        assert self._loop is not None, "driver not started"
        future: asyncio.Future[T] = self._loop.create_future()
        self._enqueue((op, future))
        return await future

    def write_later(self, op: Operation[Any]) -> None:
        self._enqueue((op, None))

    async def transaction(self, op: Operation[T]) -> T:
        """A management transaction: one operation of the group-commit writer, the process's
        only writer, so it never waits for a lock this process holds; it runs with the batch
        it joins and commits with it (its own savepoint if a batch-mate fails; a refused
        constraint raises ``IntegrityError``)."""
        return await self.write(op)

    def _enqueue(self, item: Pending) -> None:
        if self._writer is None or self._loop is None:
            raise StorageUnavailable("the database is closed")
        self._pending.append(item)
        if self._flush is None:  # first write since the last batch: commit two loop iterations later
            self._flush = self._loop.call_soon(self._one_more_iteration)

    def _one_more_iteration(self) -> None:
        """Let the requests read in the next loop iteration join the batch too.

        Measured under 32 connections: batches of about 31 grants instead of 15,
        2 µs less CPU per grant (fewer COMMITs and WAL pages), and lower latency.
        """
        assert self._loop is not None
        self._flush = self._loop.call_soon(self._run_pending)

    def _run_pending(self) -> None:
        self._flush = None
        batch, self._pending = self._pending, []
        if not batch or self._writer is None:
            return
        try:
            outcomes = run_batch(self._writer, batch)
        except sqlite3.Error as exc:
            if _is_locked(exc) and self._retry_later(batch):
                return
            outcomes = [(False, StorageUnavailable(str(exc)))] * len(batch)
        self._locked_since = None
        settle(batch, outcomes)

    def _retry_later(self, batch: list[Pending]) -> bool:
        """Another process holds the write lock: keep the batch (and what joins it) for a moment."""
        now = time.monotonic()
        self._locked_since = self._locked_since or now
        if now - self._locked_since > LOCK_GIVE_UP_SECONDS or self._loop is None:
            return False
        self._pending[:0] = batch
        self._flush = self._loop.call_later(LOCK_RETRY_SECONDS, self._run_pending)
        BUSY_RETRIES.inc()
        return True
