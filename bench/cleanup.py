"""Cleanup under load (issue 8 finding 6, SPEC §8): app-token latency while the server's periodic
cleanup deletes 1,000,000 expired tokens.

    .venv/bin/python bench/cleanup.py [--database sqlite|postgres] [--rows 1000000]

A benchmark, not a test: it prints a Markdown table and writes it to bench/results/.

1. Creates a fresh database (PostgreSQL: a new database on --postgres-server, dropped afterwards),
   seeds an SPE, a customer and an app through openplatform's services, then bulk-inserts ``--rows``
   app-token rows that expired more than the cleanup's keep window (1 h) ago, inside the database
   (a recursive CTE on SQLite, generate_series on PostgreSQL; keys shaped like real ones: 6 bytes of
   issue time, then random bits).
2. Starts ``openplatform serve --workers 1`` pinned to core 0 with ``OPENPLATFORM_CLEANUP_INTERVAL``
   set so that its first cleanup pass begins after the baseline: the in-server periodic task is what
   runs beside serving in production (``openplatform db cleanup`` is a separate process and would only
   compete for the write lock).
3. Loads ``POST /oauth/credit/token`` with wrk pinned to core 1 (``-t1 -c32``, 127.0.0.1): a warm-up,
   a baseline without cleanup, then a run that starts when the server logs ``cleanup pass started``
   and is stopped (SIGINT: wrk still reports) when it logs ``cleanup pass finished``.
4. Checks that no expired seeded row is left and every answered grant is a committed token, stops the
   server by PID and reports p50/p99/max of both runs, the pass's duration and its counts.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import common
import procs
import report
import wrk
from seed import Seeded, count, database, seed

from openplatform.config import Settings
from openplatform.runtime import make_driver
from openplatform.storage.sql.driver import Tx

KEEP_SECONDS = 3600.0  # the cleanup's grace after expiry (storage.sql.store.SqlStore.cleanup)
APP_TOKEN_TTL = 7200.0
P99_TARGET_MS = 50.0  # issue 8: app-token p99 during the cleanup of 1,000,000 expired rows
FINISHED = re.compile(r"cleanup pass finished in ([0-9.]+) s, deleted: (\{.*?\})")

SQLITE_SEED = """
INSERT INTO tokens (digest, kind, app_id, scope, created_at, expires_at)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
SELECT printf('%012x', CAST((? + i * ?) * 1000 AS INTEGER)) || lower(hex(randomblob(26))),
       'access', ?, 'customer:read', ? + i * ?, ? + i * ? + ?
FROM n
"""
POSTGRES_SEED = """
INSERT INTO tokens (digest, kind, app_id, scope, created_at, expires_at)
SELECT lpad(to_hex(((?::float8 + i * ?::float8) * 1000)::bigint), 12, '0')
         || substr(md5(random()::text) || md5(random()::text), 1, 52),
       'access', ?, 'customer:read', ?::float8 + i * ?::float8, ?::float8 + i * ?::float8 + ?::float8
FROM generate_series(0, ? - 1) AS i
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common.add_options(parser, warmup=3.0)
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired token rows to seed")
    parser.add_argument("--baseline", type=float, default=10.0, help="timed seconds of load without cleanup")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="give up if the pass takes longer")
    return parser.parse_args()


# ------------------------------------------------------------------- seeding


async def _insert_expired(settings: Settings, app_id: str, rows: int) -> None:
    """``rows`` app tokens issued over the day before they expired, all expired more than the keep window ago."""
    step = 86400.0 / rows
    first_issue = time.time() - KEEP_SECONDS - 60 - APP_TOKEN_TTL - 86400.0
    driver = make_driver(settings)
    await driver.start()
    try:
        args: tuple[object, ...]
        if settings.is_sqlite:
            args = (rows, first_issue, step, app_id, first_issue, step, first_issue, step, APP_TOKEN_TTL)
            sql = SQLITE_SEED
        else:
            args = (first_issue, step, app_id, first_issue, step, first_issue, step, APP_TOKEN_TTL, rows)
            sql = POSTGRES_SEED

        async def insert(tx: Tx) -> int:
            return await tx.execute(sql, *args)

        inserted = await driver.write(insert)
        assert inserted == rows, (inserted, rows)
    finally:
        await driver.close()
    if not settings.is_sqlite:  # statistics and a visibility map, as a database that has been running has
        await _pg_vacuum(settings.postgres_dsn)


