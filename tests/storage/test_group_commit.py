"""The group-commit writer (storage/sql/driver.py, sqlite.py, postgres.py).

Concurrent writes share one transaction; an operation that fails is undone
alone while its batch-mates commit; on SQLite a write lock held by another
process delays the batch without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from pathlib import Path

from openplatform.config import Settings
from openplatform.models import AuthorizationCode, TokenRecord
from openplatform.runtime import make_driver
from openplatform.storage.sql.driver import BATCH_OPERATIONS, Driver, Insert, InsertSpec, Operation, Tx
from openplatform.storage.sql.sqlite import SqliteDriver
from openplatform.storage.sql.store import SqlStore


def insert(key: str, fail: bool = False) -> Operation[str]:
    async def op(tx: Tx) -> str:
        await tx.execute("INSERT INTO invalidations (at, kind, key) VALUES (?, ?, ?)", 1.0, "test", key)
        if fail:
            raise ValueError(f"{key} fails after writing")
        return key

    return op


async def keys(driver: Driver) -> set[str]:
    rows = await driver.fetch("SELECT key FROM invalidations WHERE kind = 'test'")
    return {row["key"] for row in rows}


def commits_so_far() -> tuple[float, float]:
    samples = {s.name: s.value for metric in BATCH_OPERATIONS.collect() for s in metric.samples}
    return samples["openplatform_db_batch_operations_count"], samples["openplatform_db_batch_operations_sum"]


async def test_a_failing_operation_is_undone_alone(settings: Settings) -> None:
    driver = make_driver(settings)
    await driver.start()
    try:
        results = await asyncio.gather(
            driver.write(insert("first")),
            driver.write(insert("broken", fail=True)),
            driver.write(insert("last")),
            return_exceptions=True,
        )
        assert results[0] == "first" and results[2] == "last"
        assert isinstance(results[1], ValueError)
        assert await keys(driver) == {"first", "last"}
    finally:
        await driver.close()


async def test_concurrent_writes_share_commits(settings: Settings) -> None:
    driver = make_driver(settings)
    await driver.start()
    try:
        commits, operations = commits_so_far()
        written = await asyncio.gather(*(driver.write(insert(f"k{i}")) for i in range(64)))
        new_commits, new_operations = commits_so_far()
        assert sorted(written) == sorted(f"k{i}" for i in range(64))
        assert new_operations - operations == 64
        assert new_commits - commits < 64 / 4  # batches formed: far fewer commits than writes
        assert await keys(driver) == set(written)
    finally:
        await driver.close()


async def test_sqlite_waits_out_another_writer_without_blocking_the_loop(tmp_path: Path, sqlite_template: Path) -> None:
    path = tmp_path / "locked.db"
    shutil.copy(sqlite_template, path)
    driver = SqliteDriver(str(path))
    await driver.start()
    held, release = threading.Event(), threading.Event()

    def other_process_writes() -> None:  # e.g. the CLI, holding the write lock for a while
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        release.wait(5)
        conn.execute("COMMIT")
        conn.close()

    other = threading.Thread(target=other_process_writes)
    other.start()
    try:
        await asyncio.to_thread(held.wait, 5)
        write = asyncio.create_task(driver.write(insert("after the lock")))
        ticks = 0
        for _ in range(20):  # the loop keeps turning while the write waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not write.done()
        release.set()
        assert await asyncio.wait_for(write, 5) == "after the lock"
        assert await keys(driver) == {"after the lock"}
    finally:
        release.set()
        other.join()
        await driver.close()


async def test_identical_audit_events_of_one_commit_are_one_counted_row(settings: Settings) -> None:
    """Every event is counted; identical ones of one batch share a row, even when the batch
    is replayed because another operation failed."""

    driver = make_driver(settings)
    await driver.start()
    store = SqlStore(driver)
    try:
        app_id = "a" * 32
        for _ in range(5):
            store.audit("token.issued", app_id=app_id, grant="client_credentials", ip="192.0.2.1")
        store.audit("token.issued", app_id=app_id, grant="client_credentials", ip="192.0.2.2")
        with_id = InsertSpec("invalidations", (("id", "int8"), ("at", "float8"), ("kind", "text"), ("key", "text")))
        bad_row = Insert(with_id, (1, 1.0, "x", "y"))
        results = await asyncio.gather(
            driver.write(bad_row), driver.write(bad_row), return_exceptions=True
        )  # the second duplicates the first's id: the batch is replayed one operation at a time
        assert isinstance(results[1], Exception) and results[0] is None
        store.audit("token.issued", app_id=app_id, grant="client_credentials", ip="192.0.2.1")  # the next batch
        await driver.write(insert("flush"))
        rows = await driver.fetch("SELECT ip, occurrences FROM audit_events WHERE app_id = ? ORDER BY id", app_id)
        assert [(r["ip"], r["occurrences"]) for r in rows] == [("192.0.2.1", 5), ("192.0.2.2", 1), ("192.0.2.1", 1)]
    finally:
        await driver.close()


async def test_codes_redeemed_in_one_batch_each_win_once(settings: Settings) -> None:
    """Several codes redeemed together, one of them three times: on PostgreSQL the batch claims
    them with one statement; either way each code is consumed exactly once, its repeats fail
    (the grant then revokes what it produced), and only the winners' tokens are stored."""

    driver = make_driver(settings)
    await driver.start()
    store = SqlStore(driver)
    try:
        now = time.time()
        codes = [f"{i:064x}" for i in range(1, 5)]
        for digest in codes:
            await store.save_code(AuthorizationCode(digest, "a" * 32, "ins_x", "cus_x", "spe_x", "https://a/", "s",
                                                    now + 300))  # fmt: skip

        def token(code: str, n: int) -> TokenRecord:
            return TokenRecord(f"{code[:60]}{n:04d}", "access", "a" * 32, "s", now + 60, installation_id="ins_x",
                               customer_id="cus_x", family_id=code, created_at=now)  # fmt: skip

        attempts = [codes[0], codes[1], codes[0], codes[2], codes[0], codes[3]]
        outcomes = await asyncio.gather(*(store.consume_code(c, token(c, n)) for n, c in enumerate(attempts)))
        assert outcomes.count(True) == 4
        assert [o for c, o in zip(attempts, outcomes, strict=True) if c == codes[0]].count(True) == 1
        stored = await driver.fetch("SELECT family_id, revoked_at FROM tokens WHERE app_id = ?", "a" * 32)
        assert sorted(r["family_id"] for r in stored) == sorted(codes)  # only the winners' tokens
        assert all(r["revoked_at"] is None for r in stored)  # revoking a replay's family is the grant's call
    finally:
        await driver.close()
