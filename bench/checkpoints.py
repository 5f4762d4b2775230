"""What the SQLite writer leaves to the checkpointer: WAL frames per group commit, and how long each checkpoint holds.

    .venv/bin/python bench/checkpoints.py [bench/inprocess.py's arguments, e.g. refresh --requests 16000]

Runs ``bench/inprocess.py`` with the checkpointer thread of ``storage/sql/sqlite.py`` timed: each round's
``PASSIVE`` and ``RESTART`` checkpoints as they run in ``openplatform serve`` (the same order, interval
and busy timeout), with the frames each found (``PRAGMA wal_checkpoint`` answers busy, frames in the WAL,
frames checkpointed). At the end it prints the WAL frames written over the group commits of the run
(``openplatform_db_batch_operations``): a count, which the machine's load changes only through the batch
sizes, also printed. ``RESTART`` holds the write lock while it copies the frames written since its
``PASSIVE`` and fsyncs; every group commit waits meanwhile (docs/benchmarks.md, "Refresh,
introspection, two workers"), so it runs only once the WAL holds ``RESTART_AT_FRAMES`` ("RESTART -":
a round without it; docs/benchmarks.md, "The checkpoint's pause").
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

# ms and PASSIVE's answer (busy, frames in the WAL, frames copied); ms and RESTART's answer, or None when
# the round did not restart the WAL (below ``RESTART_AT_FRAMES``)
Round = tuple[float, tuple[int, int, int], float | None, tuple[int, int, int] | None]
rounds: list[Round] = []


def timed_checkpoint(conn: sqlite3.Connection) -> bool:
    """``_Checkpointer.checkpoint`` with each PRAGMA timed and its answer kept (the same policy)."""
    started = time.perf_counter()
    passive = tuple(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())
    between = time.perf_counter()
    if passive[1] < driver.RESTART_AT_FRAMES:
        rounds.append((1e3 * (between - started), passive, None, None))  # type: ignore[arg-type]
        return False
    restart = tuple(conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone())
    ended = time.perf_counter()
    rounds.append((1e3 * (between - started), passive, 1e3 * (ended - between), restart))  # type: ignore[arg-type]
    return True


def report() -> None:
    commits = operations = 0.0
    for metric in BATCH_OPERATIONS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                commits = sample.value
            elif sample.name.endswith("_sum"):
                operations = sample.value
    # The WAL starts over after each RESTART: the frames written are each RESTART's, and the last round's
    # PASSIVE after the last RESTART (SQLite may also start it over by itself when a round copied it all).
    frames = sum(restart[1] for *_rest, restart in rounds if restart is not None)
    if rounds and rounds[-1][3] is None:
        frames += rounds[-1][1][1]
    for passive_ms, passive, restart_ms, restart in rounds:
        held = f"RESTART {restart_ms:6.1f} ms {restart}" if restart_ms is not None else "RESTART -"
        print(f"PASSIVE {passive_ms:6.1f} ms {passive}   {held}")
    holds = sorted(restart_ms for _p, _a, restart_ms, _r in rounds if restart_ms is not None) or [0.0]
    print(
        f"{len(rounds)} checkpoints, {frames} WAL frames, {commits:.0f} group commits of "
        f"{operations / max(commits, 1):.1f} operations: {frames / max(commits, 1):.1f} frames per commit; "
        f"{sum(r[3] is not None for r in rounds)} RESTARTs (at {driver.RESTART_AT_FRAMES} frames), "
        f"median {holds[len(holds) // 2]:.1f} ms, longest {holds[-1]:.1f} ms"
    )


if __name__ == "__main__":
    driver._Checkpointer.checkpoint = staticmethod(timed_checkpoint)  # type: ignore[method-assign,assignment]
    atexit.register(report)
    sys.argv = ["inprocess.py", *sys.argv[1:]]
    runpy.run_path(str(Path(__file__).with_name("inprocess.py")), run_name="__main__")
