"""The PostgreSQL driver's keyed reads (storage/sql/postgres.py ``KeyedReads``): the reads of a code or
token with its backing (SPEC §8) asked for together go as one statement for all their keys.

The first tests drive ``KeyedReads`` with a stand-in for asyncpg's pool; the last ones read a real
PostgreSQL through ``SqlStore``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from openplatform.config import Settings
from openplatform.errors import StorageUnavailable
from openplatform.models import TokenRecord, read_backing
from openplatform.runtime import make_driver
from openplatform.storage.sql.driver import KeyedRead
from openplatform.storage.sql.postgres import KEYED_READS, READER_SETTINGS, KeyedReads
from openplatform.storage.sql.rows import token_from_row
from openplatform.storage.sql.store import CODE_BACKED, TOKEN_BACKED
from tests.storage.backends import pg_store

pytestmark = pytest.mark.sql

READ = KeyedRead("SELECT k FROM t WHERE k = ?", "SELECT k FROM t WHERE k = ANY($1::text[])", "k")


class Pool:
    """asyncpg's pool as ``KeyedReads`` uses it: ``fetch(many, keys)``, held until ``release``d."""

    def __init__(self, present: set[str], error: BaseException | None = None) -> None:
        self.present, self.error = present, error
        self.statements: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def fetch(self, sql: str, keys: list[str]) -> list[dict[str, str]]:
        assert sql == READ.many
        self.statements.append(keys)
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return [{"k": key} for key in keys if key in self.present]


async def test_reads_asked_together_go_as_one_statement() -> None:
    reads = KeyedReads(max_in_flight=2)
    reads.pool = pool = Pool({"a", "b", "c"})
    got = await asyncio.gather(*(reads.read(READ, key) for key in ["a", "b", "x", "a", "c"]))
    assert got == [{"k": "a"}, {"k": "b"}, None, {"k": "a"}, {"k": "c"}]
    assert pool.statements == [["a", "b", "x", "c"]]  # each key once


async def test_reads_gather_while_the_statements_are_out() -> None:
    """Beyond ``max_in_flight`` statements out, the next reads wait for one to come back and go
    together with it (as the writer's group commit does)."""
    reads = KeyedReads(max_in_flight=1)
    reads.pool = pool = Pool({"a", "b", "c", "d"})
    pool.release.clear()
    first = asyncio.ensure_future(reads.read(READ, "a"))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(reads.read(READ, key)) for key in "bcd"]
    await asyncio.sleep(0.01)
    assert pool.statements == [["a"]]
    pool.release.set()
    assert [await f for f in (first, *later)] == [{"k": "a"}, {"k": "b"}, {"k": "c"}, {"k": "d"}]
    assert pool.statements == [["a"], ["b", "c", "d"]]


@pytest.mark.parametrize(
    ("error", "raised"), [(OSError("connection refused"), StorageUnavailable), (ValueError("bad"), ValueError)]
)
async def test_a_failed_statement_fails_each_of_its_reads(error: BaseException, raised: type[BaseException]) -> None:
    """The database unreachable is StorageUnavailable for every request that waited (a 503, as
    for any read); the next reads go again."""
    reads = KeyedReads()
    reads.pool = pool = Pool({"a"}, error)
    results = await asyncio.gather(reads.read(READ, "a"), reads.read(READ, "b"), return_exceptions=True)
    assert [type(r) for r in results] == [raised, raised]
    pool.error = None
    assert await reads.read(READ, "a") == {"k": "a"}


async def test_a_cancelled_read_leaves_the_others_their_rows() -> None:
    reads = KeyedReads()
    reads.pool = pool = Pool({"a", "b"})
    pool.release.clear()
    gone = asyncio.ensure_future(reads.read(READ, "a"))
    kept = asyncio.ensure_future(reads.read(READ, "a"))
    other = asyncio.ensure_future(reads.read(READ, "b"))
    await asyncio.sleep(0.01)
    gone.cancel()
    pool.release.set()
    assert (await kept, await other) == ({"k": "a"}, {"k": "b"})
    assert gone.cancelled()


async def test_reads_out_when_the_driver_closes_fail_as_unavailable() -> None:
    reads = KeyedReads()
    reads.pool = pool = Pool({"a"})
    pool.release.clear()
    read = asyncio.ensure_future(reads.read(READ, "a"))
    await asyncio.sleep(0.01)
    await reads.stop()
    with pytest.raises(StorageUnavailable):
        await read


def _token(n: int, now: float) -> TokenRecord:
    return TokenRecord(
        f"{n:064x}", "refresh", "app", "scope", now + 3600, installation_id="ins", customer_id="cus", xspe="spe",
        family_id=f"f{n}", created_at=now, family_expires_at=now + 7200,
    )  # fmt: skip


