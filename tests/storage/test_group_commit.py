"""The group-commit writer (storage/sql/driver.py, sqlite.py, postgres.py).

Concurrent writes share one transaction; an operation that fails is undone
alone while its batch-mates commit; on SQLite a write lock held by another
process delays the batch without blocking the event loop.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from openplatform.config import Settings
from openplatform.models import AuthorizationCode, TokenRecord
from openplatform.runtime import make_driver
from openplatform.storage.sql.driver import (
    BATCH_OPERATIONS,
    Driver,
    Insert,
    InsertSpec,
    Operation,
    Tx,
    to_dollar_params,
)
from openplatform.storage.sql.postgres import CLAIM_SETTINGS, _chained_inserts
from openplatform.storage.sql.sqlite import SqliteDriver
from openplatform.storage.sql.store import INSERT_CODE, INSERT_TOKEN, ConsumeCode, RotateRefresh, SqlStore
from tests.storage.backends import pg_store

# The SQL backends' group-commit writer itself.
pytestmark = pytest.mark.sql


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
        retries = REGISTRY.get_sample_value("openplatform_db_busy_retries_total") or 0.0
        write = asyncio.create_task(driver.write(insert("after the lock")))
        ticks = 0
        for _ in range(20):  # the loop keeps turning while the write waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not write.done()
        # counted each time it found the lock held (every 2 ms): what serve --workers N reports
        assert (REGISTRY.get_sample_value("openplatform_db_busy_retries_total") or 0.0) - retries >= 2
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


def _refresh(digest: str, family: str, now: float, kind: str = "refresh") -> TokenRecord:
    return TokenRecord(digest, kind, "b" * 32, "s", now + 600, installation_id="ins_x", customer_id="cus_x",
                       family_id=family, created_at=now)  # fmt: skip


async def test_refresh_tokens_rotated_in_one_batch_each_win_once(settings: Settings) -> None:
    """Several refresh tokens rotated together, one of them three times (a retry, a theft): on
    PostgreSQL the batch rotates them with one UPDATE; either way each token is rotated exactly
    once, into its first rotation's successor, the repeats get that state, and only the winners'
    pairs are stored."""
    driver = make_driver(settings)
    await driver.start()
    store = SqlStore(driver)
    statements: list[str] = []
    try:
        now = time.time()
        olds = [_refresh(f"{i:064x}", f"f{i}", now) for i in range(1, 5)]
        await store.save_tokens(*olds)
        if settings.database_url.startswith("postgresql"):  # what the writer's connection sends
            driver._conn.add_query_logger(lambda record: statements.append(record.query))  # type: ignore[attr-defined]

        def pair(old: TokenRecord, n: int) -> tuple[TokenRecord, TokenRecord, TokenRecord]:
            fresh = [_refresh(f"{old.digest[:56]}{n:04d}{kind}", old.family_id or "", now, kind)
                     for kind in ("a", "r")]  # fmt: skip
            return old, _refresh(fresh[0].digest, old.family_id or "", now, "access"), fresh[1]

        attempts = [pair(olds[0], 0), pair(olds[1], 1), pair(olds[0], 2), pair(olds[2], 3), pair(olds[0], 4),
                    pair(olds[3], 5)]  # fmt: skip
        outcomes = await asyncio.gather(*(store.rotate_refresh(*attempt) for attempt in attempts))
        assert [o is None for o in outcomes] == [True, True, False, True, False, True]
        for repeat in (outcomes[2], outcomes[4]):  # what the winner left: the grant tells a retry from a theft
            assert repeat is not None and not repeat.revoked and repeat.successor_live
            assert repeat.successor == attempts[0][2].digest and repeat.rotated_at == pytest.approx(now, abs=60)
        stored = await driver.fetch("SELECT digest, successor FROM tokens WHERE app_id = ?", "b" * 32)
        winners = {attempts[n][k].digest for n in (0, 1, 3, 5) for k in (1, 2)}
        assert {r["digest"] for r in stored} == winners | {old.digest for old in olds}
        assert {r["successor"] for r in stored if r["successor"]} == {attempts[n][2].digest for n in (0, 1, 3, 5)}
        if statements:
            assert sum(s.startswith("UPDATE tokens") for s in statements) == 1, statements
    finally:
        await driver.close()


async def test_a_rotation_queued_after_its_familys_revocation_finds_it_revoked(settings: Settings) -> None:
    """A family revoked (a reused refresh token, RFC 7009) and one of its tokens rotated in the same
    batch, in that order: the rotation must fail as it would one at a time. Claiming the batch's
    rotations ahead of it would hand out a live pair of a revoked family."""
    driver = make_driver(settings)
    await driver.start()
    store = SqlStore(driver)
    try:
        now = time.time()
        old, other = _refresh(f"{1:064x}", "fam", now), _refresh(f"{2:064x}", "other", now)
        await store.save_tokens(old, other)
        access, refresh = _refresh(f"{3:064x}", "fam", now, "access"), _refresh(f"{4:064x}", "fam", now)
        access2, refresh2 = _refresh(f"{5:064x}", "other", now, "access"), _refresh(f"{6:064x}", "other", now)
        _revoked, found, rotated = await asyncio.gather(
            store.revoke_family("fam", now + 600), store.rotate_refresh(old, access, refresh),
            store.rotate_refresh(other, access2, refresh2),
        )  # fmt: skip
        assert found is not None and found.revoked
        assert rotated is None  # the other family's rotation is not held up
        for record in (old, access, refresh):  # the old token revoked, the pair never stored
            found = await store.get_token(record.digest)
            assert (found is not None and found.revoked_at is not None) if record is old else found is None
    finally:
        await driver.close()


async def test_batch_claims_run_on_one_generic_plan(pg_database: str) -> None:
    """A batch claim is planned once per connection and its plan kept (postgres.CLAIM_SETTINGS):
    planning it for each batch was 85-100 µs a batch (issue 14). The next test shows that plan
    is fit for any size of table."""
    # A fresh database: the table small, as its statistics say.
    async with pg_store(pg_database, "DELETE FROM tokens", "ANALYZE tokens") as (driver, store):
        now = time.time()
        for batch in range(8):
            olds = [_refresh(f"{batch:032x}{n:032x}", f"f{batch}-{n}", now) for n in range(3)]
            await store.save_tokens(*olds)
            pairs = [(_refresh(f"a{o.digest[1:]}", o.family_id or "", now, "access"),
                      _refresh(f"b{o.digest[1:]}", o.family_id or "", now)) for o in olds]  # fmt: skip
            outcomes = await asyncio.gather(*(store.rotate_refresh(o, *p) for o, p in zip(olds, pairs, strict=True)))
            assert outcomes == [None, None, None]
        plans = await driver._conn.fetch(  # type: ignore[attr-defined]
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE 'UPDATE tokens AS t%'"
        )
        assert [(row["generic_plans"], row["custom_plans"]) for row in plans] == [(8, 0)]


@pytest.mark.parametrize(
    ("claim", "table", "rows"),
    [
        (ConsumeCode.claim_many, "auth_codes", "SELECT md5(n::text) || md5(n::text), 'a', 'i', 'c', 'x', 'r',"
         " 's', NULL, 1e12, NULL FROM generate_series(1, 2000) AS n"),
        (RotateRefresh.claim_many, "tokens", "SELECT md5(n::text) || md5(n::text), 'refresh', 'a', 'i', 'c', 'x', 's',"
         " 'f', 0, 1e12, NULL, NULL, NULL, NULL FROM generate_series(1, 2000) AS n"),
    ],
)  # fmt: skip
async def test_batch_claims_go_by_the_primary_key_whatever_the_table_was(
    pg_database: str, claim: str, table: str, rows: str
) -> None:
    """The claim's plan is made once, when the table may be empty, never analyzed, or analyzed
    when most codes were used (``used_at IS NULL`` then looks like a row or two); such plans
    scanned the whole table for every batch once it had grown (8.4 ms a batch on 1,500 codes,
    21 ms on 16,000 tokens, issue 14), or would rescan the unnest() for each row. Under the
    writer's settings for a batch claim, the plan made on an empty table, and the one made again
    once the table is analyzed, look the keys up in the primary key and join them without a
    nested loop. A temporary table shadows the real one: never analyzed, as autovacuum never
    visits it."""
    import asyncpg

    keys = "'{" + ",".join(f"{n:064x}" for n in range(20)) + "}'"
    arrays = [keys, "'{" + ",".join(["0"] * 20) + "}'"] + ([keys] if table == "tokens" else [])
    execute = f"EXPLAIN (FORMAT JSON) EXECUTE claim({', '.join(arrays)})"  # EXECUTE takes no parameters
    conn = await asyncpg.connect(pg_database)
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP")
            await conn.execute(CLAIM_SETTINGS)
            await conn.execute(f"PREPARE claim AS {to_dollar_params(claim)}")
            plans = [await conn.fetchval(execute)]  # made for the empty table, and kept
            await conn.execute(f"INSERT INTO {table} {rows}")
            plans.append(await conn.fetchval(execute))
            await conn.execute(f"ANALYZE {table}")  # made again, with statistics
            plans.append(await conn.fetchval(execute))
            await conn.execute("DEALLOCATE claim")
    finally:
        await conn.close()
    for plan in plans:
        nodes = list(_plan_nodes(json.loads(plan)[0]["Plan"]))
        kinds = {node["Node Type"] for node in nodes}
        assert not kinds & {"Seq Scan", "Nested Loop"}, kinds
        # a rotation also looks its family up in revoked_families, by its key, row by row
        families = {"revoked_families_pkey"} if table == "tokens" else set()
        assert {node["Index Name"] for node in nodes if "Index Name" in node} == {f"{table}_pkey"} | families
        # by the keys: an index scan without a condition would read the whole index
        for node in nodes:
            if node.get("Index Name") == f"{table}_pkey":
                assert "ANY" in node.get("Index Cond", ""), nodes
            elif "Index Name" in node:
                assert node.get("Index Cond") == "((family_id)::text = (t.family_id)::text)", nodes


def _token_row(n: int, kind: str, family: str) -> tuple[object, ...]:
    """A user token's row as the hot path writes it (sizes as in a bench database)."""
    return (
        f"{n:08x}{n:056x}", kind, f"{7:032x}", "ins_8ae4c429add2d887", "cus_4efbead8b781bd41", "spe_173b60eed0be3cd3",
        "install_login", family, 1.8e9, 1.8e9 + 3600, None, None, None, 1.8e9 + 86400,
    )  # fmt: skip


