"""Revocation latency across nodes (SPEC §8): with Redis p99 < 100 ms, without Redis p99 < 1 s.

    .venv/bin/python bench/revocation.py                 # PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379
    .venv/bin/python bench/revocation.py --revocations 50 --only redis

For each setup (three nodes on PostgreSQL + Redis; two nodes on PostgreSQL without Redis) a fresh
database is seeded through openplatform's own services and the nodes are started with
``openplatform serve`` (production defaults: invalidation poll every 0.5 s; rate limits off). Then,
``--revocations`` times: an app token is fetched from node 1 and used once on every node (so every node
has it cached), revoked with ``POST /oauth/revoke`` on node 1, and every other node is polled in a
tight loop with ``GET /api/spe/customer/{id}`` until it answers 401. A revocation's latency is the time
from node 1's answer to the revoke until the last other node refused (at most ``--deadline``).

The "after a burst" phase does the same right after ``--burst`` rows were committed at once to the
``invalidations`` table (what a flood of revocations leaves there), a new burst every ``--per-burst``
revocations. The table is printed and written to bench/results/ (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import procs
import report
from seed import Seeded, database, seed

from openplatform.config import Settings

TARGETS_MS = {"redis": 100.0, "no-redis": 1000.0}
NODES = {"redis": 3, "no-redis": 2}


@dataclass
class Phase:
    setup: str
    phase: str
    latencies: list[float] = field(default_factory=list)  # seconds; inf when a node never refused

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else math.nan

    @property
    def timeouts(self) -> int:
        return sum(1 for s in self.latencies if math.isinf(s))

    def row(self) -> str:
        target = TARGETS_MS[self.setup]
        p50, p99, top = (self.percentile(p) * 1000 for p in (50, 99, 100))
        verdict = "ok" if p99 < target else "MISSED"
        return (
            f"| {self.setup} ({NODES[self.setup]} nodes) | {self.phase} | {len(self.latencies)} | {ms(p50)} | "
            f"{ms(p99)} | {ms(top)} | {self.timeouts} | p99 < {target:.0f} ms {verdict} |"
        )


def ms(value: float) -> str:
    return "timeout" if math.isinf(value) else f"{value:.1f}"


# ------------------------------------------------------------------ nodes


@contextmanager
def nodes(count: int, env: dict[str, str], workdir: Path) -> Iterator[list[str]]:
    """``count`` nodes of ``openplatform serve`` on one database, stopped by PID afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for i in range(count):
            port = procs.free_port()
            argv = [str(procs.BIN / "openplatform"), "serve", "--host", "127.0.0.1", "--port", str(port)]
            started.append(procs.start(argv, env, workdir, workdir / f"node-{i + 1}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        for proc, url in zip(started, urls, strict=True):
            procs.wait_ready(proc, url + "/readyz")
        yield urls
    finally:
        for proc in started:
            procs.stop(proc)


# ------------------------------------------------------------------ measuring


class Revoker:
    def __init__(self, client: httpx.AsyncClient, urls: list[str], seeded: Seeded, opts: argparse.Namespace) -> None:
        self.client, self.urls, self.seeded = client, urls, seeded
        self.deadline, self.jitter = opts.deadline, opts.jitter
        self.creds = {"app_id": seeded.app_id, "secret": seeded.secret}

    async def customer(self, url: str, token: str) -> int:
        path = f"{url}/api/spe/customer/{self.seeded.customer_id}"
        return (await self.client.get(path, headers={"Authorization": f"Bearer {token}"})).status_code

    async def once(self) -> list[float]:
        """One revocation on node 1; seconds until each other node refused (inf past the deadline)."""
        first = self.urls[0]
        answer = await self.client.post(
            f"{first}/oauth/credit/token", data={**self.creds, "grant_type": "client_credential"}
        )
        token = answer.json()["result"]["access_token"]
        for url in self.urls:
            assert await self.customer(url, token) == 200, f"{url} refused a fresh token"
        revoked = await self.client.post(f"{first}/oauth/revoke", data={**self.creds, "token": token})
        assert revoked.status_code == 200, revoked.text
        since = time.perf_counter()
        return list(await asyncio.gather(*(self.until_refused(url, token, since) for url in self.urls[1:])))

    async def until_refused(self, url: str, token: str, since: float) -> float:
        while time.perf_counter() - since < self.deadline:
            if await self.customer(url, token) == 401:
                return time.perf_counter() - since
        return math.inf

    async def phase(
        self, phase: Phase, count: int, burst: int = 0, per_burst: int = 1, settings: Settings | None = None
    ) -> None:
        consecutive_timeouts = 0
        for i in range(count):
            if burst and i % per_burst == 0:
                assert settings is not None
                await insert_burst(settings, burst)
            await asyncio.sleep(random.uniform(0, self.jitter))  # sample every phase of the 0.5 s poll
            found = await self.once()
            phase.latencies.append(max(found))
            consecutive_timeouts = consecutive_timeouts + 1 if math.isinf(max(found)) else 0
            if consecutive_timeouts >= 5:
                print(f"  {phase.setup}/{phase.phase}: 5 revocations in a row never reached every node; stopping")
                return


async def insert_burst(settings: Settings, rows: int) -> None:
    """``rows`` invalidation rows committed in one statement, all at the current time."""
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO invalidations (at, kind, key) SELECT $1::float8, 'token', 'x' || lpad(g::text, 63, '0') "
            "FROM generate_series(1, $2::int) g",
            time.time(),
            rows,
        )
    finally:
        await conn.close()


async def measure(
    setup: str, urls: list[str], seeded: Seeded, settings: Settings, opts: argparse.Namespace
) -> list[Phase]:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        revoker = Revoker(client, urls, seeded, opts)
        await revoker.phase(Phase(setup, "warm-up"), 5)
        steady, burst = Phase(setup, "steady"), Phase(setup, f"after {opts.burst:,}-row bursts")
        await revoker.phase(steady, opts.revocations)
        await revoker.phase(burst, opts.revocations, opts.burst, opts.per_burst, settings)
        return [steady, burst]


def run_setup(setup: str, opts: argparse.Namespace, workdir: Path) -> list[Phase]:
    db_opts = argparse.Namespace(database="postgres", postgres_server=opts.postgres_server, sqlite_synchronous="NORMAL")
    with database(db_opts, workdir) as (settings, env):
        seeded = seed(settings)
        env = {k: v for k, v in env.items() if k != "OPENPLATFORM_REDIS_URL"}
        if setup == "redis":
            env["OPENPLATFORM_REDIS_URL"] = opts.redis_url
        with nodes(NODES[setup], env, workdir) as urls:
            print(f"{setup}: {len(urls)} nodes on {settings.database_url}", flush=True)
            phases = asyncio.run(measure(setup, urls, seeded, settings, opts))
    for phase in phases:
        print(phase.row(), flush=True)
    return phases


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default=os.environ.get("OPENPLATFORM_TEST_REDIS", "redis://127.0.0.1:6379/15"))
    parser.add_argument("--revocations", type=int, default=200, help="measured revocations per phase")
    parser.add_argument("--burst", type=int, default=50_000, help="invalidation rows per burst")
    parser.add_argument("--per-burst", type=int, default=10, help="revocations measured after each burst")
    parser.add_argument("--deadline", type=float, default=3.0, help="seconds to wait for every node")
    parser.add_argument(
        "--jitter", type=float, default=0.5, help="random pause (0 to this many seconds) before each revocation"
    )
    parser.add_argument("--only", choices=tuple(NODES), action="append", help="run only these setups")
    return parser.parse_args()


def main() -> None:
    opts = parse_args()
    load_before = report.load_average()
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="openplatform-revocation-") as tmp:
        for setup in opts.only or tuple(NODES):
            phases += run_setup(setup, opts, Path(tmp))
    lines = [
        *report.header(),
        f"- load average (1/5/15 min): {load_before} before, {report.load_average()} after",
        f"- {opts.revocations} revocations per phase; a burst of {opts.burst:,} rows before every "
        f"{opts.per_burst} revocations in the burst phase; deadline {opts.deadline:.0f} s",
        "",
        "| setup | phase | revocations | p50 ms | p99 ms | max ms | timeouts | target |",
        "|---|---|---|---|---|---|---|---|",
        *(phase.row() for phase in phases),
    ]
    report.save("\n".join(lines) + "\n", "revocation")


if __name__ == "__main__":
    main()
