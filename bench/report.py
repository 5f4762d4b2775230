"""The Markdown table (printed and written to bench/results/) with the machine it ran on."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"app token": 0.5, "token checked": 0.7}  # issue 2: ratio to the bare app, per core
P99_TARGET_MS = 15.0


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


def machine(opts: argparse.Namespace, load_before: str) -> list[str]:
    durability = f"synchronous={opts.sqlite_synchronous}" if opts.database == "sqlite" else "fsync on commit"
    return [
        f"- when: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, commit {git_commit()}",
        f"- machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}",
        f"- database: {opts.database} ({durability}); {opts.connections} connections; "
        f"{opts.duration:.0f} s timed after {opts.warmup:.0f} s warm-up per run",
        f"- load average (1/5/15 min): {load_before} before, {load_average()} after",
    ]


def verdict(name: str, ratio: float, p99: float) -> str:
    target = next((t for key, t in TARGETS.items() if key in name), None)
    parts = [] if target is None else [f"≥ {target}× {'ok' if ratio >= target else 'MISSED'}"]
    parts.append(f"p99 < {P99_TARGET_MS:.0f} ms {'ok' if p99 < P99_TARGET_MS else 'MISSED'}")
    return ", ".join(parts)


def table(rows: list[Any]) -> list[str]:
    lines = [
        "| scenario | openplatform req/s | bare req/s | ratio | p50 ms | p99 ms | errors "
        "| server CPU µs/req (bare) | CPU ratio | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.got.rps:,.0f} | {r.bare.rps:,.0f} | {r.ratio:.2f}× | {r.got.p50_ms:.2f} | "
            f"{r.got.p99_ms:.2f} | {r.got.errors} | {r.got.cpu_us:.0f} ({r.bare.cpu_us:.0f}) | "
            f"{r.cpu_ratio:.2f}× | {verdict(r.name, r.ratio, r.got.p99_ms)} |"
        )
    return lines


def persisted(rows: list[Any]) -> list[str]:
    out = []
    for r in rows:
        if r.persisted:
            counts = ", ".join(f"{n} {kind}" for kind, n in r.persisted.items())
            out.append(
                f"- {r.name}: {r.answered} successful answers (warm-up included); committed: {counts}; "
                f"{r.batch_mean:.1f} write operations per group commit "
                "(a grant's tokens are one; the audit rows of a commit are one)"
            )
    return out


def write(bench: Any, opts: argparse.Namespace, load_before: str) -> Path:
    bare_p99 = ", ".join(f"{r.bare.p99_ms:.2f}" for r in bench.rows)
    text = "\n".join(
        [
            f"# openplatform benchmark ({opts.database})",
            "",
            *machine(opts, load_before),
            "",
            *table(bench.rows),
            "",
            f"Bare app p99 in the same runs (ms): {bare_p99}.",
            "",
            *persisted(bench.rows),
            *(f"- NOTE: {n}" for n in bench.notes),
            "",
        ]
    )
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{opts.database}.md"
    out.write_text(text)
    print(f"written to {out}")
    return out
