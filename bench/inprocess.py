"""CPU per request of openplatform's ASGI app alone, without an HTTP server: quick iteration on the hot path.

    .venv/bin/python bench/inprocess.py [app-token|open-api|customer-list|connect|code-exchange|refresh|introspect]
                                        [--requests 40000] [--warmup 200] [--mint N] [--database-url URL]
                                        [--access-log text|json] [--callgrind] [--customers N]

Seeds a fresh SQLite file (or the given, empty, database) through openplatform's services, then
drives the app with 32 concurrent tasks sending ASGI messages directly (uvloop, group commit and
the caches as in ``openplatform serve``) and prints CPU and wall time per request. It leaves out
uvicorn and the sockets, which ``bench/run.py`` measures; use it to compare two versions of the
code (``--access-log``: with the per-request line of ``web.access_log``, written to stderr in that
format; send stderr to a file or a pipe), and py-spy (``py-spy record -- .venv/bin/python
bench/inprocess.py``) to see where time goes.

Scenarios: ``app-token`` (``POST /oauth/credit/token``), ``open-api`` (``GET /api/spe/customer/{id}``
with that token: the cached read), ``customer-list`` (``GET /api/spe/customers``: a page and a count
through the management path's SQL), ``connect`` (``GET /oauth/connect``: a code issued, answered
302, for the seeded customers in turn), ``code-exchange`` (``POST /oauth/access_token`` with a fresh code
each time; the codes are minted through ``GET /oauth/connect`` before the clock starts: ``--mint N``
mints N instead of as many as the run needs, so two runs of different lengths do the same untimed
work, as the instruction counts of docs/benchmarks.md need), ``refresh`` (``POST /oauth/refresh_token``:
each task starts a family through the real flow, untimed, then rotates the refresh token each answer
carries, so every request rotates a distinct live refresh token) and ``introspect``
(``POST /oauth/introspect`` of 1,000 live app tokens in turn, by the app that owns them).

``--callgrind``, under ``valgrind --tool=callgrind --instr-atstart=no``, counts the instructions of
the timed part alone and prints them per request, with the group commits it made
(``bench/callgrind.py``; docs/benchmarks.md, "Recovering the consolidation's cost").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import callgrind
import orjson
import uvloop
from procs import cpu_seconds
from seed import SECRET_KEY, _backends, _seed

from openplatform import logs
from openplatform.config import Settings
from openplatform.storage.sql.driver import BATCH_OPERATIONS
from openplatform.storage.sql.migrate import upgrade
from openplatform.web.app import create_app
from openplatform.web.serve import tune_gc

CONCURRENCY = 32
SCENARIOS = ["app-token", "open-api", "customer-list", "connect", "code-exchange", "refresh", "introspect"]
FORM = (b"content-type", b"application/x-www-form-urlencoded")


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]], query: str = "") -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
        "method": method, "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers], "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }  # fmt: skip


async def call(app: Any, scope: dict[str, Any], body: bytes) -> tuple[int, bytes]:
    sent = await messages(app, scope, body)
    return sent[0]["status"], sent[1]["body"]


async def messages(app: Any, scope: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent


def connect_scopes(seeded: Any) -> list[dict[str, Any]]:
    """``GET /oauth/connect`` asking for a code for each seeded customer (``--customers``)."""
    return [
        http_scope(
            "GET",
            "/oauth/connect",
            [],
            urlencode(
                {
                    "app_id": seeded.app_id,
                    "redirect_uri": "http://localhost:9000/callback",
                    "response_type": "code",
                    "scope": "install_login",
                    "xspe": seeded.xspe,
                    "customer_id": customer_id,
                    "state": "bench",
                }
            ),
        )  # fmt: skip
        for customer_id in seeded.customer_ids or (seeded.customer_id,)
    ]


async def mint_codes(app: Any, seeded: Any, count: int) -> list[bytes]:
    """``count`` exchange bodies, each with a fresh code from ``GET /oauth/connect``, for the seeded
    customers in turn."""
    connects = connect_scopes(seeded)
    bodies = []
    for turn in range(count):
        head = (await messages(app, connects[turn % len(connects)], b""))[0]
        location = dict(head["headers"])[b"location"].decode()
        code = parse_qs(urlsplit(location).query)["code"][0]
        bodies.append(urlencode({"grant_type": "authorization_code", "app_id": seeded.app_id,
                                 "secret": seeded.secret, "code": code}).encode())  # fmt: skip
    return bodies


async def exchange(app: Any, body: bytes) -> str:
    """The refresh token of a code exchange (untimed set-up of a refresh chain)."""
    status, answer = await call(app, http_scope("POST", "/oauth/access_token", [FORM]), body)
    assert status == 200, answer
    return str(orjson.loads(answer)["result"]["refresh_token"])


async def measure(
    scenario: str,
    requests: int,
    settings: Settings,
    access_log: str | None = None,
    mint: int | None = None,
    warmup: int = 200,
    counting: Any = None,
    customers: int = 1,
) -> None:
    """``counting``: ``callgrind.marks()``, to count the instructions of the timed part alone;
    ``customers``: seeded customers, each with its own installation when more than one, whose codes
    and refresh chains the scenarios take in turn."""
    seeded = await _seed(settings, customers)
    starlette = create_app(settings)
    app: Any = starlette
    if access_log is not None:  # as `openplatform serve` does with OPENPLATFORM_ACCESS_LOG=true
        # Imported here: code from before the access line (a worktree of an older commit) runs without it.
        from openplatform.web.access_log import AccessLog

        logs.configure("info", "json" if access_log == "json" else "text")
        app = AccessLog(starlette)
    tune_gc()
    async with starlette.router.lifespan_context(starlette):
        grant = urlencode({"grant_type": "client_credential", "app_id": seeded.app_id, "secret": seeded.secret})
        token_scope = http_scope("POST", "/oauth/credit/token", [FORM])
        scope, body = token_scope, grant.encode()
        per_task = requests // CONCURRENCY
        codes: list[bytes] = []
        # refresh: the live refresh tokens; task t rotates chains t, t + 32, t + 64, ... in turn (one
        # each with a single customer, enough for every customer to have one with --customers N)
        chains: list[str] = []
        pool: list[bytes] = []  # introspect: the bodies, in turn
        connects: list[dict[str, Any]] = []  # connect: the requests, in turn
        if scenario in ("open-api", "customer-list"):
            status, answer = await call(app, token_scope, grant.encode())
            token = orjson.loads(answer)["result"]["access_token"]
            bearer = (b"authorization", f"Bearer {token}".encode())
            scope, body = http_scope("GET", f"/api/spe/customer/{seeded.customer_id}", [bearer]), b""
            if scenario == "customer-list":
                scope = http_scope("GET", "/api/spe/customers", [bearer], f"xspe={seeded.xspe}")
        elif scenario == "connect":
            connects = connect_scopes(seeded)
        elif scenario == "code-exchange":
            scope = http_scope("POST", "/oauth/access_token", [FORM])
            codes = await mint_codes(app, seeded, mint if mint is not None else (warmup + per_task) * CONCURRENCY)
        elif scenario == "refresh":
            scope = http_scope("POST", "/oauth/refresh_token", [FORM])
            each = -(-len(seeded.customer_ids or (seeded.customer_id,)) // CONCURRENCY)
            chains = [await exchange(app, code) for code in await mint_codes(app, seeded, CONCURRENCY * each)]
            prefix = urlencode({"app_id": seeded.app_id, "secret": seeded.secret, "grant_type": "refresh_code"})
        elif scenario == "introspect":
            scope = http_scope("POST", "/oauth/introspect", [FORM])
            credentials = urlencode({"app_id": seeded.app_id, "secret": seeded.secret})
            for _ in range(1000):
                token = orjson.loads((await call(app, token_scope, grant.encode()))[1])["result"]["access_token"]
                pool.append(f"{credentials}&token={token}".encode())
        statuses: dict[int, int] = {}
        inactive = 0

        async def worker(task: int, count: int) -> None:
            nonlocal inactive
            for turn in range(count):
                if chains:  # the refresh token the last answer carried (a token is url-safe)
                    slot = task + CONCURRENCY * (turn % (len(chains) // CONCURRENCY))
                    status, answer = await call(app, scope, f"{prefix}&refresh_token={chains[slot]}".encode())
                    if status == 200:
                        chains[slot] = orjson.loads(answer)["result"]["refresh_token"]
                elif pool:
                    status, answer = await call(app, scope, pool[(task * count + turn) % len(pool)])
                    inactive += b'"active":true' not in answer
                elif connects:
                    status = (await messages(app, connects[(task * count + turn) % len(connects)], b""))[0]["status"]
                else:
                    status, _answer = await call(app, scope, codes.pop() if codes else body)
                statuses[status] = statuses.get(status, 0) + 1

        await asyncio.gather(*(worker(task, warmup) for task in range(CONCURRENCY)))
        commits = group_commits()
        database = await database_cpu(settings)
        if counting is not None:
            counting.start()
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(task, per_task) for task in range(CONCURRENCY)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        if counting is not None:
            counting.stop()
        database_after = await database_cpu(settings)
        done = per_task * CONCURRENCY
        assert not inactive, f"{inactive} introspections answered active=false"
        print(f"{scenario}: {done} requests, {1e6 * cpu / done:.1f} µs CPU and {1e6 * wall / done:.1f} µs wall "
              f"per request; statuses {statuses}")  # fmt: skip
        if database_after:  # a backend that came up meanwhile counts from 0
            used = sum(seconds - database.get(pid, 0.0) for pid, seconds in database_after.items())
            print(f"database CPU (PostgreSQL backends, timed part): {1e6 * used / done:.1f} µs per request")
        batches, operations = (after - before for after, before in zip(group_commits(), commits, strict=True))
        if counting is not None:
            # Per request, the writer's work depends on how many operations share a group commit: compare
            # two versions' counts at the same batching (valgrind's pace changes it on PostgreSQL).
            instructions = callgrind.dumped_instructions(os.getpid())
            counted = f"{instructions / done:,.0f}" if instructions else "none (not under valgrind --tool=callgrind?)"
            print(f"instructions per request (timed part): {counted}; {batches:.0f} group commits of "
                  f"{operations / batches if batches else 0:.1f} operations")  # fmt: skip


async def database_cpu(settings: Settings) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to the bench's database (the app's
    pool and writer: this machine's 127.0.0.1), by pid; empty on SQLite. As bench/run.py's
    database CPU, but around the timed part alone: the codes minted before it are not counted."""
    if settings.is_sqlite:
        return {}
    return {pid: cpu_seconds(pid) for pid in await _backends(settings.postgres_dsn)}


