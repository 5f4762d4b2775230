"""openplatform benchmark (issues 2 and 14): every grant and the token check against the bare HTTP stack.

    .venv/bin/python bench/run.py [--database sqlite|postgres] [--workers 1 --workers 2] [--only SCENARIO]
                                  [--customers N]

Seeds a fresh database through openplatform's services, starts ``openplatform serve`` and two
baselines on the same uvicorn options -- a raw ASGI callable that reads the body and answers a
constant envelope (the ceiling) and a Starlette app answering the same -- all pinned to core 0,
and loads each with wrk pinned to core 1 on 127.0.0.1. Every scenario is measured against the
baselines right before it, with the same request shape, so load from elsewhere on the machine
hits all alike. After each grant scenario the committed tokens are counted: every successful
answer must be one. Prints Markdown tables and writes them to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import common
import httpx
import procs
import report
import wrk
from seed import CALLBACK, Seeded, backends, count, count_rows, database, seed

from openplatform.config import Settings

SCENARIOS = ("app-token", "exchange", "open-api", "refresh", "introspect")
Load = Callable[[float], wrk.Result]  # one wrk run of the given seconds against openplatform
Shape = Callable[[procs.Server, float], wrk.Result]  # the same request shape against a baseline
Prepare = Callable[[float], None]  # untimed work before a run of the given seconds
LOPSIDED = 0.8  # a worker's share of the workers' CPU above which a --workers N row is flagged as such


@dataclass
class Row:
    key: str  # one of SCENARIOS
    name: str
    workers: int
    got: wrk.Result
    baselines: dict[str, wrk.Result]  # "raw", "starlette" (those asked for)
    answered: int  # successful answers over warm-up and timed part
    persisted: dict[str, int] = field(default_factory=dict)
    batch_mean: float = 0.0  # write operations per group commit during the timed part
    busy_share: float = 0.0  # SQLite: group commits retried for the write lock, per group commit
    db_cpu_us: float = 0.0  # PostgreSQL: CPU of the database's backends per request, timed part
    # --workers N: each worker's share of the workers' CPU, timed part, largest first. uvicorn's workers
    # accept from one shared socket and wrk opens its connections at once: in 3 of 14 two-worker rows
    # one worker took nearly all of them, and the row measured one worker (docs/benchmarks.md, "SQLite
    # writers across workers").
    worker_shares: list[float] = field(default_factory=list)

    def ratio(self, baseline: str = "raw") -> float:
        """openplatform's req/s over the baseline's in the adjacent run (0: not measured)."""
        base = self.baselines.get(baseline)
        return self.got.rps / base.rps if base and base.rps else 0.0

    def cpu_ratio(self, baseline: str = "raw") -> float:
        """The same from server CPU per request: what a core would do if nothing else ran on it."""
        base = self.baselines.get(baseline)
        return base.cpu_us / self.got.cpu_us if base and self.got.cpu_us else 0.0


def lines(path: Path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x] if path.exists() else []


class Bench:
    """The scenarios of one run: options, the servers, the seeded data, the rows and notes."""

    def __init__(
        self, opts: argparse.Namespace, settings: Settings, seeded: Seeded, servers: procs.Servers, workdir: Path
    ) -> None:
        self.opts, self.settings, self.seeded, self.servers = opts, settings, seeded, servers
        self.op = servers.op
        self.workdir = workdir / f"workers-{servers.workers}"
        self.workdir.mkdir(exist_ok=True)
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self._files = itertools.count()

    def file(self, stem: str) -> Path:
        return self.workdir / f"{stem}-{next(self._files)}.txt"

    def load(
        self,
        server: procs.Server,
        path: str,
        script: str,
        args: list[str],
        seconds: float,
        headers: tuple[str, ...] = (),
    ) -> wrk.Result:
        return common.timed_load(server, path, script, args, seconds, self.opts, headers)

    def measure(self, key: str, name: str, target: Load, shape: Shape, prepare: Prepare | None = None) -> Row:
        """Warm up and time each baseline with the request shape, then openplatform with the real requests.

        ``prepare(seconds)`` runs before the warm-up and before the timed run, outside what is
        counted (the codes the exchange will redeem): the database CPU per request of the code
        exchange once counted two seconds of minting per second of exchange (issue 14)."""
        warmup, duration = self.opts.warmup, self.opts.duration
        bases = {}
        for base_name, server in self.servers.baselines.items():
            if warmup > 0:
                shape(server, warmup)
            bases[base_name] = shape(server, duration)
        warm = None
        if warmup > 0:
            if prepare is not None:
                prepare(warmup)
            warm = target(warmup)
        if prepare is not None:
            prepare(duration)
        ops, commits, busy = self.op.group_commits(self.seeded.metrics_key)
        db_before = {pid: procs.cpu_seconds(pid) for pid in backends(self.settings)}
        workers_before = self.worker_cpu()
        with procs.profiled(self.op, self.opts.profile, f"{name}-w{self.servers.workers}", duration):
            got = target(duration)
        workers_after = self.worker_cpu()
        db_after = {pid: procs.cpu_seconds(pid) for pid in backends(self.settings)}
        ops_after, commits_after, busy_after = self.op.group_commits(self.seeded.metrics_key)
        row = Row(key, name, self.servers.workers, got, bases, got.answered + (warm.answered if warm else 0))
        if got.requests:  # a backend that came up meanwhile counts from 0; one that left is not seen
            row.db_cpu_us = 1e6 * sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items()) / got.requests
        if commits_after > commits:
            row.batch_mean = (ops_after - ops) / (commits_after - commits)
            row.busy_share = (busy_after - busy) / (commits_after - commits)
        row.worker_shares = cpu_shares(workers_before, workers_after)
        self.rows.append(row)
        raw = bases.get("raw")
        print(
            f"  {name}, {row.workers} worker(s): {got.rps:,.0f} req/s"
            + (f" (raw {raw.rps:,.0f}) = {row.ratio():.2f}x" if raw else "")
            + f", p50 {got.p50_ms:.2f} ms, p99 {got.p99_ms:.2f} ms, errors {got.errors}; "
            f"server CPU {got.cpu_us:.0f} µs/request"
            + (f" (raw {raw.cpu_us:.0f})" if raw else "")
            + (f"; database CPU {row.db_cpu_us:.0f} µs/request" if row.db_cpu_us else "")
            + (f"; {row.batch_mean:.1f} writes per group commit" if row.batch_mean else "")
            + (f", {row.busy_share:.1%} retried for the SQLite write lock" if row.busy_share else "")
            + (f"; workers' CPU shares {'/'.join(f'{x:.0%}' for x in row.worker_shares)}" if row.worker_shares else "")
            + (" (LOPSIDED: about one worker measured)" if row.worker_shares[:1] > [LOPSIDED] else ""),
            flush=True,
        )
        return row

    def worker_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each process under uvicorn's supervisor (``--workers N``: the workers,
        and helpers that use none), by pid; empty with one worker (no supervisor)."""
        if self.servers.workers < 2:
            return {}
        return {pid: procs.cpu_seconds(pid) for pid in procs.process_tree(self.op.pid) if pid != self.op.pid}

    def credentials(self) -> str:
        return urlencode({"app_id": self.seeded.app_id, "secret": self.seeded.secret})

    def post_shape(self, path: str, body: str) -> Shape:
        """A baseline loaded with the same POST: one fixed body of the real one's length."""
        return lambda server, seconds: self.load(server, path, "post_form.lua", [body], seconds)

    # ------------------------------------------------------------- scenarios

    def app_token_grant(self) -> None:
        path, body = "/oauth/credit/token", self.credentials() + "&grant_type=client_credential"
        before = count_rows(self.settings)
        row = self.measure(
            "app-token",
            "POST /oauth/credit/token (app token)",
            lambda s: self.load(self.op, path, "post_form.lua", [body], s),
            self.post_shape(path, body),
        )
        self.check_persisted(row, before, ("app_tokens", "grant_audits"))

    def code_exchange(self) -> None:
        """One fresh code per request, minted through GET /oauth/connect right before each run (untimed)."""
        path, body = "/oauth/access_token", self.credentials() + "&grant_type=authorization_code"
        minted_files: list[Path] = []

        def mint(seconds: float) -> None:
            minted_files.append(self.mint(self.file("codes"), seconds * self.opts.mint_factor))

        def exchange(seconds: float) -> wrk.Result:
            codes = minted_files.pop()
            minted = len(lines(codes))
            result = self.load(self.op, path, "exchange.lua", [str(codes), body], seconds)
            # exchange.lua stops at the last code: the requests in flight then are never answered
            if result.requests + self.opts.connections >= minted:
                self.notes.append(
                    f"The code exchange ran out of codes ({minted} minted): its req/s is understated; "
                    "raise --mint-factor."
                )
            return result

        before = count_rows(self.settings)
        row = self.measure(
            "exchange",
            "POST /oauth/access_token (code exchange)",
            exchange,
            self.post_shape(path, body + "&code=" + "x" * 43),
            prepare=mint,
        )
        self.check_persisted(row, before, ("user_tokens", "refresh_tokens", "grant_audits"))

    def mint(self, out: Path, seconds: float) -> Path:
        """Codes through GET /oauth/connect (single use: one per request), appended to ``out``; the
        requests take the seeded customers in turn (``--customers``)."""
        paths = self.file("connect")
        paths.write_text("".join(f"/oauth/connect?{urlencode(self.connect_params(c))}\n" for c in self.customers()))
        self.load(self.op, "/oauth/connect", "mint.lua", [str(out), str(paths)], seconds)
        return out

    def customers(self) -> tuple[str, ...]:
        """The seeded customers whose codes and user tokens the scenarios use, in turn."""
        return self.seeded.customer_ids or (self.seeded.customer_id,)

    def connect_params(self, customer_id: str) -> dict[str, str]:
        """The query of GET /oauth/connect asking the seeded app's installation for a code for
        ``customer_id`` (SPEC §2.1)."""
        return {
            "app_id": self.seeded.app_id,
            "redirect_uri": CALLBACK,
            "response_type": "code",
            "scope": "install_login",
            "xspe": self.seeded.xspe,
            "customer_id": customer_id,
            "state": "bench",
        }

    def seed_chains(self) -> Path:
        """``--chains`` (at least four per connection) live refresh tokens, each the head of its own
        family, from the real flow: a code from GET /oauth/connect, exchanged at POST
        /oauth/access_token (untimed). The chains take the seeded customers in turn."""
        connects = itertools.cycle([self.connect_params(customer) for customer in self.customers()])
        exchange = {"app_id": self.seeded.app_id, "secret": self.seeded.secret, "grant_type": "authorization_code"}

        async def chain(client: httpx.AsyncClient) -> str:
            found = await client.get("/oauth/connect", params=next(connects))
            code = parse_qs(urlsplit(found.headers["location"]).query)["code"][0]
            answer = await client.post("/oauth/access_token", data={**exchange, "code": code})
            return str(answer.json()["result"]["refresh_token"])

        # each wrk run loses up to one chain per connection (the requests abandoned at its stop)
        wanted = max(self.opts.chains, 4 * self.opts.connections)
        heads = self.file("chains")
        heads.write_text("\n".join(self.concurrently(chain, wanted)) + "\n")
        return heads

    def concurrently(self, call: Callable[[httpx.AsyncClient], Awaitable[str]], times: int) -> list[str]:
        """``times`` results of ``call`` against openplatform, ``--connections`` at a time (seeding)."""

        async def run() -> list[str]:
            gate = asyncio.Semaphore(self.opts.connections)
            async with httpx.AsyncClient(base_url=self.op.url, timeout=30) as client:

                async def one() -> str:
                    async with gate:
                        return await call(client)

                return await asyncio.gather(*(one() for _ in range(times)))

        return asyncio.run(run())

    def refresh_rotation(self) -> None:
        """Each request rotates a distinct live refresh token; each answer's new refresh token goes to
        the back of the queue (``lua/chain.lua``), so the chains continue from run to run."""
        path = "/oauth/refresh_token"
        prefix = self.credentials() + "&grant_type=refresh_code&refresh_token="
        heads = [self.seed_chains()]
        sample = lines(heads[0])[0]

        def rotate(seconds: float) -> wrk.Result:
            out = self.file("chains")
            result = self.load(self.op, path, "chain.lua", [str(heads[0]), str(out), prefix, "refresh_token"], seconds)
            heads[0] = out
            if result.bad:  # chain.lua counts the answers without a new refresh token (and stops when none is left)
                self.notes.append(
                    f"The refresh rotation had {result.bad} answers without a new refresh token "
                    f"({len(lines(out))} chains left): its req/s is understated."
                )
            return result

        before = count_rows(self.settings)
        row = self.measure(
            "refresh",
            "POST /oauth/refresh_token (refresh rotation)",
            rotate,
            self.post_shape(path, prefix + "x" * len(sample)),
        )
        self.check_persisted(row, before, ("user_tokens", "refresh_tokens", "rotated_refresh", "refresh_audits"))

    def introspection(self) -> None:
        """POST /oauth/introspect of ``--tokens`` live app tokens in turn, by the app that owns them;
        every answer must say ``"active":true``."""
        path = "/oauth/introspect"
        grant = {"app_id": self.seeded.app_id, "secret": self.seeded.secret, "grant_type": "client_credential"}

        async def app_token(client: httpx.AsyncClient) -> str:
            answer = await client.post("/oauth/credit/token", data=grant)
            return str(answer.json()["result"]["access_token"])

        pool = self.file("tokens")
        pool.write_text("\n".join(self.concurrently(app_token, self.opts.tokens)) + "\n")
        sample = lines(pool)[0]
        row = self.measure(
            "introspect",
            "POST /oauth/introspect (introspection)",
            lambda s: self.load(self.op, path, "introspect.lua", [str(pool), self.credentials()], s),
            self.post_shape(path, self.credentials() + "&token=" + "x" * len(sample)),
        )
        inactive = row.got.bad
        if inactive:
            self.notes.append(f"MISMATCH {row.name}: {inactive} answers did not say active:true")

    def open_api_call(self) -> None:
        path = f"/api/spe/customer/{self.seeded.customer_id}"
        auth = (f"Authorization: Bearer {self.fetch_app_token()}",)
        self.measure(
            "open-api",
            "GET /api/spe/customer/{id} (token checked)",
            lambda s: self.load(self.op, path, "get.lua", [], s, auth),
            lambda server, s: self.load(server, path, "get.lua", [], s, auth),
        )

    def fetch_app_token(self) -> str:
        data = (self.credentials() + "&grant_type=client_credential").encode()
        with urllib.request.urlopen(self.op.url + "/oauth/credit/token", data=data, timeout=5) as response:  # noqa: S310
            return str(json.load(response)["result"]["access_token"])

    def check_persisted(self, row: Row, before: dict[str, int], kinds: tuple[str, ...]) -> None:
        """Every successful answer must be committed rows (requests cut off at wrk's stop may add more),
        and no code or refresh token may have been presented twice."""
        after = count_rows(self.settings)
        for _ in range(20):  # the requests wrk abandoned at its stop may still commit: wait until none does
            time.sleep(0.25)
            after, last = count_rows(self.settings), after
            if after == last:
                break
        for kind in kinds:
            row.persisted[kind] = after[kind] - before[kind]
            if row.persisted[kind] < row.answered:
                self.notes.append(
                    f"MISMATCH {row.name}: only {row.persisted[kind]} {kind} committed for {row.answered} answers"
                )
        alarms = after["alarms"] - before["alarms"]
        if alarms:
            self.notes.append(f"MISMATCH {row.name}: {alarms} code.replayed / refresh.reused audit events")
        self.check_spread(row)

    def check_spread(self, row: Row) -> None:
        """With ``--customers N`` (N > 1), the user tokens so far must stand on the N customers' own
        installations, every one of them: none on the SPE-wide one."""
        customers = len(self.customers())
        if customers < 2 or "user_tokens" not in row.persisted:
            return
        found = count(
            self.settings,
            "SELECT COUNT(DISTINCT t.installation_id) AS n FROM tokens AS t JOIN installations AS i "
            "ON i.installation_id = t.installation_id WHERE i.customer_id IS NOT NULL",
        )
        if found != customers:
            self.notes.append(f"MISMATCH {row.name}: user tokens on {found} of {customers} customers' installations")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_options(parser, warmup=3.0)
    parser.add_argument("--duration", type=float, default=10.0, help="timed seconds per scenario (at least 1)")
    parser.add_argument(
        "--workers",
        type=int,
        action="append",
        help="openplatform serve --workers N, and the baselines alike (repeatable: one pass each; default 1)",
    )
    parser.add_argument(
        "--baseline",
        choices=tuple(procs.BASELINES),
        action="append",
        help="baselines to load before each scenario (repeatable; default raw and starlette)",
    )
    parser.add_argument(
        "--mint-factor",
        type=float,
        default=3.0,
        # 2.0 ran out in one-second runs, unnoticed until the check counted the requests still in
        # flight at exchange.lua's stop: a code costs about what its exchange does
        help="seconds of /oauth/connect minting per second of code exchange (default 3)",
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=1,
        help="customers seeded, each with its own installation when more than one; the codes and the "
        "refresh chains take them in turn (default 1)",
    )
    parser.add_argument("--chains", type=int, default=1000, help="refresh chains (families) rotated in turn")
    parser.add_argument("--tokens", type=int, default=1000, help="app tokens introspected in turn")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record a py-spy profile of openplatform during each timed run into DIR (pip install py-spy)",
    )
    parser.add_argument(
        "--results", type=Path, default=report.RESULTS, help="directory for the table (default bench/results/)"
    )
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only these scenarios (repeatable)")
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the rows to FILE as JSON (bench/ab.py reads them)"
    )
    return parser.parse_args(argv)


