"""``SqlStore.installation_for`` (what GET /oauth/connect reads to issue a code) probes
``ix_installations_app`` twice, the customer's own installation and the SPE-wide one, on SQLite and
PostgreSQL, with an app installed for 2,000 customers of one SPE: it never scans the app's
installations, as ``active_installations`` did on every code (docs/benchmarks.md, "Many customers")."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openplatform.storage.sql.store import INSTALLATION_FOR

pytestmark = pytest.mark.sql

INSTALLED = 2000
PARENTS = [
    "INSERT INTO spes (xspe, name, created_at) VALUES ('spe', 'S', 0)",
    "INSERT INTO apps (app_id, name, host_url, status, scopes, ip_whitelist, created_at, updated_at) "
    "VALUES ('app', 'A', 'https://a.example', 'active', '', '', 0, 0)",
]

SPE_WIDE = "INSERT INTO installations (installation_id, app_id, xspe, installed_at) VALUES ('ins_spe', 'app', 'spe', 0)"


def sqlite_rows(conn: sqlite3.Connection) -> None:
    for statement in PARENTS:
        conn.execute(statement)
    for n in range(INSTALLED):
        conn.execute(
            "INSERT INTO customers (customer_id, xspe, name, contact, status, created_at, updated_at, version) "
            "VALUES (?, 'spe', 'C', '', 'active', 0, 0, 1)",
            (f"cus_{n}",),
        )
        conn.execute(
            "INSERT INTO installations (installation_id, app_id, xspe, customer_id, installed_at) "
            "VALUES (?, 'app', 'spe', ?, 0)",
            (f"ins_{n}", f"cus_{n}"),
        )
    conn.execute(
        "INSERT INTO installations (installation_id, app_id, xspe, installed_at) VALUES ('ins_spe', 'app', 'spe', 0)"
    )


def test_sqlite_probes_the_installation_index_twice(sqlite_template: Path, tmp_path: Path) -> None:
    db = tmp_path / "plan.db"
    shutil.copy(sqlite_template, db)
    with sqlite3.connect(db) as conn:
        sqlite_rows(conn)
        conn.execute("ANALYZE")
        plan = [
            row[3]
            for row in conn.execute(f"EXPLAIN QUERY PLAN {INSTALLATION_FOR}", ("app", "spe", "cus_7", "app", "spe"))
        ]
        found = conn.execute(INSTALLATION_FOR, ("app", "spe", "cus_7", "app", "spe")).fetchall()
    searches = [step for step in plan if "installations" in step]
    assert (
        searches
        == ["SEARCH installations USING INDEX ix_installations_app (app_id=? AND xspe=? AND customer_id=?)"] * 2
    ), plan
    assert sorted((row[0], row[-1]) for row in found) == [("ins_7", 0), ("ins_spe", 1)]


def _plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _plan_nodes(child)


async def test_postgresql_probes_the_installation_index_twice(pg_database: str) -> None:
    """As the pool's connections run it: planned for the values (custom) and for any (generic)."""
    import asyncpg

    numbered = INSTALLATION_FOR
    for n in range(1, 6):
        numbered = numbered.replace("?", f"${n}", 1)
    args = "'app', 'spe', 'cus_7', 'app', 'spe'"
    conn = await asyncpg.connect(pg_database)
    try:
        async with conn.transaction():
            for statement in PARENTS:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO customers (customer_id, xspe, name, contact, status, created_at, updated_at, version) "
                f"SELECT 'cus_' || n, 'spe', 'C', '', 'active', 0, 0, 1 FROM generate_series(0, {INSTALLED - 1}) AS n"
            )
            await conn.execute(
                "INSERT INTO installations (installation_id, app_id, xspe, customer_id, installed_at) "
                f"SELECT 'ins_' || n, 'app', 'spe', 'cus_' || n, 0 FROM generate_series(0, {INSTALLED - 1}) AS n"
            )
            await conn.execute(SPE_WIDE)
            await conn.execute("ANALYZE installations")
            await conn.execute(f"PREPARE lookup AS {numbered}")
            plans = []
            for mode in ("force_custom_plan", "force_generic_plan"):
                await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
                plans.append(json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE lookup({args})")))
            found = await conn.fetch(f"EXECUTE lookup({args})")
            await conn.execute("DEALLOCATE lookup")
            raise _Rollback(plans, sorted((row["installation_id"], row["rank"]) for row in found))
    except _Rollback as done:
        plans, rows = done.args
    finally:
        await conn.close()
    assert rows == [("ins_7", 0), ("ins_spe", 1)]
    for plan in plans:
        nodes = list(_plan_nodes(plan[0]["Plan"]))
        scans = [node for node in nodes if node.get("Relation Name") == "installations"]
        assert len(scans) == 2, nodes
        assert all(node.get("Index Name") == "ix_installations_app" for node in scans), nodes


class _Rollback(Exception):
    """Leaves the transaction, undone, with what it found."""
