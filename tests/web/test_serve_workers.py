"""``serve --workers N``: each worker accepts from a socket of its own (``web/workers.py``).

Real ``openplatform serve --workers 2`` processes on a SQLite file. Which process holds which
socket is read from ``/proc`` (the sockets of ``/proc/net/tcp`` by inode, each process's by its
file descriptors): uvicorn's own supervisor gave every worker the one socket it had bound.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from openplatform.config import Settings
from openplatform.web.workers import POLL_SECONDS, Limits, Slot, Supervisor
from tests.conftest import TEST_SECRET_KEY, cli_env, free_port
from tests.web.test_metrics_workers import Served, serving

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
# /proc/net/tcp read as bench/split.py reads it: which socket is whose
split: Any = importlib.import_module("split")
LISTEN, ESTABLISHED, sockets_on, socket_inodes = split.LISTEN, split.ESTABLISHED, split.sockets_on, split.socket_inodes
BURST = 32  # connections opened at once, as wrk opens its 32
FEWEST = 4  # a worker's least share of the burst: P(at most 3 of 32) for a fair deal is about 1e-6
WAIT = 30.0


@pytest.fixture
def settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    target = tmp_path / "openplatform.db"
    shutil.copy(sqlite_template, target)
    return Settings(database_url=f"sqlite:///{target}", secret_key=TEST_SECRET_KEY, rate_limits="off")


def children(pid: int) -> list[int]:
    with contextlib.suppress(FileNotFoundError):
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def workers_of(process: subprocess.Popen[bytes], port: int) -> dict[int, set[int]]:
    """{worker pid: its listening sockets' inodes} for the supervisor's children that listen on ``port``."""
    listening = sockets_on(port, LISTEN)
    found = {pid: socket_inodes(pid) & listening for pid in children(process.pid)}
    return {pid: inodes for pid, inodes in found.items() if inodes}


def wait_for_workers(
    served: Served | Supervised, count: int, other_than: set[int] = frozenset(), answering: bool = True
) -> dict[int, set[int]]:
    """The workers once ``count`` of them listen (none of ``other_than``) and, with ``answering``, the
    server answers."""
    port = port_of(served)
    deadline = time.monotonic() + WAIT
    while True:
        found = workers_of(served.process, port)
        if len(found) == count and not found.keys() & other_than and (not answering or answers(port)):
            return found
        assert served.process.poll() is None, served.log.read_text()
        assert time.monotonic() < deadline, f"{found}\n{served.log.read_text()}"
        time.sleep(0.1)


def port_of(served: Served | Supervised) -> int:
    return int(served.url.rsplit(":", 1)[1])


def read_all(conn: socket.socket) -> bytes:
    return b"".join(iter(lambda: conn.recv(65536), b""))


def health(port: int, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return read_all(conn)


def answers(port: int) -> bool:
    try:
        return b'"code":0' in health(port, timeout=2)
    except OSError:
        return False


def plain_bind_refused(port: int) -> bool:
    """Whether another program is refused the port (a listener with SO_REUSEADDR, as most servers open)."""
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            other.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


@contextlib.contextmanager
def started(settings: Settings, workdir: Path, name: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``serve --workers 2`` without waiting for it; SIGKILL at the end (the workers follow it)."""
    log = workdir / f"{name}.log"
    argv = [sys.executable, "-m", "openplatform.cli", "serve", "--port", str(port), "--workers", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=cli_env(settings), stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=WAIT)


def test_each_worker_has_a_socket_of_its_own_and_all_stop_together(settings: Settings, tmp_path: Path) -> None:
    with serving(settings, tmp_path, "own") as served:
        port = port_of(served)
        workers = wait_for_workers(served, 2)
        (first, second) = workers.values()
        assert len(first) == len(second) == 1 and first != second, workers  # was: one socket, in both
        assert first | second == sockets_on(port, LISTEN) <= socket_inodes(served.process.pid)  # the supervisor's
    assert served.process.returncode == 0, served.log.read_text()
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived its supervisor"
    assert not sockets_on(port, LISTEN)


def test_a_burst_of_connections_is_dealt_to_every_worker(settings: Settings, tmp_path: Path) -> None:
    with serving(settings, tmp_path, "burst") as served:
        port = port_of(served)
        workers = wait_for_workers(served, 2)
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


def test_workers_that_die_are_replaced_on_their_sockets_and_the_port_stays_held(
    settings: Settings, tmp_path: Path
) -> None:
    """Both killed at once, and a replacement killed again before it serves: the port stays the server's,
    a connection made meanwhile waits in the socket's queue and is answered, and the server goes on."""
    with serving(settings, tmp_path, "replaced") as served:
        port = port_of(served)
        workers = wait_for_workers(served, 2)
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        early = socket.create_connection(("127.0.0.1", port), timeout=WAIT)  # no worker yet: it waits
        assert plain_bind_refused(port)
        early.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        again = wait_for_workers(served, 2, other_than=set(workers), answering=False)
        os.kill(min(again), signal.SIGKILL)  # most likely before it serves: not a startup failure
        after = wait_for_workers(served, 2, other_than=set(workers) | {min(again)})
        assert set().union(*after.values()) == set().union(*workers.values()), (workers, after)  # the same sockets
        assert b'"code":0' in read_all(early)
        early.close()
        for _ in range(20):
            assert answers(port)
    assert served.process.returncode == 0
    log = served.log.read_text()
    assert log.count("ended (exit code -9); starting another") >= 3, log


def test_a_silent_worker_is_replaced(settings: Settings, tmp_path: Path) -> None:
    """A stopped worker (SIGSTOP) says nothing: after ``Limits.silent`` it is killed and replaced, and
    what waited in its socket's queue is answered."""
    with serving(settings, tmp_path, "silent") as served:
        port = port_of(served)
        workers = wait_for_workers(served, 2)
        stopped = min(workers)
        os.kill(stopped, signal.SIGSTOP)
        conns = [socket.create_connection(("127.0.0.1", port), timeout=Limits.silent + WAIT) for _ in range(12)]
        for conn in conns:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        for conn in conns:  # some wait for the replacement of the stopped one
            assert b'"code":0' in read_all(conn)
            conn.close()
        wait_for_workers(served, 2, other_than={stopped})
    assert "was silent for 10 s; starting another" in served.log.read_text()


def test_sighup_replaces_every_worker_while_serving(settings: Settings, tmp_path: Path) -> None:
    """Requests keep being answered while SIGHUP replaces the workers; a reload may reset a connection
    that a retiring worker had accepted but not read (docs/deployment.md), not more than a few."""
    with serving(settings, tmp_path, "hup") as served:
        port = port_of(served)
        workers = wait_for_workers(served, 2)
        while served.log.read_text().count("Application startup complete") < 2:
            time.sleep(0.05)
        os.kill(served.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        outcomes = []
        while workers_of(served.process, port).keys() & workers.keys() or len(workers_of(served.process, port)) < 2:
            outcomes.append(answers(port))
            assert time.monotonic() < deadline, served.log.read_text()
        assert outcomes.count(False) <= 2, outcomes
        for pid in workers:
            deadline = time.monotonic() + WAIT
            while pid in children(served.process.pid):  # ended, and reaped by the supervisor
                assert time.monotonic() < deadline, f"old worker {pid} still running"
                time.sleep(0.1)
        assert answers(port)
    assert served.process.returncode == 0, served.log.read_text()


def test_workers_end_with_their_supervisor(settings: Settings, tmp_path: Path) -> None:
    """SIGKILL of the supervisor: its workers get SIGTERM (Linux's parent-death signal) and free the port."""
    port = free_port()
    with started(settings, tmp_path, "orphans", port) as process:
        deadline = time.monotonic() + WAIT
        while len(workers := workers_of(process, port)) < 2 or not answers(port):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        process.kill()
    deadline = time.monotonic() + WAIT
    while any(Path(f"/proc/{pid}").exists() for pid in workers) or sockets_on(port, LISTEN):
        assert time.monotonic() < deadline, f"workers {workers} outlived their supervisor"
        time.sleep(0.1)


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


def test_the_port_is_held_from_the_start(settings: Settings, tmp_path: Path) -> None:
    """From the moment it listens, before its workers serve, neither another program nor a second
    ``serve --workers 2`` gets the port (a second one started while the first was starting joined it)."""
    port = free_port()
    with started(settings, tmp_path, "first", port) as first:
        deadline = time.monotonic() + WAIT
        while not sockets_on(port, LISTEN):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        assert plain_bind_refused(port)
        second = subprocess.run(
            [sys.executable, "-m", "openplatform.cli", "serve", "--port", str(port), "--workers", "2"],
            env=cli_env(settings), capture_output=True, text=True, timeout=WAIT, cwd=tmp_path,
        )  # fmt: skip
        assert second.returncode == 3 and "Address already in use" in second.stderr, second
        assert first.poll() is None


def test_a_worker_that_cannot_start_stops_the_supervisor(tmp_path: Path) -> None:
    """A worker that ends by itself before serving would end so again: every worker stops, exit status 3."""
    config = f"uvicorn.Config('tests.web.workers_support:broken_app', factory=True, port={free_port()})"
    program = f"import sys, uvicorn; from openplatform.web.workers import supervise; sys.exit(supervise({config}, 2))"
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=WAIT, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 3, done
    assert "ended before it served" in done.stderr, done.stderr


# ----------------------------------------------- the supervisor alone, with tests/web/workers_support.py


@dataclass
class Supervised:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    url: str = ""  # for wait_for_workers, as Served's

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_for_log(self, pattern: str) -> None:
        deadline = time.monotonic() + WAIT
        while not re.search(pattern, self.log.read_text()):
            assert self.process.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def wait_serving(self, count: int = 2) -> None:
        """Until ``count`` workers have started serving, and the supervisor has heard it."""
        self.wait_for_log("(?s)" + ".*".join(["Application startup complete"] * count))
        time.sleep(2 * POLL_SECONDS)

    def stop(self) -> str:
        """SIGTERM; the log, once it has exited 0."""
        os.kill(self.process.pid, signal.SIGTERM)
        assert self.process.wait(WAIT) == 0, self.log.read_text()
        return self.log.read_text()


@contextlib.contextmanager
def supervising(workdir: Path, limits: str = "") -> Iterator[Supervised]:
    """``supervise()`` of two workers of ``workers_support.marked_app`` (its markers in ``workdir``), with
    ``Limits(<limits>)``, in a session of its own (a process group: the terminal's signals can be sent);
    SIGKILL to the group at the end."""
    port = free_port()
    config = f"uvicorn.Config('tests.web.workers_support:marked_app', factory=True, port={port})"
    program = "import sys, uvicorn; from openplatform.web.workers import Limits, supervise; "
    program += f"sys.exit(supervise({config}, 2, Limits({limits})))"
    log = workdir / "supervisor.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", program], cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
        )  # fmt: skip
    try:
        yield Supervised(process, port, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(WAIT)


def test_a_worker_hanging_at_startup_is_replaced(tmp_path: Path) -> None:
    """A worker whose app never starts (a database that does not answer) still says it is alive: it is
    replaced ``Limits.startup`` after its start, again and again, until one serves."""
    with supervising(tmp_path, "startup=2, restart=0.2, stop=2") as sup:  # stop: a hung one ignores SIGTERM
        workers = wait_for_workers(sup, 2)
        sup.wait_serving()
        (tmp_path / "hang").touch()
        os.kill(min(workers), signal.SIGKILL)
        sup.wait_for_log(r"did not serve within 2 s; starting another")
        (tmp_path / "hang").unlink()
        wait_for_workers(sup, 2, other_than={min(workers)})
        log = sup.stop()
    assert "stopping" not in log.split("Received SIGTERM")[0], log


def test_a_replacement_that_cannot_start_is_retried_while_the_others_serve(tmp_path: Path) -> None:
    """Once the server has served, a new worker whose app cannot be built (the database down for a
    moment) is started again, each wait twice the last; the server goes on. Only the first start ends it."""
    with supervising(tmp_path, "restart=0.2") as sup:
        workers = wait_for_workers(sup, 2)
        sup.wait_serving()
        (tmp_path / "fail").touch()
        os.kill(min(workers), signal.SIGKILL)
        sup.wait_for_log(r"ended \(exit code 1\); starting another in 0\.4 s")  # the second failure in a row
        assert max(workers) in workers_of(sup.process, sup.port)  # the other one serves on
        (tmp_path / "fail").unlink()
        wait_for_workers(sup, 2, other_than={min(workers)})
        sup.stop()


def test_a_worker_killed_before_it_serves_is_restarted(tmp_path: Path) -> None:
    (tmp_path / "slow").touch()  # each worker starts serving SLOW_SECONDS after it starts
    with supervising(tmp_path, "restart=0.2") as sup:
        workers = wait_for_workers(sup, 2, answering=False)
        os.kill(min(workers), signal.SIGKILL)
        wait_for_workers(sup, 2, other_than={min(workers)})
        log = sup.stop()
    assert f"Worker [{min(workers)}] ended (exit code -9); starting another" in log, log


def test_the_terminals_signals_to_the_group_reach_the_supervisor_only(tmp_path: Path) -> None:
    """A hang-up sent to the whole process group reloads, Ctrl+\\ (SIGQUIT) stops: no worker dies of them
    (they did, by the default action, and were restarted)."""
    with supervising(tmp_path) as sup:
        workers = wait_for_workers(sup, 2)
        sup.wait_serving()
        os.killpg(sup.process.pid, signal.SIGHUP)
        sup.wait_for_log("Reload done")
        wait_for_workers(sup, 2, other_than=set(workers))
        os.killpg(sup.process.pid, signal.SIGQUIT)
        assert sup.process.wait(WAIT) == 0
    log = sup.log.read_text()
    assert "ended (exit code" not in log and "Traceback" not in log, log
    assert log.count("Finished server process") == 4, log  # the two retired, the two stopped


def test_a_retired_worker_that_does_not_stop_is_killed(tmp_path: Path) -> None:
    """A worker stopped (SIGSTOP) when a SIGHUP retires it never ends by itself: it is killed
    ``Limits.stop`` after its SIGTERM, not left holding its connections until the server stops."""
    with supervising(tmp_path, "silent=60, stop=2") as sup:
        workers = wait_for_workers(sup, 2)
        sup.wait_serving()
        stuck = min(workers)
        os.kill(stuck, signal.SIGSTOP)
        os.kill(sup.process.pid, signal.SIGHUP)
        sup.wait_for_log(rf"Retired worker \[{stuck}\] was still running 2 s after SIGTERM; killing it")
        deadline = time.monotonic() + WAIT
        while Path(f"/proc/{stuck}").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert answers(sup.port)
        sup.stop()


def test_another_user_is_refused_the_port(tmp_path: Path) -> None:
    """Another user, with ``SO_REUSEPORT`` or without, cannot bind the port while the server runs (the
    kernel lets only the same user join a ``SO_REUSEPORT`` group). Needs root, as CI runs."""
    assert os.geteuid() == 0, "run as root (CI does): the test acts as the user nobody"
    with supervising(tmp_path) as sup:
        wait_for_workers(sup, 2)
        for reuse_port in (False, True):
            program = "import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            program += "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1); " if reuse_port else ""
            program += f"s.bind(('127.0.0.1', {sup.port})); s.listen()"
            done = subprocess.run(  # the system's Python: nobody cannot read /root, where a venv may be
                ["/usr/bin/python3", "-c", program], user=65534, group=65534, capture_output=True, text=True,
                timeout=WAIT, cwd="/",
            )  # fmt: skip
            assert done.returncode != 0 and "Address already in use" in done.stderr, done
        sup.stop()