async def _pg_vacuum(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE tokens")
    finally:
        await conn.close()


# ------------------------------------------------------------------- the run


def wait_for_line(log: Path, needle: str, timeout: float, offset: int = 0) -> tuple[str, int]:
    """The first line of the server log from ``offset`` on containing ``needle`` (and the offset after it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        found = text.find(needle, offset)
        if found >= 0:
            end = text.find("\n", found)
            if end >= 0:
                return text[text.rfind("\n", 0, found) + 1 : end], end
        time.sleep(0.02)
    raise RuntimeError(f"the server did not log {needle!r} within {timeout:.0f} s")


def run_until(server: procs.Server, body: str, opts: argparse.Namespace, log: Path) -> tuple[wrk.Result, str]:
    """wrk from the moment the server logs the pass's start until it logs its end (then SIGINT)."""
    _line, offset = wait_for_line(log, "cleanup pass started", opts.warmup + opts.baseline + 60)
    cpu = server.cpu_seconds()
    argv = wrk.command(server.url + "/oauth/credit/token", "post_form.lua", [body], opts.max_seconds, opts.connections)
    load = subprocess.Popen(
        procs.pinned(common.placement(opts).load, argv),
        env=wrk.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        finished, _ = wait_for_line(log, "cleanup pass finished", opts.max_seconds, offset)
    finally:
        if load.poll() is None:
            os.kill(load.pid, signal.SIGINT)
        out, err = load.communicate(timeout=60)
    result = wrk.parse(out, err, load.returncode)
    return dataclasses.replace(result, cpu_seconds=server.cpu_seconds() - cpu), finished


@dataclasses.dataclass(frozen=True)
class Outcome:
    baseline: wrk.Result
    during: wrk.Result
    seconds: float  # how long the pass took, as the server logged it
    counts: dict[str, int]  # what it deleted
    left: int  # expired rows still there afterwards
    answered: int  # successful grant answers (warm-up included)
    granted: int  # tokens committed
    pressure: str  # CPU pressure at the end of the pass


def bench(opts: argparse.Namespace, settings: Settings, env: dict[str, str], seeded: Seeded, workdir: Path) -> Outcome:
    interval = opts.warmup + opts.baseline + 5.0  # the first pass starts this long after the server does
    env = {**env, "OPENPLATFORM_CLEANUP_INTERVAL": str(interval), "OPENPLATFORM_LOG_LEVEL": "info"}
    body = f"app_id={seeded.app_id}&secret={seeded.secret}&grant_type=client_credential"
    port = procs.free_port()
    server_proc = procs.start_openplatform(port, common.placement(opts).server, env, workdir)
    log = workdir / "openplatform.log"
    try:
        server = procs.Server(f"http://127.0.0.1:{port}", server_proc.pid)
        procs.wait_ready(server_proc, server.url + "/readyz")
        path = "/oauth/credit/token"
        warm = [common.timed_load(server, path, "post_form.lua", [body], opts.warmup, opts)] if opts.warmup > 0 else []
        baseline = common.timed_load(server, path, "post_form.lua", [body], opts.baseline, opts)
        print(
            f"  baseline: {baseline.rps:,.0f} req/s, p50 {baseline.p50_ms:.2f} ms, p99 {baseline.p99_ms:.2f} ms",
            flush=True,
        )
        during, finished = run_until(server, body, opts, log)
        pressure = cpu_pressure()
    except RuntimeError:
        print(f"--- openplatform.log\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        procs.stop(server_proc)
    match = FINISHED.search(json.loads(finished)["msg"])
    if match is None:
        raise RuntimeError(f"cannot read the pass's result from: {finished}")
    seconds, counts = float(match.group(1)), json.loads(match.group(2))
    print(
        f"  during the cleanup ({seconds:.1f} s, {counts}): {during.rps:,.0f} req/s, "
        f"p50 {during.p50_ms:.2f} ms, p99 {during.p99_ms:.2f} ms, max {during.max_ms:.1f} ms",
        flush=True,
    )
    left = count(settings, "SELECT COUNT(*) AS n FROM tokens WHERE expires_at < ?", time.time() - KEEP_SECONDS)
    granted = count(settings, "SELECT COUNT(*) AS n FROM tokens")  # the seeded rows are gone: what was granted
    answered = sum(r.answered for r in (*warm, baseline, during))
    return Outcome(baseline, during, seconds, counts, left, answered, granted, pressure)


def cpu_pressure() -> str:
    """Linux PSI: the share of time some runnable task waited for a CPU (10 s and 60 s averages)."""
    try:
        fields = dict(f.split("=") for f in Path("/proc/pressure/cpu").read_text().splitlines()[0].split()[1:])
    except (OSError, IndexError, ValueError):
        return "unknown"
    return f"{fields.get('avg10', '?')}% / {fields.get('avg60', '?')}%"


def write_report(opts: argparse.Namespace, load_before: str, seed_seconds: float, got: Outcome) -> None:
    baseline, during = got.baseline, got.during
    verdict = "ok" if during.p99_ms < P99_TARGET_MS else "MISSED"
    lines = [
        f"# openplatform cleanup benchmark ({opts.database})",
        "",
        *report.header(),
        f"- database: {opts.database} ({report.durability(opts)}); {opts.rows:,} expired token rows seeded in "
        f"{seed_seconds:.1f} s; {opts.connections} connections",
        f"- load average (1/5/15 min): {load_before} before, {report.load_average()} after; "
        f"CPU pressure (some task waiting for a CPU, 10 s / 60 s): {got.pressure} during, {cpu_pressure()} after",
        f"- cleanup pass: {got.seconds} s, deleted {got.counts}; expired rows left: {got.left}",
        "",
        "| app-token grants | req/s | p50 ms | p99 ms | max ms | errors | server CPU µs/req | target p99 < 50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        f"| without cleanup ({baseline.seconds:.0f} s) | {baseline.rps:,.0f} | {baseline.p50_ms:.2f} | "
        f"{baseline.p99_ms:.2f} | {baseline.max_ms:.1f} | {baseline.errors} | {baseline.cpu_us:.0f} | |",
        f"| during the cleanup ({during.seconds:.1f} s) | {during.rps:,.0f} | {during.p50_ms:.2f} | "
        f"{during.p99_ms:.2f} | {during.max_ms:.1f} | {during.errors} | {during.cpu_us:.0f} | {verdict} |",
        "",
    ]
    if got.left:
        lines.append(f"- NOTE: {got.left} expired rows were left after the pass!")
    lines.append(f"- {got.answered} grants answered (warm-up included), {got.granted} tokens committed")
    if got.granted < got.answered:
        lines.append("- NOTE: fewer committed tokens than answered grants!")
    report.save("\n".join(lines), f"cleanup-{opts.database}")


def main() -> None:
    opts = parse_args()
    wrk.require_wrk()
    load_before = report.load_average()
    with tempfile.TemporaryDirectory(prefix="openplatform-bench-") as tmp:
        workdir = Path(tmp)
        with database(opts, workdir) as (settings, env):
            seeded = seed(settings)
            started = time.monotonic()
            asyncio.run(_insert_expired(settings, seeded.app_id, opts.rows))
            seed_seconds = time.monotonic() - started
            print(f"{opts.database}: {opts.rows:,} expired token rows seeded in {seed_seconds:.1f} s", flush=True)
            got = bench(opts, settings, env, seeded, workdir)
    write_report(opts, load_before, seed_seconds, got)


if __name__ == "__main__":
    main()
