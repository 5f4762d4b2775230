"""``serve --workers N`` removes the metrics directories that killed runs left behind, never a live
one (operator review of issue 10).

A serve process killed by SIGKILL never removed its ``openplatform-metrics-*`` directory, and every
such start left one more. Each directory is now named with its serve process's pid; a start removes
those whose serve process and workers (the pids in its files) are all gone. Real servers share one
``TMPDIR``: one is killed with SIGKILL (its workers too, as the OOM killer or ``kill -9`` of the
group would), another keeps running, and a third start must remove the first's directory only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from openplatform.config import Settings
from tests.web.test_metrics_workers import serving, settings

__all__ = ["settings"]  # the fixture: a copy of the migrated SQLite file

STOP_TIMEOUT = 15.0


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux's /proc): the uvicorn workers of a serve process."""
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def dead_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.Popen(["true"])
    process.wait(timeout=10)
    return process.pid


def test_a_start_removes_what_a_killed_server_left_and_nothing_live(settings: Settings, tmp_path: Path) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    env = {"TMPDIR": str(shared)}
    dead = dead_pid()
    planted = {  # directories a start must leave alone, and one it must remove
        "live owner": shared / f"openplatform-metrics-{os.getpid()}-abcd1234",
        "live worker": shared / f"openplatform-metrics-{dead}-efgh5678",
        "no pid": shared / "openplatform-metrics-ijkl9012",  # named before this rule: whose is unknown
        "dead": shared / f"openplatform-metrics-{dead}-mnop3456",
    }
    for directory in planted.values():
        directory.mkdir()
    (planted["live worker"] / f"counter_requests_{os.getpid()}.db").write_bytes(b"")  # a worker still running
    (planted["dead"] / f"counter_requests_{dead}.db").write_bytes(b"")

    with serving(settings, tmp_path, "killed", **env) as killed:
        assert not planted["dead"].exists()  # the first start already removed the abandoned one
        mine = sorted(shared.glob(f"openplatform-metrics-{killed.process.pid}-*"))
        assert len(mine) == 1, sorted(shared.iterdir())
        workers = children(killed.process.pid)
        assert len(workers) >= 2  # the workers, and multiprocessing's resource tracker
        for pid in (killed.process.pid, *workers):  # as `kill -9` of the group: no finally runs
            os.kill(pid, signal.SIGKILL)
        killed.process.wait(timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while not all(gone(pid) for pid in workers):  # orphans, reaped by init
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert mine[0].is_dir()  # left behind, as before the fix

    with serving(settings, tmp_path, "running", **env) as running:
        assert not mine[0].exists()  # the killed run's directory is gone
        (live,) = sorted(shared.glob(f"openplatform-metrics-{running.process.pid}-*"))
        with serving(settings, tmp_path, "another", **env) as another:
            assert live.is_dir()  # a live server's directory stays while another starts
            (other,) = sorted(shared.glob(f"openplatform-metrics-{another.process.pid}-*"))
            assert httpx.get(f"{running.url}/healthz", timeout=5).status_code == 200
        assert not other.exists()  # a server stopped normally removes its own
        assert live.is_dir()
    assert not live.exists()
    for name in ("live owner", "live worker", "no pid"):
        assert planted[name].is_dir(), name
