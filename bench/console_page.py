"""How long the developer console's app page takes with a large audit log (issue 13 item 9).

    .venv/bin/python bench/console_page.py [--rows 200000] [--renders 20] [--database-url URL]

Seeds a fresh SQLite file (or the given, empty, database) through openplatform's services: an
SPE, a developer and their app, then ``--rows`` audit rows over the last 32 days in time order
(as the token endpoints write them), 90 % of them the app's: 80 % ``token.issued``, 10 %
``token.refreshed``, 5 % ``token.denied`` with four different errors, 5 % other events; and 20
webhook notifications. Then it signs the developer in and GETs ``/console/apps/{app_id}`` (two
charts, the events, the deliveries) and ``?event=token.denied`` through the ASGI app, without
an HTTP server, and prints the wall time per page (median, fastest, slowest) and of the page's
audit statements alone, in milliseconds. On PostgreSQL the seeded table is vacuumed and analysed
first, as autovacuum would after such a load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from sqlalchemy import insert

from openplatform import events
from openplatform.config import Settings
from openplatform.services.accounts import build_accounts
from openplatform.services.console import Console
from openplatform.storage.sql.console import SqlConsole
from openplatform.storage.sql.directory import SqlDirectory
from openplatform.storage.sql.migrate import upgrade
from openplatform.storage.sql.schema import audit_events, webhook_deliveries
from openplatform.web.app import create_app

SECRET_KEY = "bench-server-key-not-for-production-0123456789"
PASSWORD = "bench password 0123"
CHUNK = 1000  # rows per INSERT (8 columns: well under both databases' parameter limits)
ERRORS = ("invalid_grant", "invalid_client", "invalid_request", "invalid_scope")
OTHER = (events.CODE_ISSUED, events.APP_LAUNCHED, events.WEBHOOK_DELIVERED)


def audit_rows(app_id: str, count: int, now: float, seed: int = 1) -> list[dict[str, Any]]:
    """``count`` audit rows over the last 32 days, oldest first."""
    rng = random.Random(seed)
    rows = []
    for at in sorted(now - rng.random() * 32 * 86400 for _ in range(count)):
        pick = rng.random()
        if pick < 0.80:
            event, detail = events.TOKEN_ISSUED, {"grant": rng.choice(("authorization_code", "client_credentials"))}
        elif pick < 0.90:
            event, detail = events.TOKEN_REFRESHED, {"repeated": False}
        elif pick < 0.95:
            event, detail = events.TOKEN_DENIED, {"endpoint": "access_token", "error": rng.choice(ERRORS)}
        else:
            event, detail = rng.choice(OTHER), {}
        rows.append({
            "at": at, "event": event, "app_id": app_id if rng.random() < 0.9 else f"other{rng.randrange(20):027d}",
            "xspe": "spe_bench", "customer_id": None if rng.random() < 0.5 else "cus_bench", "ip": "10.0.0.1",
            "detail": orjson.dumps(detail).decode(), "occurrences": rng.choice((1, 1, 1, 2, 5)),
        })  # fmt: skip
    return rows


async def timed(work: Callable[[], Awaitable[object]], times: int) -> list[float]:
    """Milliseconds of each of ``times`` runs."""
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        await work()
        spent.append((time.perf_counter() - start) * 1000)
    return spent


def line(name: str, spent: list[float]) -> str:
    return f"| {name} | {statistics.median(spent):.1f} | {min(spent):.1f} | {max(spent):.1f} |"


async def run(settings: Settings, rows: int, renders: int) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        admin = app.state.admin
        accounts = build_accounts(admin.stores, admin.keyring)
        user = await accounts.create_user("dev@bench.example", "developer", PASSWORD)
        spe = await admin.create_spe("Bench SPE")
        customer = await admin.create_customer(spe.xspe, "Bench customer")
        created, _secret = await admin.create_app(
            "Bench app", "https://app.example.com/", [], [], "https://hooks.example.com/", owner_id=user.user_id
        )
        app_id = created.app_id
        await admin.install(app_id, customer_id=customer.customer_id)
        database, now = admin.db.database, time.time()
        seeding = time.perf_counter()
        batch = audit_rows(app_id, rows, now)
        for start in range(0, len(batch), CHUNK):
            await database.execute(insert(audit_events).values(batch[start : start + CHUNK]))
        payload = orjson.dumps({"type": 1, "customer_id": "", "action_time": 0, "xspe": spe.xspe}).decode()
        await database.execute(insert(webhook_deliveries).values([
            {"app_id": app_id, "event": "install", "payload": payload, "attempts": 3, "next_attempt_at": now,
             "last_error": "HTTP 502", "created_at": now - i * 60} for i in range(20)
        ]))  # fmt: skip
        seeded = time.perf_counter() - seeding
        if database.postgres:  # what autovacuum does after a bulk load: statistics and the visibility map
            import asyncpg

            connection = await asyncpg.connect(settings.database_url)
            try:
                await connection.execute("VACUUM ANALYZE audit_events")
            finally:
                await connection.close()

        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            form = await client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None
            data = {"csrf_token": token.group(1), "email": "dev@bench.example", "password": PASSWORD}
            assert (await client.post("/login", data=data)).status_code == 303

            async def page(query: str = "") -> None:
                answer = await client.get(f"/console/apps/{app_id}{query}")
                assert answer.status_code == 200, answer.text[:500]
                assert answer.text.count('<g class="bucket">') == 54

            await timed(page, 3)  # warm: compiled statements, templates, the database's cache
            results = [
                line("GET /console/apps/{id}", await timed(page, renders)),
                line("GET /console/apps/{id}?event=token.denied", await timed(lambda: page("?event=token.denied"),
                                                                                  renders)),
            ]  # fmt: skip
        service = Console(admin, SqlConsole(database, admin.db.clock), SqlDirectory(database, admin.db.clock))
        results += [
            line("charts: both (two statements)", await timed(lambda: service.activity(app_id, time.time()), renders)),
            line("recent events, every type", await timed(lambda: service.app_events(app_id), renders)),
            line("webhook deliveries", await timed(lambda: service.deliveries(app_id), renders)),
        ]
    kind = "PostgreSQL" if settings.database_url.startswith("postgresql") else "SQLite"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{kind}, {rows:,} audit rows (seeded in {seeded:.1f} s), {renders} renders each, load average {load:.1f}")
    print("| what | median ms | fastest ms | slowest ms |")
    print("|---|---:|---:|---:|")
    print("\n".join(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="audit rows to seed (default 200000)")
    parser.add_argument("--renders", type=int, default=20, help="timed renders of each page (default 20)")
    parser.add_argument("--database-url", help="an empty database (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{folder}/bench.db"
        settings = Settings(database_url=url, secret_key=SECRET_KEY, rate_limits="off", log_level="WARNING")
        upgrade(settings)
        asyncio.run(run(settings, args.rows, args.renders))


if __name__ == "__main__":
    main()