def cpu_shares(before: dict[int, float], after: dict[int, float]) -> list[float]:
    """Each process's share of the CPU the processes used between two readings (CPU seconds by pid),
    largest first; processes that used none (uvicorn's helpers) left out; empty unless two used some."""
    used = [spent for pid, cpu in after.items() if (spent := cpu - before.get(pid, 0.0)) > 0]
    return sorted((spent / sum(used) for spent in used), reverse=True) if len(used) > 1 else []


def row_json(row: Row) -> dict[str, object]:
    """One row as ``--json`` writes it: req/s, latency (ms) and server CPU (µs per request) of
    openplatform and of each baseline loaded, and the ratios the tables print (0: not measured)."""

    def measured(result: wrk.Result) -> dict[str, float]:
        return {"rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "cpu_us": result.cpu_us,
                "errors": result.errors}  # fmt: skip

    return {
        "scenario": row.key, "name": row.name, "workers": row.workers, "openplatform": measured(row.got),
        "baselines": {name: measured(result) for name, result in row.baselines.items()},
        "ratio_raw": row.ratio("raw"), "ratio_starlette": row.ratio("starlette"), "cpu_ratio_raw": row.cpu_ratio("raw"),
        "cpu_ratio_starlette": row.cpu_ratio("starlette"), "batch_mean": row.batch_mean, "db_cpu_us": row.db_cpu_us,
        "busy_share": row.busy_share, "worker_shares": row.worker_shares,
    }  # fmt: skip


