"""The management path's database layer: SQLAlchemy Core statements run through the process's driver.

SqlManagement, the directory, the console, accounts, admin keys and the webhook
outbox write their queries with SQLAlchemy Core (``schema.py``'s tables), but
there is one database layer per process: their statements are compiled for
the driver's dialect and run on the same driver, connections and PRAGMAs as the
token store (``runtime.make_database``). Reads go to the driver's reader
connection (SQLite) or pool (PostgreSQL); a transaction is one operation of the
group-commit writer on SQLite (still the only writer of the process) and a pool
connection of its own on PostgreSQL (``Driver.transaction``).

Compiling a statement costs far more than running it, so each statement shape
is compiled once per process: the cache is keyed by SQLAlchemy's cache key,
which leaves the bound values out, and the values of each execution are taken
from that key in the compiled statement's parameter order (what SQLAlchemy's own
compiled cache does inside an engine).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from openplatform.storage.sql.driver import Driver, Row, Tx

T = TypeVar("T")
MAX_COMPILED = 2000  # statement shapes kept compiled; the management path has a few hundred


def _dialect(name: str) -> Dialect:
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

        return PGDialect_asyncpg()  # type: ignore[no-untyped-call]
    from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

    return SQLiteDialect_pysqlite()


class Conn:
    """The statements of one transaction (``Database.transaction``): each call is one statement."""

    __slots__ = ("database", "tx")

    def __init__(self, database: Database, tx: Tx) -> None:
        self.database, self.tx = database, tx

    async def execute(self, statement: ClauseElement) -> int:
        """Run an INSERT, UPDATE or DELETE; the number of rows it changed."""
        sql, args = self.database.compile(statement)
        return await self.tx.execute(sql, *args)

    async def fetch(self, statement: ClauseElement) -> list[Row]:
        sql, args = self.database.compile(statement)
        return await self.tx.fetch(sql, *args)

    async def fetchrow(self, statement: ClauseElement) -> Row | None:
        sql, args = self.database.compile(statement)
        return await self.tx.fetchrow(sql, *args)


class Database:
    """SQLAlchemy Core statements on a driver (SQLite or PostgreSQL), compiled once per shape.

    Rows are the driver's (``sqlite3.Row``, ``asyncpg.Record``): columns by name
    (``row["name"]``), ``dict(row)``, unpacking. The driver is started on first use
    when nothing started it yet (the CLI), so a ``Database`` is ready once built.
    """

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.dialect = _dialect(driver.dialect)
        self.postgres = driver.dialect == "postgresql"
        self._compiled: dict[object, SQLCompiler] = {}
        self._started = False
        self._starting: asyncio.Lock | None = None

    async def start(self) -> None:
        if self._started:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            await self.driver.start()  # a no-op when the token store started it already
            self._started = True

    async def close(self) -> None:
        self._started = False
        await self.driver.close()

    def compile(self, statement: ClauseElement) -> tuple[str, tuple[object, ...]]:
        """The SQL text for this database and the statement's values in its parameter order."""
        key = statement._generate_cache_key()
        if key is None:  # a construct SQLAlchemy cannot cache: compiled every time
            compiled = cast(SQLCompiler, statement.compile(dialect=self.dialect))
            params = compiled.construct_params(escape_names=False)
        else:
            found = self._compiled.get(key.key)
            if found is None:
                if len(self._compiled) >= MAX_COMPILED:
                    self._compiled.clear()
                found = self._compiled[key.key] = cast(
                    SQLCompiler, statement.compile(dialect=self.dialect, cache_key=key)
                )
            compiled = found
            params = compiled.construct_params(extracted_parameters=key.bindparams, escape_names=False)
        for column in compiled.insert_prefetch:  # a column left out of an INSERT: its Python default
            default = column.default
            params[column.key] = getattr(default, "arg", None) if default is not None and default.is_scalar else None
        if compiled.post_compile_params:  # IN (…) of a list: one placeholder per element
            state = compiled.construct_expanded_state(params, escape_names=False)
            return state.statement, tuple(state.positional_parameters)
        return compiled.string, tuple(params[name] for name in compiled.positiontup or ())

    async def read(self, statement: ClauseElement) -> list[Row]:
        """Every row of a SELECT, outside any write transaction."""
        await self.start()
        sql, args = self.compile(statement)
        return await self.driver.fetch(sql, *args)

    async def read_one(self, statement: ClauseElement) -> Row | None:
        await self.start()
        sql, args = self.compile(statement)
        return await self.driver.fetchrow(sql, *args)

    async def scalar(self, statement: ClauseElement) -> Any:
        """The first column of the first row (None when there is no row)."""
        row = await self.read_one(statement)
        return None if row is None else row[0]

    async def transaction(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``work`` as one transaction; it commits when ``work`` returns, and leaves nothing
        when it raises (a refused constraint raises ``openplatform.errors.IntegrityError``).

        On SQLite ``work`` runs inside the group-commit writer: it may only await its
        ``Conn``'s calls, and may run twice (a batch-mate failing replays the batch),
        so it must build its result from its inputs alone. On PostgreSQL it is tried
        again from the start when chosen to break a deadlock.
        """
        await self.start()

        async def operation(tx: Tx) -> T:
            return await work(Conn(self, tx))

        return await self.driver.transaction(operation)

    async def execute(self, statement: ClauseElement) -> int:
        """One statement as a transaction of its own; the number of rows it changed."""
        return await self.transaction(lambda conn: conn.execute(statement))
