"""``bench/run.py``'s per-worker CPU shares with ``--workers N``: uvicorn's workers accept from one
shared socket, and in some runs one worker took nearly all of wrk's connections, so the row measured
one worker (docs/benchmarks.md, "SQLite writers across workers"). Without servers or wrk."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
run: Any = importlib.import_module("run")
procs: Any = importlib.import_module("procs")


def test_shares_are_of_the_cpu_used_between_readings_largest_first() -> None:
    before = {10: 1.0, 11: 5.0, 12: 0.5}
    after = {10: 4.0, 11: 6.0, 12: 0.5}  # 12 used nothing (uvicorn's helper process)
    assert run.cpu_shares(before, after) == [0.75, 0.25]


def test_a_lone_busy_process_gives_no_shares() -> None:
    assert run.cpu_shares({10: 1.0, 11: 2.0}, {10: 3.0, 11: 2.0}) == []
    assert run.cpu_shares({}, {}) == []


def test_worker_cpu_reads_the_supervisors_children_only() -> None:
    supervisor = subprocess.Popen(["bash", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        for _ in range(100):  # until both children exist
            if len(procs.process_tree(supervisor.pid)) == 3:
                break
            time.sleep(0.02)
        server = procs.Server("http://127.0.0.1:1", supervisor.pid)
        two = SimpleNamespace(servers=SimpleNamespace(workers=2), op=server)
        one = SimpleNamespace(servers=SimpleNamespace(workers=1), op=server)
        children = run.Bench.worker_cpu(two)
        assert len(children) == 2 and supervisor.pid not in children
        assert run.Bench.worker_cpu(one) == {}
    finally:
        supervisor.kill()
        supervisor.wait()


def test_the_json_rows_carry_the_shares_and_the_lock_retries() -> None:
    got = SimpleNamespace(rps=1.0, p50_ms=1.0, p99_ms=2.0, cpu_us=80.0, errors=0)
    row = run.Row("app-token", "the app token", 2, got, {}, 10, busy_share=0.1, worker_shares=[0.6, 0.4])
    written = run.row_json(row)
    assert written["worker_shares"] == [0.6, 0.4] and written["busy_share"] == 0.1