def run_scenarios(bench: Bench) -> None:
    steps = {
        "app-token": bench.app_token_grant,
        "exchange": bench.code_exchange,
        "open-api": bench.open_api_call,
        "refresh": bench.refresh_rotation,
        "introspect": bench.introspection,
    }
    for key in SCENARIOS:
        if key in (bench.opts.only or SCENARIOS):
            steps[key]()


def main(argv: list[str] | None = None) -> Path:
    opts = parse_args(argv)
    wrk.require_wrk()
    load_before = report.load_average()
    place = common.placement(opts)
    pinning = f"servers on CPU {place.server}, wrk on CPU {place.load}" if place.server else "not pinned to CPUs"
    baselines = tuple(opts.baseline or procs.BASELINES)
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="openplatform-bench-") as tmp:
        workdir = Path(tmp)
        with database(opts, workdir) as (settings, env):
            seeded = seed(settings, opts.customers)
            for workers in opts.workers or [1]:
                with procs.servers(env, workdir, place.server, workers, baselines) as servers:
                    print(
                        f"openplatform {servers.op.url} ({workers} worker(s)), {opts.database}, "
                        f"{opts.connections} connections, {opts.duration:g} s per run, "
                        f"{opts.customers} customer(s); {pinning}",
                        flush=True,
                    )
                    bench = Bench(opts, settings, seeded, servers, workdir)
                    try:
                        run_scenarios(bench)
                    finally:
                        rows += bench.rows
                        notes += bench.notes
    if opts.json is not None:
        opts.json.write_text(json.dumps({"rows": [row_json(row) for row in rows], "notes": notes}, indent=1))
    return report.write(rows, notes, opts, load_before, pinning)


if __name__ == "__main__":
    main()
