"""Two commits through bench/run.py, alternated on one machine: issue 11's before/after check.

    .venv/bin/python bench/ab.py 1c81c75 HEAD                       # app token, code exchange, GET; both databases
    .venv/bin/python bench/ab.py A B [--only app-token --only exchange --only open-api]
                                     [--database sqlite --database postgres] [--rounds 2]
                                     [--duration 5] [--warmup 2] [--baseline raw --baseline starlette]
                                     [any bench/run.py option: --no-pin, --postgres-server URL, ...]

Each commit is checked out in a ``git worktree`` of its own (in a temporary directory, removed at the
end; ``.`` is this checkout as it is, uncommitted changes included), and *this* checkout's
``bench/run.py`` runs against it with ``PYTHONPATH=<worktree>/src``: the same harness, scenarios,
baselines and uvicorn options for both sides, one worker. The runs alternate, per database: round 1
A then B, round 2 B then A, and so on, so a drift of the machine's load hits both sides alike.

Printed at the end (and written to ``bench/results/ab-<time>.md``): for each database and scenario
the median over the rounds of each side's ratio to the raw ASGI ceiling, to Starlette, and of its
server CPU µs per request, then B over A, and each side's median p99 (ms). Issue 11 asks B's ratios
within 3 % of A's, or better.
With the defaults (two rounds, three scenarios, two databases, 5 s timed after 2 s of warm-up) it
takes about 11 minutes; the estimate is printed first. Run it on a quiet machine: it pins the servers
to CPU 0 and wrk to CPU 1 (``bench/run.py``'s defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCENARIOS = ("app-token", "exchange", "open-api")  # issue 11's three
DATABASES = ("sqlite", "postgres")
SEED_SECONDS = 10  # migrations, seeding and the servers' start, per run of bench/run.py
TOLERANCE = 0.03  # issue 11: within 3 % of before


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="the commit before (A), or . for this checkout as it is")
    parser.add_argument("b", help="the commit after (B), or . for this checkout as it is")
    parser.add_argument("--only", choices=("app-token", "exchange", "open-api", "refresh", "introspect"),
                        action="append", help="scenarios (repeatable; default the three of issue 11)")  # fmt: skip
    parser.add_argument("--database", choices=DATABASES, action="append", help="repeatable; default both")
    parser.add_argument("--rounds", type=int, default=2, help="runs per side and database, alternated (default 2)")
    parser.add_argument("--duration", type=float, default=5.0, help="timed seconds per run (bench/run.py)")
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed seconds before each (bench/run.py)")
    parser.add_argument("--baseline", choices=("raw", "starlette"), action="append",
                        help="baselines (repeatable; default both)")  # fmt: skip
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="where the summary is written")
    # Any other option goes to bench/run.py as it is (--no-pin, --postgres-server URL, --connections N).
    opts, opts.run_options = parser.parse_known_args(argv)
    opts.only = opts.only or list(SCENARIOS)
    opts.database = opts.database or list(DATABASES)
    opts.baseline = opts.baseline or ["raw", "starlette"]
    return opts


def schedule(rounds: int, databases: list[str]) -> list[tuple[int, str, str]]:
    """(round, database, side) in the order they run: A, B in odd rounds, B, A in even ones."""
    order = []
    for number in range(1, rounds + 1):
        for database in databases:
            sides = ("A", "B") if number % 2 else ("B", "A")
            order += [(number, database, side) for side in sides]
    return order


def estimate_seconds(opts: argparse.Namespace, mint_factor: float = 3.0) -> float:
    """What the runs take: per run the start, then each scenario loads every baseline and
    openplatform (warm-up and timed part each); the code exchange mints its codes first."""
    per_scenario = (len(opts.baseline) + 1) * (opts.warmup + opts.duration)
    minting = mint_factor * (opts.warmup + opts.duration) if "exchange" in opts.only else 0.0
    per_run = SEED_SECONDS + len(opts.only) * per_scenario + minting
    return per_run * 2 * opts.rounds * len(opts.database)


@contextmanager
def checkout(commit: str, place: Path) -> Iterator[Path]:
    """The ``src`` directory of ``commit`` in a worktree under ``place`` (``.``: this checkout's)."""
    if commit == ".":
        yield ROOT / "src"
        return
    tree = place / commit.replace("/", "_")
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    try:
        yield tree / "src"
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


def run_once(src: Path, database: str, opts: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """One ``bench/run.py`` against the code in ``src``; its rows (``--json``)."""
    argv = [sys.executable, str(BENCH / "run.py"), "--database", database, "--workers", "1",
            "--duration", f"{opts.duration:g}", "--warmup", f"{opts.warmup:g}", "--json", str(out),
            "--results", str(out.parent), *(f"--only={s}" for s in opts.only),
            *(f"--baseline={b}" for b in opts.baseline), *opts.run_options]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run(argv, cwd=ROOT, env=env, check=True)
    data = json.loads(out.read_text())
    for note in data["notes"]:
        print(f"NOTE ({out.stem}): {note}", flush=True)
    return list(data["rows"])


def summary(results: dict[tuple[str, str], list[dict[str, Any]]], opts: argparse.Namespace) -> list[str]:
    """The Markdown table: per database and scenario, each side's medians over the rounds and B/A.

    ``results`` maps (database, side) to every row its runs gave."""
    lines = [
        "| database | scenario | A ratio to raw | B ratio to raw | B / A | A ratio to Starlette | B ratio to Starlette "
        "| B / A | A server CPU µs/req | B server CPU µs/req | B / A | A p99 ms | B p99 ms | within 3 % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for database in opts.database:
        for scenario in opts.only:
            a = [r for r in results.get((database, "A"), []) if r["scenario"] == scenario]
            b = [r for r in results.get((database, "B"), []) if r["scenario"] == scenario]
            if not a or not b:
                continue
            cells, verdicts = [], []
            for key, better_high in (("ratio_raw", True), ("ratio_starlette", True), ("cpu_us", False)):
                va, vb = _median(a, key), _median(b, key)
                change = vb / va if va and vb else 0.0
                cells += [_fmt(va, key, a), _fmt(vb, key, b), f"{change:.3f}" if change else "–"]
                if change:
                    verdicts.append(change >= 1 - TOLERANCE if better_high else change <= 1 + TOLERANCE)
            cells += [_fmt(_median(a, "p99_ms"), "p99_ms", a), _fmt(_median(b, "p99_ms"), "p99_ms", b)]  # no verdict
            verdict = ("yes" if all(verdicts) else "NO") if verdicts else "–"
            lines.append(f"| {database} | {a[0]['name']} | {' | '.join(cells)} | {verdict} |")
    return lines


def _value(row: dict[str, Any], key: str) -> float:
    if key in ("cpu_us", "p99_ms"):
        return float(row["openplatform"].get(key) or 0.0)
    return float(row[key])


def _median(rows: list[dict[str, Any]], key: str) -> float:
    values = [_value(r, key) for r in rows if _value(r, key)]
    return statistics.median(values) if values else 0.0


def _fmt(median: float, key: str, rows: list[dict[str, Any]]) -> str:
    """The median, then every run's value: ``0.512 (0.50, 0.52)``."""
    if not median:
        return "–"
    if key == "p99_ms":
        return f"{median:.1f} ({', '.join(f'{_value(r, key):.1f}' for r in rows)})"
    each = ", ".join(f"{_value(r, key):.0f}" if key == "cpu_us" else f"{_value(r, key):.2f}" for r in rows)
    return f"{median:.0f} ({each})" if key == "cpu_us" else f"{median:.3f} ({each})"


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    order = schedule(opts.rounds, opts.database)
    print(f"A = {opts.a}, B = {opts.b}: {len(order)} runs of bench/run.py, about "
          f"{estimate_seconds(opts) / 60:.0f} minutes", flush=True)  # fmt: skip
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="openplatform-ab-") as tmp:
        place = Path(tmp)
        with checkout(opts.a, place) as src_a, checkout(opts.b, place) as src_b:
            sources = {"A": src_a, "B": src_b}
            for number, database, side in order:
                print(f"-- round {number}, {database}, {side} ({sources[side]})", flush=True)
                out = place / "runs" / f"{number}-{database}-{side}.json"
                out.parent.mkdir(exist_ok=True)
                results.setdefault((database, side), []).extend(run_once(sources[side], database, opts, out))
    table = summary(results, opts)
    text = "\n".join([
        f"# bench/ab.py: A = {opts.a}, B = {opts.b}", "",
        f"- {opts.rounds} round(s) alternated, {opts.duration:g} s timed after {opts.warmup:g} s warm-up per run, "
        f"one worker, baselines {', '.join(opts.baseline)}; {(time.time() - started) / 60:.1f} minutes", "",
        "Medians over the rounds, each run's value in brackets.", "", *table, "",
    ])  # fmt: skip
    opts.results.mkdir(parents=True, exist_ok=True)
    path = opts.results / time.strftime("ab-%Y%m%d-%H%M%S.md")
    path.write_text(text)
    print(text)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
