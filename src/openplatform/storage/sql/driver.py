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

Writes carry what the writers need to batch them, explicitly: an ``Insert`` names
its table, columns and their types (``InsertSpec``), a ``Claim`` operation the
statement that claims the rows of a whole batch at once, an ``Sql`` statement the
tables it touches. No driver reads SQL text to find out what a statement does.

Besides the hot path's operations, a driver runs the management path's
transactions (``transaction``): on SQLite as one operation of the group-commit
writer (it stays the only writer of the process), on PostgreSQL on a connection of
the pool, in a transaction of its own (see ``storage.sql.database``).
"""

from __future__ import annotations

import asyncio
import re
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

from prometheus_client import Histogram

from openplatform.errors import IntegrityError

T = TypeVar("T")
Row = Any  # sqlite3.Row or asyncpg.Record: both index by column name
Outcome = tuple[bool, Any]  # (True, result) or (False, exception)


JSON_TYPES = frozenset({"text", "float8", "int4", "int8"})


class InsertSpec:
    """One INSERT statement, described: table, columns with their PostgreSQL types, and what a
    conflicting row does (``conflict``: "" raises, or a clause such as ``"ON CONFLICT DO NOTHING"``).

    ``sql`` is the statement for one row, ``sql_two`` for two; the PostgreSQL writer builds from the same
    description the ``INSERT … SELECT … FROM jsonb_array_elements($1::jsonb)`` that sends many rows
    at once. ``tests/storage/test_insert_specs.py`` checks every spec against ``schema.py``.
    """

    __slots__ = ("table", "columns", "pg_types", "conflict", "sql", "sql_two", "head")

    def __init__(self, table: str, columns: tuple[tuple[str, str], ...], conflict: str = "") -> None:
        self.table = table
        self.columns = tuple(name for name, _type in columns)
        self.pg_types = tuple(pg_type for _name, pg_type in columns)
        if not set(self.pg_types) <= JSON_TYPES:  # what a JSON value carries exactly (from_json)
            raise ValueError(f"{table}: a column type not in {sorted(JSON_TYPES)}")
        self.conflict = conflict
        self.head = f"INSERT INTO {table} ({', '.join(self.columns)})"
        tail = f" {conflict}" if conflict else ""
        row = f"({', '.join('?' * len(self.columns))})"
        self.sql = f"{self.head} VALUES {row}{tail}"
        self.sql_two = f"{self.head} VALUES {row}, {row}{tail}"  # two rows, as SQLite's writer sends a pair

    def from_json(self, position: int) -> str:
        """The statement inserting one row per element of ``$position``, a JSON array of rows, each
        an array of the columns' values in order (``orjson.dumps(rows)``): ``INSERT … SELECT r->>0,
        (r->>1)::float8, … FROM jsonb_array_elements($position::jsonb) AS r``.

        Why JSON and not ``unnest()`` of a typed array per column: asyncpg checks every element of
        an array parameter against ``collections.abc.Iterable`` and ``Sized`` (two ``ABCMeta``
        calls, about 2,700 instructions an element, callgrind), a fifth of the server's CPU for a
        code exchange; orjson writes a pair of token rows in 0.2 µs (docs/benchmarks.md,
        "PostgreSQL's rows as one JSON parameter"). A float that is not finite would arrive as
        NULL, and -0.0 as 0.0 (jsonb keeps numbers as numeric): the hot path's floats are clock readings.
        """
        fields = ", ".join(f"r->>{i}" if t == "text" else f"(r->>{i})::{t}" for i, t in enumerate(self.pg_types))
        tail = f" {self.conflict}" if self.conflict else ""
        return f"{self.head} SELECT {fields} FROM jsonb_array_elements(${position}::jsonb) AS r{tail}"


class Sql(str):
    """A hot-path statement that names the tables it touches: the PostgreSQL writer then sends
    the rows held back for other tables later, together (any other statement, a plain ``str``,
    first sends everything held)."""

    tables: frozenset[str]

    def __new__(cls, text: str, *tables: str) -> Sql:
        statement = super().__new__(cls, text)
        statement.tables = frozenset(tables)
        return statement


class KeyedRead(str):
    """A read of at most one row by its key (``?``, the statement's only parameter) that the
    PostgreSQL driver may send together with the same read of other keys: ``many`` is the
    statement for an array of keys (``$1::text[]``), ``key`` the result column that holds a row's
    key. SQLite runs the text as it is."""

    many: str
    key: str

    def __new__(cls, text: str, many: str, key: str) -> KeyedRead:
        statement = super().__new__(cls, text)
        statement.many, statement.key = many, key
        return statement


class Tx(Protocol):
    # The batch's ``Claim`` operations whose rows the writer already claimed together, each with
    # whether it got its row (see ``Claim``); an operation not in it claims its own.
    claimed: dict[Claim, bool]

    async def execute(self, sql: str, *args: object) -> int: ...
    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...
    async def fetch(self, sql: str, *args: object) -> list[Row]: ...
    async def insert(self, spec: InsertSpec, *rows: tuple[object, ...]) -> None:
        """Insert rows whose result nobody reads; the writer may hold them back and send the
        rows of one spec together, before any later statement of the operation and at the end."""
        ...


Operation = Callable[[Tx], Awaitable[T]]
Pending = tuple[Operation[Any], "asyncio.Future[Any] | None"]  # no future: fire and forget (audit rows)


class InsertsOnly:
    """An operation that only hands rows to ``tx.insert`` (``Insert``, a commit's audit rows):
    it changes no row that another operation reads or claims."""

    __slots__ = ()


class Insert(InsertsOnly):
    """An operation that only inserts rows (a token, an audit event): most of the hot path's writes.

    Run as an operation it hands its rows to ``tx.insert``. The SQLite writer
    instead gathers the ``Insert`` rows of a batch by spec and sends each
    statement once with ``executemany``; the PostgreSQL writer holds all of them
    back and sends all of them as one statement, a JSON parameter per spec (``_PgTx``). Rows of different
    statements may thus reach the database in another order than they were
    queued: only use it for tables without foreign keys between them.
    """

    __slots__ = ("spec", "rows")

    def __init__(self, spec: InsertSpec, *rows: tuple[object, ...]) -> None:
        self.spec, self.rows = spec, rows

    async def __call__(self, tx: Tx) -> None:
        await tx.insert(self.spec, *self.rows)


class Claim:
    """An operation that first claims one row with a conditional UPDATE (a code consumed once, a
    refresh token rotated once).

    ``claim_many`` claims the rows of several such operations in one statement (arrays of
    ``claim_args``, the row's key first; it returns the claimed keys): the PostgreSQL writer runs
    it once for the batch and sets ``tx.claimed[op]`` for each operation it covered, which then
    skips its own UPDATE. It covers the claims that come before any operation that may change
    their rows (anything but a ``Claim`` or ``InsertsOnly``: a family's revocation), so the
    outcome is the one of running the batch one operation at a time: of two claims of one row,
    the first gets it; a claim after a revocation finds the row revoked.

    A subclass must give ``claim_many``, ``claim_args`` and ``__call__``: one lacking any is
    refused when it is defined (TypeError), and mypy refuses to instantiate it (``abstractmethod``).
    Not an ``abc.ABC``: ``ABCMeta.__instancecheck__`` made the PostgreSQL writer's
    ``isinstance(op, Claim)`` per queued operation (``leading_claims``) four times dearer
    (40 -> 160-190 ns), so the plain metaclass stays and ``__init_subclass__`` does the check.
    """

    __slots__ = ()
    claim_many: str  # the statement claiming the batch's rows (``Sql``, naming its table)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [name for name in _CLAIM_MEMBERS if _undefined(getattr(cls, name, None))]
        if missing:
            raise TypeError(f"Claim subclass {cls.__name__} does not define {', '.join(missing)}")

    @property
    @abstractmethod
    def claim_args(self) -> tuple[object, ...]:
        """This operation's arguments of ``claim_many``, the claimed row's key first."""

    @abstractmethod
    async def __call__(self, tx: Tx) -> Any:
        """Claim the row unless ``tx.claimed`` already says whether it got it, then write."""


_CLAIM_MEMBERS = ("claim_many", "claim_args", "__call__")


def _undefined(member: object) -> bool:
    """Whether a class lacks ``member`` (None) or has only its abstract declaration."""
    return member is None or bool(getattr(member, "__isabstractmethod__", False))


def leading_claims(batch: Iterable[Pending]) -> list[Claim]:
    """The batch's ``Claim`` operations the writer may claim together before running it: those
    before the first operation that may change the rows they claim (see ``Claim``)."""
    claims: list[Claim] = []
    for op, _future in batch:
        if isinstance(op, Claim):
            claims.append(op)
        elif not isinstance(op, InsertsOnly):
            break
    return claims


class Driver(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def fetchrow(self, sql: str, *args: object) -> Row | None: ...
    async def fetch(self, sql: str, *args: object) -> list[Row]: ...
    async def write(self, op: Operation[T]) -> T: ...
    def write_later(self, op: Operation[Any]) -> None: ...
    async def transaction(self, op: Operation[T]) -> T:
        """Run ``op`` as one transaction of its own (the management path): it commits when ``op``
        returns and leaves nothing when it raises; a refused constraint raises IntegrityError.
        SQLite: one operation of the writer (``op`` only awaits ``tx``); PostgreSQL: a pool
        connection, so ``op`` may hold its transaction open while the writer goes on."""
        ...

    # ``sqlite`` or ``postgresql``: what the management path compiles its statements for.
    dialect: str


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


def refused(exc: Exception) -> IntegrityError:
    """A driver's own refused constraint (``sqlite3.IntegrityError``, asyncpg's
    ``IntegrityConstraintViolationError``) as ``openplatform.errors.IntegrityError``, the one class
    every backend raises; ``exc`` stays its cause."""
    error = IntegrityError(str(exc))
    error.__cause__ = exc
    return error


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
