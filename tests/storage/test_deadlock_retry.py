"""A management transaction that PostgreSQL aborts to break a deadlock is tried again (SPEC §8:
an uninstall racing refresh rotations must not fail; found by tests/multinode in CI)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from openplatform.storage.sql.manage import DEADLOCK_RETRIES, retrying_deadlocks


class PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def aborted(sqlstate: str) -> DBAPIError:
    return DBAPIError("UPDATE tokens ...", {}, PgError(sqlstate))


async def test_a_deadlock_victim_is_tried_again() -> None:
    attempts = []

    async def work() -> str:
        attempts.append(1)
        if len(attempts) < DEADLOCK_RETRIES:
            raise aborted("40P01")
        return "done"

    assert await retrying_deadlocks(work) == "done"
    assert len(attempts) == DEADLOCK_RETRIES


async def test_other_errors_and_a_persistent_deadlock_are_raised() -> None:
    async def broken() -> None:
        raise aborted("23505")  # a unique violation is not retried

    with pytest.raises(DBAPIError):
        await retrying_deadlocks(broken)
    calls = []

    async def always() -> None:
        calls.append(1)
        raise aborted("40P01")

    with pytest.raises(DBAPIError):
        await retrying_deadlocks(always)
    assert len(calls) == DEADLOCK_RETRIES
