"""The benchmark's database: fresh, seeded through openplatform's own services (untimed)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openplatform.config import Settings
from openplatform.runtime import build_admin, make_driver
from openplatform.services.admin_keys import AdminKeys
from openplatform.storage.sql.migrate import upgrade

CALLBACK = "http://localhost:9000/callback"
SECRET_KEY = "bench-server-key-0123456789abcdef-not-for-production"
COUNTS = {
    "app_tokens": "SELECT COUNT(*) AS n FROM tokens WHERE kind = 'access' AND installation_id IS NULL",
    "user_tokens": "SELECT COUNT(*) AS n FROM tokens WHERE kind = 'access' AND installation_id IS NOT NULL",
    "refresh_tokens": "SELECT COUNT(*) AS n FROM tokens WHERE kind = 'refresh'",
    "rotated_refresh": "SELECT COUNT(*) AS n FROM tokens WHERE kind = 'refresh' AND rotated_at IS NOT NULL",
    # identical events of one group commit are one row with a count (storage.sql.store.AuditRows)
    "grant_audits": "SELECT COALESCE(SUM(occurrences), 0) AS n FROM audit_events WHERE event = 'token.issued'",
    "refresh_audits": "SELECT COALESCE(SUM(occurrences), 0) AS n FROM audit_events WHERE event = 'token.refreshed'",
    # alarms: a code presented twice, a rotated refresh token presented again (the bench never does)
    "alarms": "SELECT COALESCE(SUM(occurrences), 0) AS n FROM audit_events "
    "WHERE event IN ('code.replayed', 'refresh.reused')",
}


@dataclass(frozen=True)
class Seeded:
    xspe: str
    customer_id: str  # the first of customer_ids
    app_id: str
    secret: str
    metrics_key: str  # an admin key: /metrics answers only with one
    # every customer of the SPE; with more than one, each has its own installation of the app too
    # (``--customers N``: the user tokens of a platform are spread over many customers and installations)
    customer_ids: tuple[str, ...] = ()


@contextlib.contextmanager
def database(opts: argparse.Namespace, workdir: Path) -> Iterator[tuple[Settings, dict[str, str]]]:
    """Settings and the server environment for a fresh database (dropped afterwards on PostgreSQL)."""
    if opts.database == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        name = f"openplatform_bench_{os.getpid()}"
        asyncio.run(_pg_admin(opts.postgres_server, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
        url = f"{opts.postgres_server}/{name}"
    env = {
        **os.environ,
        "OPENPLATFORM_DATABASE_URL": url,
        "OPENPLATFORM_SECRET_KEY": SECRET_KEY,
        "OPENPLATFORM_RATE_LIMITS": "off",
        "OPENPLATFORM_SQLITE_SYNCHRONOUS": opts.sqlite_synchronous,
        "OPENPLATFORM_CODE_TTL": "600",  # codes are minted up to a minute before their exchange
        "OPENPLATFORM_LOG_LEVEL": "warning",
    }
    settings = Settings(database_url=url, secret_key=SECRET_KEY, sqlite_synchronous=opts.sqlite_synchronous)
    try:
        yield settings, env
    finally:
        if opts.database == "postgres":
            asyncio.run(_pg_admin(opts.postgres_server, f'DROP DATABASE IF EXISTS "{name}"'))


async def _pg_admin(server: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _seed(settings: Settings, customers: int = 1) -> Seeded:
    """One SPE, ``customers`` customers and one app installed SPE-wide (app tokens and user codes
    both work). With more than one customer, each also gets its own installation, which its codes
    and user tokens stand on (``core.authorize.find_installation`` takes the customer's first)."""
    admin = build_admin(settings)
    try:
        spe = await admin.create_spe("Bench SPE")
        customer_ids = []
        for n in range(max(customers, 1)):
            tag = str(n) if n else ""  # the first as before --customers: the GET's answer keeps its length
            customer = await admin.create_customer(spe.xspe, f"Bench Customer {tag}".strip(), f"bench{tag}@example.com")
            customer_ids.append(customer.customer_id)
        app, secret = await admin.create_app("Bench App", "http://localhost:9000/", ["customer:read"])
        await admin.install(app.app_id, xspe=spe.xspe)
        if customers > 1:
            for customer_id in customer_ids:
                await admin.install(app.app_id, customer_id=customer_id)
        metrics_key = await _metrics_key(admin)
    finally:
        await admin.db.close()
    return Seeded(spe.xspe, customer_ids[0], app.app_id, secret, metrics_key, tuple(customer_ids))


async def _metrics_key(admin: Any) -> str:
    """A metrics-only admin key. The code of a commit from before those keys and the admin's
    ``stores`` (``bench/ab.py`` running this bench against an older commit) gets a full admin key."""
    if hasattr(admin, "stores"):
        _key, secret = await AdminKeys(admin.stores, admin.keyring).create("bench: read /metrics", metrics_only=True)
    else:
        _key, secret = await AdminKeys(admin.db, admin.keyring).create("bench: read /metrics")
    return secret


def seed(settings: Settings, customers: int = 1) -> Seeded:
    upgrade(settings)
    return asyncio.run(_seed(settings, customers))


async def _counts(settings: Settings, queries: dict[str, tuple[str, tuple[object, ...]]]) -> dict[str, int]:
    driver = make_driver(settings)
    await driver.start()
    try:
        found = {}
        for name, (sql, args) in queries.items():
            row = await driver.fetchrow(sql, *args)
            found[name] = int(row["n"]) if row else 0
        return found
    finally:
        await driver.close()


def count(settings: Settings, sql: str, *args: object) -> int:
    """The ``n`` column of a one-row query (``SELECT COUNT(*) AS n ...``; ``?`` placeholders)."""
    return asyncio.run(_counts(settings, {"n": (sql, args)}))["n"]


async def _backends(dsn: str) -> list[int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [int(row["pid"]) for row in rows]
    finally:
        await conn.close()


def backends(settings: Settings) -> list[int]:
    """PIDs of the PostgreSQL backends connected to the bench's database (the servers' pools);
    empty on SQLite. Their CPU is the database's share of a request (the server runs them on
    this machine: 127.0.0.1)."""
    return [] if settings.is_sqlite else asyncio.run(_backends(settings.postgres_dsn))


def count_rows(settings: Settings) -> dict[str, int]:
    """Committed rows by ``COUNTS``' names: app tokens, user access tokens, refresh tokens (all and
    rotated), grant and rotation audit events, replay alarms."""
    return asyncio.run(_counts(settings, {name: (sql, ()) for name, sql in COUNTS.items()}))
