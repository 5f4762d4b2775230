"""One database layer per process (issue 11 item 4): the management path's SQLAlchemy Core
statements are compiled once per dialect and run on the token store's own driver.

On SQLite a management transaction is an operation of the group-commit writer (the one writer
of the process); on PostgreSQL it has a pool connection of its own and may stay open while the
writer commits the hot path's batches."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import insert, select, update

from openplatform.config import Settings
from openplatform.errors import IntegrityError
from openplatform.runtime import make_database
from openplatform.storage.sql.database import Conn
from openplatform.storage.sql.driver import Tx
from openplatform.storage.sql.schema import customers, spes, users
from openplatform.web.app import create_app

# The SQL database layer itself (its driver, compiled statements, transactions).
pytestmark = pytest.mark.sql


def new_xspe() -> str:
    return f"spe_{uuid.uuid4().hex[:12]}"


def test_a_serving_app_has_one_driver_for_tokens_and_management(settings: Settings) -> None:
    app = create_app(settings)
    assert app.state.admin.db.database.driver is app.state.platform.store.inner.driver


async def test_each_statement_shape_is_compiled_once(settings: Settings) -> None:
    database = make_database(settings)
    before = len(database._compiled)
    first = database.compile(select(spes).where(spes.c.xspe == "a").limit(5))
    second = database.compile(select(spes).where(spes.c.xspe == "b").limit(7))
    assert first[0] is second[0] and (first[1][:2], second[1][:2]) == (("a", 5), ("b", 7))  # SQLite: OFFSET 0 too
    assert len(database._compiled) == before + 1
    # IN (…) of a list: one placeholder per element, in order
    sql, args = database.compile(select(users.c.email).where(users.c.user_id.in_(["u1", "u2", "u3"])))
    assert args == ("u1", "u2", "u3") and sql.count("$" if database.postgres else "?") == 3
    # a column left out of an INSERT gets its Python default from the schema
    _sql, args = database.compile(
        insert(customers).values(customer_id="c", xspe="x", name="n", created_at=1.0, updated_at=1.0)
    )
    assert args == ("c", "x", "n", "", "active", 1.0, 1.0, 1)


async def test_management_statements_run_on_the_driver(settings: Settings) -> None:
    database = make_database(settings)
    try:
        xspe = new_xspe()
        await database.execute(insert(spes).values(xspe=xspe, name="Layer", created_at=1.0))
        await database.execute(insert(customers).values(customer_id=f"cus_{xspe}", xspe=xspe, name="C",
                                                        created_at=1.0, updated_at=1.0))  # fmt: skip
        row = await database.read_one(select(customers).where(customers.c.xspe == xspe))
        assert row is not None and (row["contact"], row["status"], row["version"]) == ("", "active", 1)
        with pytest.raises(IntegrityError):  # the same on both databases
            await database.execute(insert(spes).values(xspe=xspe, name="Again", created_at=2.0))

        async def rename_then_fail(conn: Conn) -> None:
            await conn.execute(update(spes).where(spes.c.xspe == xspe).values(name="Renamed"))
            raise RuntimeError("changed my mind")

        with pytest.raises(RuntimeError):
            await database.transaction(rename_then_fail)
        assert await database.scalar(select(spes.c.name).where(spes.c.xspe == xspe)) == "Layer"  # rolled back
    finally:
        await database.close()


async def test_where_a_management_transaction_runs(settings: Settings) -> None:
    """SQLite: inside the writer's batch, with the hot path's operations queued beside it (one
    transaction, one writer). PostgreSQL: on a pool connection, so the writer keeps committing
    while a management transaction is still open."""
    database = make_database(settings)
    await database.start()
    driver = database.driver
    try:
        xspe = new_xspe()
        seen: list[Tx] = []

        async def hot_path(tx: Tx) -> None:
            seen.append(tx)

        if not database.postgres:

            async def management(conn: Conn) -> None:
                seen.append(conn.tx)
                await conn.execute(insert(spes).values(xspe=xspe, name="Batch", created_at=1.0))

            await asyncio.gather(driver.write(hot_path), database.transaction(management))
            assert len(seen) == 2 and seen[0] is seen[1]  # one batch of the one writer
            return

        holding, release = asyncio.Event(), asyncio.Event()

        async def long_management(conn: Conn) -> None:
            seen.append(conn.tx)
            await conn.execute(insert(spes).values(xspe=xspe, name="Open", created_at=1.0))
            holding.set()
            await release.wait()

        open_transaction = asyncio.create_task(database.transaction(long_management))
        await asyncio.wait_for(holding.wait(), 5)
        await asyncio.wait_for(driver.write(hot_path), 5)  # the writer is not held up by it
        assert seen[0].conn is not seen[1].conn  # type: ignore[attr-defined]
        assert await database.read_one(select(spes).where(spes.c.xspe == xspe)) is None  # not committed yet
        release.set()
        await asyncio.wait_for(open_transaction, 5)
        assert await database.read_one(select(spes).where(spes.c.xspe == xspe)) is not None
    finally:
        await database.close()


def test_the_postgresql_statement_cache_stays_bounded() -> None:
    """Management statements with ``IN (…)`` lists make a new text per list length."""
    from openplatform.storage.sql import postgres

    for n in range(postgres._PG_SQL_CACHE_SIZE + 10):
        assert postgres._pg_sql(f"SELECT ? FROM users WHERE user_id IN ({', '.join('?' * (n % 50 + 1))}) -- {n}")
    assert len(postgres._PG_SQL_CACHE) <= postgres._PG_SQL_CACHE_SIZE
