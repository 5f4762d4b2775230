"""A management transaction that PostgreSQL aborts to break a deadlock is tried again (SPEC §8:
an uninstall racing refresh rotations must not fail; found by tests/multinode in CI).

The management path runs on the process's one driver (``Driver.transaction``): on PostgreSQL a
pool connection in a transaction of its own, retried from the start by ``retrying_deadlocks``."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import insert, select, update

from openplatform.config import Settings
from openplatform.runtime import make_database
from openplatform.storage.sql.database import Conn
from openplatform.storage.sql.postgres import DEADLOCK_RETRIES, retrying_deadlocks
from openplatform.storage.sql.schema import spes
from tests.conftest import TEST_SECRET_KEY


class PgError(Exception):
    """What asyncpg raises: the SQLSTATE in ``sqlstate``."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


async def test_a_deadlock_victim_is_tried_again() -> None:
    attempts = []

    async def work() -> str:
        attempts.append(1)
        if len(attempts) < DEADLOCK_RETRIES:
            raise PgError("40P01")
        return "done"

    assert await retrying_deadlocks(work) == "done"
    assert len(attempts) == DEADLOCK_RETRIES


async def test_other_errors_and_a_persistent_deadlock_are_raised() -> None:
    async def broken() -> None:
        raise PgError("23505")  # a unique violation is not retried

    with pytest.raises(PgError):
        await retrying_deadlocks(broken)
    calls = []

    async def always() -> None:
        calls.append(1)
        raise PgError("40P01")

    with pytest.raises(PgError):
        await retrying_deadlocks(always)
    assert len(calls) == DEADLOCK_RETRIES


async def test_two_management_transactions_in_a_real_deadlock_both_commit(pg_database: str) -> None:
    """Two transactions on the pool lock two rows in opposite orders: PostgreSQL aborts one
    (40P01), which runs again from the start and commits; neither caller sees an error."""
    database = make_database(Settings(database_url=pg_database, secret_key=TEST_SECRET_KEY))
    await database.start()
    try:
        a, b = (f"spe_dl_{uuid.uuid4().hex[:8]}" for _ in range(2))
        await database.execute(insert(spes).values(xspe=a, name="a", created_at=0.0))
        await database.execute(insert(spes).values(xspe=b, name="b", created_at=0.0))
        both_hold_one = asyncio.Barrier(2)
        attempts: list[str] = []

        def rename(first: str, second: str, name: str):  # type: ignore[no-untyped-def]
            async def transaction(conn: Conn) -> None:
                attempts.append(name)
                await conn.execute(update(spes).where(spes.c.xspe == first).values(name=name))
                if attempts.count(name) == 1:  # the first attempt waits until both hold a row
                    await both_hold_one.wait()
                await conn.execute(update(spes).where(spes.c.xspe == second).values(name=name))

            return transaction

        await asyncio.gather(
            database.transaction(rename(a, b, "one")),
            database.transaction(rename(b, a, "two")),
        )
        assert sorted(attempts) in (["one", "one", "two"], ["one", "two", "two"])  # one victim, run again
        names = {row["name"] for row in await database.read(select(spes.c.name).where(spes.c.xspe.in_([a, b])))}
        assert len(names) == 1  # whichever committed last renamed both rows
    finally:
        await database.close()
