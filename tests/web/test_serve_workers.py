"""``serve --workers N``: each worker listens on a socket of its own (``web/workers.py``).

Real ``openplatform serve --workers 2`` processes on a SQLite file. Which process holds which
socket is read from ``/proc`` (the sockets of ``/proc/net/tcp`` by inode, each process's by its
file descriptors): uvicorn's own supervisor gave every worker the one socket it had bound.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openplatform.config import Settings
from tests.conftest import TEST_SECRET_KEY, cli_env, free_port
from tests.web.test_metrics_workers import Served, serving

LISTEN, ESTABLISHED = "0A", "01"
BURST = 32  # connections opened at once, as wrk opens its 32
FEWEST = 4  # a worker's least share of the burst: P(at most 3 of 32) for a fair deal is about 1e-6
WAIT = 30.0


@pytest.fixture
def settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    target = tmp_path / "openplatform.db"
    shutil.copy(sqlite_template, target)
    return Settings(database_url=f"sqlite:///{target}", secret_key=TEST_SECRET_KEY, rate_limits="off")


def sockets_on(port: int, state: str) -> set[int]:
    """Inodes of the TCP sockets whose local port is ``port``, in ``state`` (``/proc/net/tcp``'s hex codes)."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                found.add(int(fields[9]))
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def workers_of(served: Served, port: int) -> dict[int, set[int]]:
    """{worker pid: its listening sockets' inodes} for the supervisor's children that listen on ``port``."""
    listening = sockets_on(port, LISTEN)
    found = {pid: socket_inodes(pid) & listening for pid in children(served.process.pid)}
    return {pid: inodes for pid, inodes in found.items() if inodes}


def wait_for_workers(served: Served, port: int, count: int, other_than: set[int] = frozenset()) -> dict[int, set[int]]:
    deadline = time.monotonic() + WAIT
    while True:
        found = workers_of(served, port)
        if len(found) == count and not found.keys() & other_than:
            return found
        assert served.process.poll() is None, served.log.read_text()
        assert time.monotonic() < deadline, f"{found}\n{served.log.read_text()}"
        time.sleep(0.1)


def port_of(served: Served) -> int:
    return int(served.url.rsplit(":", 1)[1])


def health(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return b"".join(iter(lambda: conn.recv(65536), b""))


def test_each_worker_listens_on_its_own_socket_and_all_stop_together(settings: Settings, tmp_path: Path) -> None:
    with serving(settings, tmp_path, "own") as served:
        port = port_of(served)
        workers = wait_for_workers(served, port, 2)
        (first, second) = workers.values()
        assert len(first) == len(second) == 1 and first != second, workers  # was: one socket, in both
        assert not socket_inodes(served.process.pid) & sockets_on(port, LISTEN)  # bound, not listening
        assert b'"code":0' in health(port)
    assert served.process.returncode is not None
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived its supervisor"


def test_a_burst_of_connections_is_dealt_to_every_worker(settings: Settings, tmp_path: Path) -> None:
    with serving(settings, tmp_path, "burst") as served:
        port = port_of(served)
        workers = wait_for_workers(served, port, 2)
        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(BURST)]
        try:
            for conn in conns:  # kept alive, as wrk's: each worker answers its own
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            for conn in conns:
                assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")
            accepted = sockets_on(port, ESTABLISHED)
            shares = {pid: len(socket_inodes(pid) & accepted) for pid in workers}
        finally:
            for conn in conns:
                conn.close()
        assert sum(shares.values()) == BURST and min(shares.values()) >= FEWEST, shares


def test_a_worker_that_dies_is_replaced(settings: Settings, tmp_path: Path) -> None:
    with serving(settings, tmp_path, "replaced") as served:
        port = port_of(served)
        workers = wait_for_workers(served, port, 2)
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        after = wait_for_workers(served, port, 2, other_than={killed})
        assert len(after.keys() & workers.keys()) == 1, (workers, after)
        for _ in range(20):  # every connection answered, whichever socket it lands on
            assert b'"code":0' in health(port)
    assert "ended (exit code -9); starting another" in served.log.read_text()


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "reuse-port"])
def test_an_address_in_use_is_refused_before_any_worker_starts(
    settings: Settings, tmp_path: Path, reuse_port: bool
) -> None:
    """Another server's socket on the port: exit status 3 at once. One with ``SO_REUSEPORT`` too (the
    workers' own option would otherwise let a second server share the port in silence)."""
    with socket.socket() as taken:
        if reuse_port:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "openplatform.cli", "serve", "--port", str(port), "--workers", "2"],
            env=cli_env(settings), capture_output=True, text=True, timeout=WAIT, cwd=tmp_path,
        )  # fmt: skip
    assert done.returncode == 3, done
    assert "Address already in use" in done.stderr, done.stderr
    assert "Started server process" not in done.stderr, done.stderr


def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    """A worker that ends before serving would end so again: every worker stops, exit status 3."""
    config = f"uvicorn.Config('tests.web.workers_support:broken_app', factory=True, port={free_port()})"
    program = f"import sys, uvicorn; from openplatform.web.workers import supervise; sys.exit(supervise({config}, 2))"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=WAIT, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert done.returncode == 3, done
    assert "ended before it served" in done.stderr, done.stderr
