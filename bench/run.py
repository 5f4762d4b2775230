"""openplatform benchmark (issue 2 item 11): the hot path against the bare HTTP stack.

    .venv/bin/python bench/run.py [--database sqlite|postgres] [--duration 10] [--connections 32]

Seeds a fresh database through openplatform's services, starts ``openplatform
serve`` (one worker) and a bare Starlette+uvicorn app answering a constant
envelope, both pinned to core 0, and loads each with wrk pinned to core 1 on
127.0.0.1. Every scenario is measured against the bare app right before it, with
the same request shape, so load from elsewhere on the machine hits both alike.
Prints a Markdown table and writes it to bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import procs
import report
import wrk
from seed import CALLBACK, Seeded, count_rows, database, seed

from openplatform.config import Settings

Load = Callable[[float], wrk.Result]


@dataclass
class Row:
    name: str
    got: wrk.Result
    bare: wrk.Result
    answered: int  # 2xx/3xx answers over warm-up and timed part
    persisted: dict[str, int] = field(default_factory=dict)
    batch_mean: float = 0.0  # write operations per group commit during the timed part

    @property
    def ratio(self) -> float:
        return self.got.rps / self.bare.rps if self.bare.rps else 0.0

    @property
    def cpu_ratio(self) -> float:
        """The same ratio from server CPU per request: what a core would do if nothing else ran on it."""
        return self.bare.cpu_us / self.got.cpu_us if self.got.cpu_us else 0.0


class Bench:
    """The scenarios of one run: options, the two servers' URLs, the seeded data, the rows."""

    def __init__(
        self, opts: argparse.Namespace, settings: Settings, seeded: Seeded, pair: tuple[procs.Server, procs.Server]
    ) -> None:
        self.opts, self.settings, self.seeded = opts, settings, seeded
        self.op, self.bare = pair
        self.load_core = 1 if procs.can_pin() and not opts.no_pin else None
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def load(
        self,
        server: procs.Server,
        path: str,
        script: str,
        args: list[str],
        seconds: float,
        headers: tuple[str, ...] = (),
    ) -> wrk.Result:
        cpu = server.cpu_seconds()
        got = wrk.run(server.url + path, script, args, seconds, self.opts.connections, self.load_core, headers)
        return dataclasses.replace(got, cpu_seconds=server.cpu_seconds() - cpu)

    def measure(self, name: str, target: Load, bare: Load) -> Row:
        """Warm up and time the bare app, then the same for openplatform."""
        bare(self.opts.warmup)
        base = bare(self.opts.duration)
        warm = target(self.opts.warmup)
        ops, commits = self.op.group_commits(self.seeded.metrics_key)
        with procs.profiled(self.op, self.opts.profile, name, self.opts.duration):
            got = target(self.opts.duration)
        ops_after, commits_after = self.op.group_commits(self.seeded.metrics_key)
        answered = warm.requests - warm.status_errors + got.requests - got.status_errors
        row = Row(name, got, base, answered)
        if commits_after > commits:
            row.batch_mean = (ops_after - ops) / (commits_after - commits)
        self.rows.append(row)
        print(
            f"  {name}: {got.rps:,.0f} req/s (bare {base.rps:,.0f}) = {row.ratio:.2f}x, "
            f"p50 {got.p50_ms:.2f} ms, p99 {got.p99_ms:.2f} ms, errors {got.errors}; "
            f"server CPU {got.cpu_us:.0f} µs/request (bare {base.cpu_us:.0f})"
            + (f"; {row.batch_mean:.1f} writes per group commit" if row.batch_mean else ""),
            flush=True,
        )
        return row

    def credentials(self) -> str:
        return urlencode({"app_id": self.seeded.app_id, "secret": self.seeded.secret})

    # ------------------------------------------------------------- scenarios

    def app_token_grant(self) -> None:
        body = self.credentials() + "&grant_type=client_credential"
        before = count_rows(self.settings)
        row = self.measure(
            "POST /oauth/credit/token (app token)",
            lambda s: self.load(self.op, "/oauth/credit/token", "post_form.lua", [body], s),
            lambda s: self.load(self.bare, "/oauth/credit/token", "post_form.lua", [body], s),
        )
        self.check_persisted(row, before, ("app_tokens", "grant_audits"))

    def code_exchange(self, workdir: Path) -> None:
        body = self.credentials() + "&grant_type=authorization_code"
        code_files = iter(
            [
                self.mint(workdir / "codes-warmup.txt", self.opts.warmup),
                self.mint(workdir / "codes-timed.txt", self.opts.duration),
            ]
        )

        def exchange(seconds: float) -> wrk.Result:
            path = next(code_files)
            minted = sum(1 for _ in path.open())
            result = self.load(self.op, "/oauth/access_token", "exchange.lua", [str(path), body], seconds)
            if result.requests >= minted:
                self.notes.append(
                    f"The code exchange ran out of codes ({minted} minted): its req/s is "
                    "understated; raise --mint-factor."
                )
            return result

        fixed = body + "&code=" + "x" * 43  # the same request shape for the bare app
        before = count_rows(self.settings)
        row = self.measure(
            "POST /oauth/access_token (code exchange)",
            exchange,
            lambda s: self.load(self.bare, "/oauth/access_token", "post_form.lua", [fixed], s),
        )
        self.check_persisted(row, before, ("user_tokens", "refresh_tokens", "grant_audits"))

    def mint(self, out: Path, seconds: float) -> Path:
        """Codes through GET /oauth/connect before the timed part (single use: one per request)."""
        query = urlencode(
            {
                "app_id": self.seeded.app_id,
                "redirect_uri": CALLBACK,
                "response_type": "code",
                "scope": "install_login",
                "xspe": self.seeded.xspe,
                "customer_id": self.seeded.customer_id,
                "state": "bench",
            }
        )
        self.load(self.op, "/oauth/connect?" + query, "mint.lua", [str(out)], seconds * self.opts.mint_factor)
        return out

    def open_api_call(self) -> None:
        path = f"/api/spe/customer/{self.seeded.customer_id}"
        auth = (f"Authorization: Bearer {self.fetch_app_token()}",)
        self.measure(
            "GET /api/spe/customer/{id} (token checked)",
            lambda s: self.load(self.op, path, "get.lua", [], s, auth),
            lambda s: self.load(self.bare, path, "get.lua", [], s, auth),
        )

    def fetch_app_token(self) -> str:
        data = (self.credentials() + "&grant_type=client_credential").encode()
        with urllib.request.urlopen(self.op.url + "/oauth/credit/token", data=data, timeout=5) as response:  # noqa: S310
            return str(json.load(response)["result"]["access_token"])

    def check_persisted(self, row: Row, before: dict[str, int], kinds: tuple[str, ...]) -> None:
        """Every successful answer must be a committed row (requests cut off at the stop may add more)."""
        time.sleep(1.0)  # let the requests wrk abandoned at its stop finish, so the counts agree
        after = count_rows(self.settings)
        for kind in kinds:
            row.persisted[kind] = after[kind] - before[kind]
            if row.persisted[kind] < row.answered:
                self.notes.append(f"{row.name}: only {row.persisted[kind]} {kind} rows for {row.answered} answers!")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-server",
        default="postgresql://postgres@127.0.0.1:5432",
        help="server for --database postgres; a fresh database is created and dropped",
    )
    parser.add_argument("--sqlite-synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    parser.add_argument("--duration", type=float, default=10.0, help="timed seconds per scenario")
    parser.add_argument("--warmup", type=float, default=3.0, help="untimed seconds before each timed part")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--mint-factor",
        type=float,
        default=2.0,
        help="seconds of /oauth/connect minting per second of code exchange",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to cores 0 and 1")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record a py-spy profile of openplatform during each timed run into DIR (pip install py-spy)",
    )
    parser.add_argument(
        "--only",
        choices=("app-token", "exchange", "open-api"),
        action="append",
        help="run only these scenarios (repeatable)",
    )
    return parser.parse_args()


def run_scenarios(bench: Bench, workdir: Path) -> None:
    only = bench.opts.only or ("app-token", "exchange", "open-api")
    if "app-token" in only:
        bench.app_token_grant()
    if "exchange" in only:
        bench.code_exchange(workdir)
    if "open-api" in only:
        bench.open_api_call()


def main() -> None:
    opts = parse_args()
    wrk.require_wrk()
    load_before = report.load_average()
    with tempfile.TemporaryDirectory(prefix="openplatform-bench-") as tmp:
        workdir = Path(tmp)
        with database(opts, workdir) as (settings, env):
            seeded = seed(settings)
            with procs.servers(opts, env, workdir) as pair:
                bench = Bench(opts, settings, seeded, pair)
                print(
                    f"openplatform {pair[0].url} vs bare {pair[1].url}, {opts.database}, "
                    f"{opts.connections} connections, {opts.duration:.0f} s per run",
                    flush=True,
                )
                run_scenarios(bench, workdir)
    report.write(bench, opts, load_before)


if __name__ == "__main__":
    main()