def _code_row(n: int) -> tuple[object, ...]:
    return (
        f"{n:08x}{n:056x}", f"{7:032x}", "ins_8ae4c429add2d887", "cus_4efbead8b781bd41", "spe_173b60eed0be3cd3",
        "http://localhost:9000/callback", "install_login", None, 1.8e9,
    )  # fmt: skip


@pytest.mark.parametrize("table", ["auth_codes", "tokens"])
async def test_batch_claims_update_rows_on_their_own_pages(pg_database: str, table: str) -> None:
    """A claim changes no indexed column, so PostgreSQL updates the row in place (HOT: no index
    entry written) when its page has room for the new version; otherwise the new version goes
    to another page and into every index again (five for a user token). The tables keep that
    room (schema.py's fillfactors, migration 0008). The worst case: every code of 200 issued
    together claimed in one batch; 200 refresh tokens, each issued beside its access token,
    rotated in one batch. A temporary table with the real one's storage parameters shadows it."""
    import asyncpg

    if table == "tokens":
        issued = [_token_row(n, "refresh" if n % 2 else "access", f"{n // 2:064x}") for n in range(400)]
    else:
        issued = [_code_row(n) for n in range(200)]
    claimed = [row[0] for row in issued if table == "auth_codes" or row[1] == "refresh"]
    spec = INSERT_TOKEN if table == "tokens" else INSERT_CODE
    conn = await asyncpg.connect(pg_database)
    try:
        async with conn.transaction():
            options = await conn.fetchval("SELECT reloptions FROM pg_class WHERE oid = $1::regclass", f"public.{table}")
            await conn.execute(f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP")
            if options:
                await conn.execute(f"ALTER TABLE pg_temp.{table} SET ({', '.join(options)})")
            await conn.execute(*_chained_inserts({spec: issued}))
            pages = "SELECT digest, (ctid::text::point)[0] AS page FROM pg_temp.{} WHERE digest = ANY($1::text[])"
            before = {row["digest"]: row["page"] for row in await conn.fetch(pages.format(table), claimed)}
            claim = ConsumeCode.claim_many if table == "auth_codes" else RotateRefresh.claim_many
            arrays = [claimed, [1.7e9] * len(claimed)] + ([claimed] if table == "tokens" else [])
            assert len(await conn.fetch(to_dollar_params(claim), *arrays)) == len(claimed)
            after = {row["digest"]: row["page"] for row in await conn.fetch(pages.format(table), claimed)}
    finally:
        await conn.close()
    in_place = sum(after[digest] == page for digest, page in before.items()) / len(claimed)
    # Codes: room for one new version of each. Tokens: for about 3/4 of a page's refresh tokens
    # rotated in one transaction (a page of rotations spread in time prunes the old versions).
    assert in_place >= (1.0 if table == "auth_codes" else 0.6), in_place


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


def _pair_of(key: str, now: float, family: str = "") -> tuple[TokenRecord, TokenRecord]:
    """An access and a refresh token whose digests end ``key``'s last 60 characters."""
    family = family or key
    return (_refresh(f"acc0{key[4:]}", family, now, "access"), _refresh(f"ref0{key[4:]}", family, now))


async def test_a_claim_replayed_after_a_batch_mate_failed_claims_its_row_again(settings: Settings) -> None:
    """A batch rolled back because an operation failed (its claims taken ahead of it on PostgreSQL):
    replayed, each claim takes its row again (the first of two claims of one code wins), and the
    winners' tokens are stored, once."""
    driver = make_driver(settings)
    await driver.start()
    store = SqlStore(driver)
    try:
        now = time.time()
        code = f"{7:064x}"
        await store.save_code(AuthorizationCode(code, "a" * 32, "ins_x", "cus_x", "spe_x", "https://a/", "s",
                                                now + 300))  # fmt: skip
        old = _refresh(f"{8:064x}", "fam", now)
        await store.save_tokens(old)
        first, again = _pair_of(code, now), _pair_of(f"{17:064x}", now, code)
        rotated_into = _pair_of(f"{9:064x}", now, "fam")
        results = await asyncio.gather(
            store.consume_code(code, *first), store.consume_code(code, *again),
            driver.write(insert("broken", fail=True)), store.rotate_refresh(old, *rotated_into),
            return_exceptions=True,
        )  # fmt: skip
        assert results[:2] == [True, False] and isinstance(results[2], ValueError) and results[3] is None
        used = await driver.fetchrow("SELECT used_at FROM auth_codes WHERE digest = ?", code)
        assert used is not None and used["used_at"] is not None
        state = await driver.fetchrow("SELECT successor FROM tokens WHERE digest = ?", old.digest)
        assert state is not None and state["successor"] == rotated_into[1].digest
        stored = await driver.fetch("SELECT digest FROM tokens WHERE family_id = ?", code)
        assert sorted(r["digest"] for r in stored) == sorted(t.digest for t in first)
        assert not await store.consume_code(code)  # used, for good
    finally:
        await driver.close()


async def test_a_claims_token_refused_by_the_database_fails_that_claim_alone(settings: Settings) -> None:
    """Two exchanges in one batch whose tokens wait to go together; the second's token collides
    with a stored one. Replayed one operation at a time, the first exchange succeeds, the second
    fails, and its code is not consumed (its savepoint undid its claim)."""
    driver = make_driver(settings)
    await driver.start()
    store = SqlStore(driver)
    try:
        now = time.time()
        codes = [f"{i:064x}" for i in (11, 12)]
        for digest in codes:
            await store.save_code(AuthorizationCode(digest, "a" * 32, "ins_x", "cus_x", "spe_x", "https://a/", "s",
                                                    now + 300))  # fmt: skip
        taken = _refresh(f"{13:064x}", "other", now, "access")
        await store.save_tokens(taken)
        results = await asyncio.gather(
            store.consume_code(codes[0], *_pair_of(codes[0], now)),
            store.consume_code(codes[1], taken, _pair_of(codes[1], now)[1]),
            return_exceptions=True,
        )
        assert results[0] is True and isinstance(results[1], Exception)
        unused = await driver.fetchrow("SELECT used_at FROM auth_codes WHERE digest = ?", codes[1])
        assert unused is not None and unused["used_at"] is None
        assert await store.consume_code(codes[1], *_pair_of(codes[1], now))  # it can still be exchanged
    finally:
        await driver.close()
