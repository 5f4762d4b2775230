"""The SQLite checkpointer's round (``storage/sql/sqlite.py``, ``_Checkpointer.checkpoint``).

RESTART holds every write back while it copies the last frames and fsyncs twice: run every
second it was the write scenarios' p99 (docs/benchmarks.md, "The checkpoint's pause"). It now
runs only once the WAL holds ``RESTART_AT_FRAMES``; PASSIVE, which blocks no one, every round.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from openplatform.storage.sql import sqlite as driver


def _database(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection, list[str]]:
    writer = driver.sqlite_connect(str(path), "NORMAL", busy_timeout_ms=0)
    writer.execute("PRAGMA wal_autocheckpoint=0")  # as the driver's writer: the checkpointer does it
    writer.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
    checkpointer = driver.sqlite_connect(str(path), "NORMAL", busy_timeout_ms=driver.CHECKPOINT_BUSY_TIMEOUT_MS)
    statements: list[str] = []
    checkpointer.set_trace_callback(statements.append)
    return writer, checkpointer, statements


def _commit_rows(writer: sqlite3.Connection, start: int, count: int) -> None:
    writer.execute("BEGIN IMMEDIATE")
    writer.executemany("INSERT INTO t VALUES (?, ?)", [(k, "x" * 500) for k in range(start, start + count)])
    writer.execute("COMMIT")


def test_a_small_wal_is_copied_without_holding_writes_back(tmp_path: Path) -> None:
    writer, checkpointer, statements = _database(tmp_path / "small.db")
    _commit_rows(writer, 0, 200)
    assert driver._Checkpointer.checkpoint(checkpointer) is False
    assert statements == ["PRAGMA wal_checkpoint(PASSIVE)"]  # no RESTART: no pause for the writer
    frames, copied = checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1:]
    assert frames == copied > 0  # everything was copied all the same


def test_a_large_wal_starts_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer, checkpointer, statements = _database(tmp_path / "large.db")
    _commit_rows(writer, 0, 200)
    frames = checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    monkeypatch.setattr(driver, "RESTART_AT_FRAMES", frames)  # this WAL is "large"
    statements.clear()
    assert driver._Checkpointer.checkpoint(checkpointer) is True
    assert statements == ["PRAGMA wal_checkpoint(PASSIVE)", "PRAGMA wal_checkpoint(RESTART)"]
    _commit_rows(writer, 200, 1)  # the next commit writes from the start of the WAL
    assert checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1] < frames
    assert writer.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 201