def group_commits() -> tuple[float, float]:
    """Group commits so far in this process, and the write operations they carried."""
    samples = {sample.name: sample.value for metric in BATCH_OPERATIONS.collect() for sample in metric.samples}
    return samples.get("openplatform_db_batch_operations_count", 0.0), samples.get(
        "openplatform_db_batch_operations_sum", 0.0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", default="app-token", choices=SCENARIOS)
    parser.add_argument("--requests", type=int, default=40_000)
    parser.add_argument("--warmup", type=int, default=200, help="untimed requests per task first (32 tasks)")
    parser.add_argument("--mint", type=int, help="code-exchange: codes to mint before the clock starts")
    parser.add_argument("--database-url", help="an empty database to use instead of a fresh SQLite file")
    parser.add_argument("--access-log", choices=["text", "json"], help="log a line per request (to stderr)")
    parser.add_argument("--customers", type=int, default=1,
                        help="customers seeded, each with its own installation when more than one; the codes "
                        "and refresh chains take them in turn")  # fmt: skip
    parser.add_argument("--callgrind", action="store_true",
                        help="under valgrind --tool=callgrind --instr-atstart=no: count the timed part only "
                        "(bench/callgrind.py)")  # fmt: skip
    opts = parser.parse_args()
    counting = callgrind.marks() if opts.callgrind else None
    url = opts.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='op-inprocess-')}/bench.db"
    os.environ.update(OPENPLATFORM_DATABASE_URL=url, OPENPLATFORM_SECRET_KEY=SECRET_KEY,
                      OPENPLATFORM_RATE_LIMITS="off", OPENPLATFORM_LOG_LEVEL="warning",
                      OPENPLATFORM_CODE_TTL="600")  # codes are minted before the clock starts  # fmt: skip
    settings = Settings()
    upgrade(settings)  # Alembic runs its own event loop: before ours starts
    uvloop.run(measure(opts.scenario, opts.requests, settings, opts.access_log, opts.mint, opts.warmup, counting,
                       opts.customers))  # fmt: skip


if __name__ == "__main__":
    main()
