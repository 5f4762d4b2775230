"""The Markdown tables (printed and written to bench/results/) with the machine they ran on."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
# issue 14: openplatform's req/s over the raw ASGI ceiling's in the same run, one server core
TARGETS = {"app-token": 0.50, "open-api": 0.60, "introspect": 0.55, "exchange": 0.30, "refresh": 0.30}
P99_TARGET_MS = 10.0
WORKERS_CPU_TARGET = 0.10  # --workers 2: server CPU per request within 10 % of --workers 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=RESULTS.parent)
    return done.stdout.strip() or "unknown"


def durability(opts: argparse.Namespace) -> str:
    return f"synchronous={opts.sqlite_synchronous}" if opts.database == "sqlite" else "fsync on commit"


def header() -> list[str]:
    """When (and at which commit) and on what machine: the first lines of every table's page."""
    return [
        f"- when: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, commit {git_commit()}",
        f"- machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}",
    ]


def save(text: str, name: str, results: Path = RESULTS) -> Path:
    """Print ``text`` and write it to ``<results>/<time>-<name>.md`` (default bench/results/)."""
    print("\n" + text)
    results.mkdir(parents=True, exist_ok=True)
    out = results / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}.md"
    out.write_text(text)
    print(f"written to {out}")
    return out


def machine(opts: argparse.Namespace, load_before: str, pinning: str) -> list[str]:
    return [
        *header(),
        f"- database: {opts.database} ({durability(opts)}); {opts.connections} connections; "
        f"{opts.duration:g} s timed after {opts.warmup:g} s warm-up per run; {pinning}",
        f"- load average (1/5/15 min): {load_before} before, {load_average()} after",
    ]


def verdict(key: str, ratio: float, p99: float) -> str:
    target = TARGETS.get(key)
    parts = [] if target is None or not ratio else [f"≥ {target:.2f}× {'ok' if ratio >= target else 'MISSED'}"]
    parts.append(f"p99 < {P99_TARGET_MS:.0f} ms {'ok' if p99 < P99_TARGET_MS else 'MISSED'}")
    return ", ".join(parts)


def _base(r: Any, name: str, what: str) -> str:
    base = r.baselines.get(name)
    if base is None:
        return "–"
    return f"{base.rps:,.0f}" if what == "rps" else f"{base.cpu_us:.0f}"


def table(rows: list[Any]) -> list[str]:
    """One line per scenario and worker count: openplatform, the raw ASGI ceiling (the ratio the
    targets are about) and the Starlette app; server CPU per request of each (and on PostgreSQL
    the database backends' CPU per request)."""
    with_db = any(r.db_cpu_us for r in rows)
    lines = [
        "| scenario | workers | openplatform req/s | raw ASGI req/s | ratio to raw | Starlette req/s "
        "| ratio to Starlette | p50 ms | p99 ms | errors | server CPU µs/req | raw (Starlette) CPU µs/req "
        "| CPU ratio to raw | target |" + (" database CPU µs/req |" if with_db else ""),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|" if with_db else ""),
    ]
    for r in rows:
        db = (f" {r.db_cpu_us:.0f} |" if r.db_cpu_us else " – |") if with_db else ""
        raw, star = r.ratio("raw"), r.ratio("starlette")
        lines.append(
            f"| {r.name} | {r.workers} | {r.got.rps:,.0f} | {_base(r, 'raw', 'rps')} | "
            f"{f'{raw:.2f}×' if raw else '–'} | {_base(r, 'starlette', 'rps')} | {f'{star:.2f}×' if star else '–'} | "
            f"{r.got.p50_ms:.2f} | {r.got.p99_ms:.2f} | {r.got.errors} | {r.got.cpu_us:.0f} | "
            f"{_base(r, 'raw', 'cpu')} ({_base(r, 'starlette', 'cpu')}) | "
            f"{f'{r.cpu_ratio():.2f}×' if r.cpu_ratio() else '–'} | {verdict(r.key, raw, r.got.p99_ms)} |{db}"
        )
    return lines


def workers_table(rows: list[Any]) -> list[str]:
    """Server CPU per request (all processes of the server) at each worker count beside one worker's."""
    counts = sorted({r.workers for r in rows})
    if len(counts) < 2 or counts[0] != 1:
        return []
    one = {r.key: r for r in rows if r.workers == 1}
    lines = [
        "| scenario | workers | server CPU µs/req | with 1 worker | change | target (within 10 %) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        base = one.get(r.key)
        if r.workers == 1 or base is None or not base.got.cpu_us:
            continue
        change = r.got.cpu_us / base.got.cpu_us - 1
        ok = "ok" if change <= WORKERS_CPU_TARGET else "MISSED"
        lines.append(f"| {r.name} | {r.workers} | {r.got.cpu_us:.0f} | {base.got.cpu_us:.0f} | {change:+.0%} | {ok} |")
    return ["", *lines]


def persisted(rows: list[Any]) -> list[str]:
    out = []
    for r in rows:
        if r.persisted:
            counts = ", ".join(f"{n} {kind}" for kind, n in r.persisted.items())
            batch = f"; {r.batch_mean:.1f} write operations per group commit" if r.batch_mean else ""
            if r.busy_share:  # openplatform_db_busy_retries_total over the commits: waits for another worker
                batch += f", {r.busy_share:.1%} of them retried for the SQLite write lock (SQLITE_BUSY)"
            out.append(
                f"- {r.name}, {r.workers} worker(s): {r.answered} successful answers (warm-up included); "
                f"committed: {counts}{batch}"
            )
    return out


def write(rows: list[Any], notes: list[str], opts: argparse.Namespace, load_before: str, pinning: str) -> Path:
    text = "\n".join(
        [
            f"# openplatform benchmark ({opts.database})",
            "",
            *machine(opts, load_before, pinning),
            "",
            *table(rows),
            *workers_table(rows),
            "",
            *persisted(rows),
            *(f"- NOTE: {n}" for n in notes),
            "",
        ]
    )
    return save(text, opts.database, opts.results)