def _keyed_statements() -> tuple[float, float]:
    samples = {s.name: s.value for metric in KEYED_READS.collect() for s in metric.samples}
    return samples["openplatform_db_keyed_reads_count"], samples["openplatform_db_keyed_reads_sum"]


async def test_tokens_read_together_are_one_statement_and_read_as_one_at_a_time(pg_database: str) -> None:
    """On PostgreSQL the grants' reads of a token with its backing, asked for in one turn of the
    event loop, are one statement (one round trip, one executor start: docs/benchmarks.md,
    "PostgreSQL's read of a code or token with its backing"), and each gets what the statement for
    its key alone gives."""
    async with pg_store(pg_database, "DELETE FROM tokens") as (driver, store):
        now = time.time()
        tokens = [_token(n, now) for n in range(6)]
        await store.save_tokens(*tokens)
        digests = [t.digest for t in tokens] + [f"{99:064x}", tokens[0].digest]
        before = _keyed_statements()
        together = await asyncio.gather(*(store.get_token_backed(d) for d in digests))
        after = _keyed_statements()
        assert (after[0] - before[0], after[1] - before[1]) == (1, 7)  # one statement, seven keys
        alone = []
        for digest in digests:
            row = await driver.fetchrow(str(TOKEN_BACKED), digest)  # the plain text: one key, the pool
            alone.append(None if row is None else (token_from_row(row), read_backing(row)))
        assert together == alone
        assert together[0] is not None and together[0][0] == tokens[0]
        assert together[6] is None


@pytest.mark.parametrize(("read", "table"), [(CODE_BACKED, "auth_codes"), (TOKEN_BACKED, "tokens")])
async def test_keyed_reads_go_by_the_primary_key_whatever_the_table_was(
    pg_database: str, read: KeyedRead, table: str
) -> None:
    """The keyed reads' connections keep one generic plan per statement (``READER_SETTINGS``),
    made when the table may be empty or never analyzed: it must look the keys up in the primary
    key, not scan the table. A temporary table shadows the real one (never analyzed: autovacuum
    never visits it); the plan made empty, kept after 2,000 rows, and made again after ANALYZE."""
    import asyncpg

    keys = "'{" + ",".join(f"{n:064x}" for n in range(8)) + "}'"
    conn = await asyncpg.connect(pg_database, server_settings=READER_SETTINGS)
    try:
        async with conn.transaction():
            await conn.execute(f"CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP")
            await conn.execute(f"PREPARE keyed AS {read.many}")
            explain = f"EXPLAIN (FORMAT JSON) EXECUTE keyed({keys})"
            plans = [await conn.fetchval(explain)]
            columns = "digest, app_id, installation_id, customer_id, xspe, scope, expires_at"
            kind = ", kind, created_at" if table == "tokens" else ", redirect_uri, code_challenge"
            values = "'refresh', 0" if table == "tokens" else "'r', NULL"
            await conn.execute(
                f"INSERT INTO {table} ({columns}{kind}) SELECT md5(n::text) || md5(n::text), 'a', 'i', 'c', 'x',"
                f" 's', 1e12, {values} FROM generate_series(1, 2000) AS n"
            )
            plans.append(await conn.fetchval(explain))
            await conn.execute(f"ANALYZE {table}")
            plans.append(await conn.fetchval(explain))
            await conn.execute("DEALLOCATE keyed")
    finally:
        await conn.close()
    for plan in plans:
        nodes = list(_plan_nodes(json.loads(plan)[0]["Plan"]))
        assert "Seq Scan" not in {node["Node Type"] for node in nodes}, nodes
        by_key = [node for node in nodes if node.get("Index Name") == f"{table}_pkey"]
        assert by_key and all("ANY" in node.get("Index Cond", "") for node in by_key), nodes


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


@pytest.mark.parametrize(("pool_size", "readers"), [(1, 1), (3, 3), (8, 4)])
async def test_the_keyed_reads_take_four_connections_at_most(pg_database: str, pool_size: int, readers: int) -> None:
    """Two keyed reads (a code's, a token's), two statements out each: the pool of the keyed reads
    is no larger, nor larger than ``postgres_pool_size`` (README's settings table says so)."""
    driver = make_driver(Settings(database_url=pg_database, secret_key="k" * 32, postgres_pool_size=pool_size))
    await driver.start()
    try:
        assert driver._reads.pool.get_max_size() == readers  # type: ignore[attr-defined]
    finally:
        await driver.close()