def test_a_sighup_received_during_a_failed_reload_still_reloads(tmp_path: Path) -> None:
    """The first reload's new worker hangs and is given up; the SIGHUP sent after the code was mended
    (the marker removed) still replaces both workers (it was dropped with the failed one)."""
    with supervising(tmp_path, "startup=2, stop=2") as sup:
        workers = wait_for_workers(sup, 2)
        sup.wait_serving()
        (tmp_path / "hang").touch()
        os.kill(sup.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while not list(tmp_path.glob("hanging-*")):  # the new worker hangs
            assert time.monotonic() < deadline, sup.log.read_text()
            time.sleep(0.05)
        (tmp_path / "hang").unlink()
        os.kill(sup.process.pid, signal.SIGHUP)
        sup.wait_for_log("another one follows it")
        sup.wait_for_log("reload given up")
        sup.wait_for_log("Reload done")
        wait_for_workers(sup, 2, other_than=set(workers))
        sup.stop()


def test_the_backoff_is_capped_after_any_number_of_failed_starts() -> None:
    """2 ** 1025 overflows a float: after 1,025 failed starts in a row (hours of a database down) the
    supervisor itself crashed and stopped the workers still serving."""
    supervisor = Supervisor(uvicorn.Config("tests.web.workers_support:marked_app"), Limits(restart=1, restart_most=10))
    with socket.socket() as sock:
        slot = Slot(sock, None, failures=1)
        assert supervisor.backoff(slot) == 1
        slot.failures = 3
        assert supervisor.backoff(slot) == 4
        for failures in (5, 1025, 10**6):
            slot.failures = failures
            assert supervisor.backoff(slot) == 10


def test_the_first_worker_ignores_a_ctrl_c_while_it_starts(tmp_path: Path) -> None:
    """Ctrl+C to the process group right after start: the supervisor stops everything, exit 0, and no
    worker dies of it by itself (multiprocessing's resource tracker, started with the first worker,
    unblocked SIGINT before that worker was born)."""
    (tmp_path / "slow").touch()
    with supervising(tmp_path) as sup:
        sup.wait_for_log(r"Supervisor \[")
        time.sleep(0.05)
        os.killpg(sup.process.pid, signal.SIGINT)
        assert sup.process.wait(WAIT) == 0, sup.log.read_text()
    log = sup.log.read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log


def test_a_retired_workers_live_gauges_stop_counting(settings: Settings, tmp_path: Path) -> None:
    """A worker stopped by SIGTERM dies of it (uvicorn raises it again), so its own exit handler never
    dropped its live gauge files: after each reload, /metrics went on summing the retired workers' webhook
    backlog. The supervisor drops them as it reaps a worker."""
    with serving(settings, tmp_path, "gauges") as served:
        workers = wait_for_workers(served, 2)
        (directory,) = served.metrics_dirs()
        assert {f"gauge_livemostrecent_{pid}.db" for pid in workers} <= {p.name for p in directory.iterdir()}
        os.kill(served.process.pid, signal.SIGHUP)
        after = wait_for_workers(served, 2, other_than=set(workers))
        deadline = time.monotonic() + WAIT
        while any((directory / f"gauge_livemostrecent_{pid}.db").exists() for pid in workers):
            assert time.monotonic() < deadline, sorted(p.name for p in directory.iterdir())
            time.sleep(0.1)
        assert {f"gauge_livemostrecent_{pid}.db" for pid in after} <= {p.name for p in directory.iterdir()}
