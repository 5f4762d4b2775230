"""What the SQLite writer leaves to the checkpointer: WAL frames per group commit, and how long each checkpoint holds.

    .venv/bin/python bench/checkpoints.py [bench/inprocess.py's arguments, e.g. refresh --requests 16000]

Runs ``bench/inprocess.py`` with the checkpointer thread of ``storage/sql/sqlite.py`` timed: each round's
``PASSIVE`` and ``RESTART`` checkpoints as they run in ``openplatform serve`` (the same order, interval
and busy timeout), with the frames each found (``PRAGMA wal_checkpoint`` answers busy, frames in the WAL,
frames checkpointed). At the end it prints the WAL frames written over the group commits of the run
(``openplatform_db_batch_operations``): a count, which the machine's load changes only through the batch
sizes, also printed. ``RESTART`` holds the write lock while it copies the frames written since its
``PASSIVE`` and fsyncs; every group commit waits meanwhile (docs/benchmarks.md, "Refresh,
introspection, two workers").
"""

from __future__ import annotations

import atexit
import runpy
import sqlite3
import sys
import time
from pathlib import Path

from openplatform.storage.sql import sqlite as driver
from openplatform.storage.sql.driver import BATCH_OPERATIONS

Round = tuple[float, tuple[int, int, int], float, tuple[int, int, int]]  # ms, PASSIVE's answer, ms, RESTART's
rounds: list[Round] = []


def timed_run(self: driver._Checkpointer) -> None:
    """``_Checkpointer.run`` with each checkpoint timed and its answer kept."""
    conn = driver.sqlite_connect(self.path, self.synchronous, busy_timeout_ms=driver.CHECKPOINT_BUSY_TIMEOUT_MS)
    try:
        while not self.stopping.wait(driver.CHECKPOINT_EVERY_SECONDS):
            try:
                started = time.perf_counter()
                passive = tuple(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
                between = time.perf_counter()
                restart = tuple(conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone())
                ended = time.perf_counter()
            except sqlite3.Error as exc:
                print(f"checkpoint failed: {exc}", file=sys.stderr)
                continue
            rounds.append((1e3 * (between - started), passive, 1e3 * (ended - between), restart))
    finally:
        conn.close()


def report() -> None:
    commits = operations = 0.0
    for metric in BATCH_OPERATIONS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                commits = sample.value
            elif sample.name.endswith("_sum"):
                operations = sample.value
    frames = sum(restart[1] for *_rest, restart in rounds)  # the WAL starts over after each RESTART
    for passive_ms, passive, restart_ms, restart in rounds:
        print(f"PASSIVE {passive_ms:6.1f} ms {passive}   RESTART {restart_ms:6.1f} ms {restart}")
    holds = sorted(restart_ms for _p, _a, restart_ms, _r in rounds) or [0.0]
    print(
        f"{len(rounds)} checkpoints, {frames} WAL frames, {commits:.0f} group commits of "
        f"{operations / max(commits, 1):.1f} operations: {frames / max(commits, 1):.1f} frames per commit; "
        f"RESTART median {holds[len(holds) // 2]:.1f} ms, longest {holds[-1]:.1f} ms"
    )


if __name__ == "__main__":
    driver._Checkpointer.run = timed_run  # type: ignore[method-assign]
    atexit.register(report)
    sys.argv = ["inprocess.py", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("inprocess.py")), run_name="__main__")
