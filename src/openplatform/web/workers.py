"""``openplatform serve --workers N``: N worker processes, each accepting from a socket of its own.

uvicorn's own supervisor binds one socket and hands it to every worker, so the workers accept
from one queue and a burst of new connections goes to whichever worker wakes first: 27 of wrk's
32 connections to one of two workers in one count (docs/benchmarks.md, "SQLite writers across
workers"). The other worker then commits small batches, and the CPU per request grows. Here the
supervisor opens N listening sockets on the address with ``SO_REUSEPORT``, one per worker slot,
and the kernel deals new connections among them by a hash of their addresses.

The supervisor (``supervise``, the ``serve`` process itself) keeps every socket open and listening
for as long as it runs, and each worker inherits its slot's socket. So:

- the port is never free while the server runs: not before the workers are up, not while a worker
  is replaced; connections that arrive meanwhile wait in the slot's queue for the next worker;
- a worker that dies (a crash, ``kill -9``, the OOM killer) is started again on the same socket,
  at most once a second per slot; one that ends by itself before it has served (its app cannot be
  built) would end so again: then every worker stops and ``serve`` exits with 3 (uvicorn's
  ``STARTUP_FAILURE``);
- each worker tells the supervisor it is alive every second, from a thread of its own; one silent
  for ``SILENT_SECONDS`` (stopped, or holding the interpreter) is killed and started again;
- SIGINT, SIGTERM or SIGQUIT stop the workers (SIGTERM: a worker stops as one uvicorn does,
  finishing the requests it holds), and any still running after ``STOP_SECONDS`` are killed;
  SIGHUP starts new workers one slot at a time, retiring each old one once its successor serves;
- a worker gets SIGTERM if the supervisor dies (Linux's parent-death signal), so none is left
  serving on its own.

Before binding, a plain bind of the address checks that no other program holds it (``SO_REUSEPORT``
alone would let a second server of the same user join the port in silence). A process of the
same user can still join it later with ``SO_REUSEPORT``: the kernel allows that only to the same
user, which can read the server's key anyway (docs/security.md).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import uvicorn
from uvicorn.config import STARTUP_FAILURE

logger = logging.getLogger("uvicorn.error")

POLL_SECONDS = 0.2  # how often the supervisor looks at its workers and at the signals received
HEARTBEAT_SECONDS = 1.0  # how often a worker says it is alive
SILENT_SECONDS = 10.0  # a worker silent this long (after its first word) is killed and replaced
FIRST_WORD_SECONDS = 60.0  # a new worker's first word may take this long (the interpreter starting)
RESTART_SECONDS = 1.0  # at most one start per slot in this time (a worker dying at once, over and over)
STOP_SECONDS = 30.0  # after SIGTERM, how long the workers may take before SIGKILL
PR_SET_PDEATHSIG = 1  # linux/prctl.h
spawn = multiprocessing.get_context("spawn")


def address_of(config: uvicorn.Config) -> tuple[socket.AddressFamily, str, int]:
    """(family, host, port) as uvicorn binds them (``Config.bind_socket``: IPv6 when the host has a colon)."""
    family = socket.AF_INET6 if config.host and ":" in config.host else socket.AF_INET
    return family, config.host, config.port


def listening_sockets(config: uvicorn.Config, count: int) -> list[socket.socket]:
    """``count`` sockets bound to the address with ``SO_REUSEPORT``, listening (``config.backlog``).

    Raises ``OSError`` (``EADDRINUSE``) when another socket holds the address, even one that set
    ``SO_REUSEPORT`` too: a plain bind is tried first (with ``SO_REUSEADDR``, as uvicorn's: the
    connections a previous run left in TIME_WAIT are no conflict). A port of 0 is chosen once, and
    ``config.port`` set to it.
    """
    family, host, port = address_of(config)
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            sock.listen(config.backlog)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    config.port = port
    return sockets


def die_with(supervisor: int) -> bool:
    """Ask Linux for SIGTERM when the supervisor dies; False when it is already gone."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    return os.getppid() == supervisor


def worker_main(config: uvicorn.Config, sock: socket.socket, word: Connection, supervisor: int) -> None:
    """A worker process's body (spawned): uvicorn on its slot's socket until SIGTERM or SIGINT, and a
    thread that tells the supervisor every ``HEARTBEAT_SECONDS`` whether the server has started."""
    if not die_with(supervisor):
        return
    config.configure_logging()  # a spawned process starts without the parent's logging
    server = uvicorn.Server(config)

    def heartbeat() -> None:
        try:
            while True:
                word.send(server.started)
                time.sleep(HEARTBEAT_SECONDS)
        except OSError:  # the supervisor closed its end: it is retiring this worker
            pass

    threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # the terminal's Ctrl+C reaches the workers too; the supervisor stops them
        pass


@dataclass
class Worker:
    """A worker process as the supervisor sees it."""

    process: BaseProcess
    word: Connection  # the supervisor's end of the heartbeat
    born: float
    heard: float | None = None  # when it last said it was alive
    served: bool = False  # whether it ever said its server had started

    @classmethod
    def start(cls, config: uvicorn.Config, sock: socket.socket) -> Worker:
        ours, theirs = spawn.Pipe(duplex=False)
        args = (config, sock, theirs, os.getpid())
        process = spawn.Process(target=worker_main, args=args, name="openplatform-worker")
        process.start()
        theirs.close()
        return cls(process, ours, time.monotonic())

    @property
    def pid(self) -> int:
        assert self.process.pid is not None  # started
        return self.process.pid

    def listen(self, now: float) -> None:
        """Read what it said since the last look."""
        try:
            while self.word.poll():
                self.served |= bool(self.word.recv())
                self.heard = now
        except (EOFError, OSError):  # it ended: process.is_alive() says so next
            pass

    def silent(self, now: float) -> bool:
        if self.heard is None:
            return now - self.born > FIRST_WORD_SECONDS
        return now - self.heard > SILENT_SECONDS

    def signal(self, signum: int) -> None:
        if self.process.is_alive():
            os.kill(self.pid, signum)

    def reap(self) -> None:
        self.process.join()
        self.word.close()


@dataclass
class Slot:
    """One listening socket and the worker accepting from it (and, during a SIGHUP, its successor)."""

    sock: socket.socket
    worker: Worker
    successor: Worker | None = None
    next_start: float = field(default=0.0)


class Supervisor:
    """The loop of ``supervise``: one ``Slot`` per worker, the signals received, the workers retiring."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        self.config = config
        now = time.monotonic()
        self.slots = [Slot(sock, Worker.start(config, sock), next_start=now + RESTART_SECONDS) for sock in sockets]
        self.retiring: list[Worker] = []  # sent SIGTERM after a SIGHUP; reaped once they end
        self.reloading: list[Slot] = []  # slots whose worker SIGHUP replaces, the first one now
        self.status: int | None = None  # set: stop, and exit with it

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            logger.info("Received SIGHUP: starting new workers, one at a time.")
            self.reloading = list(self.slots)
        elif self.status is None:
            logger.info("Received %s, stopping the workers.", name)
            self.status = 0

    def look(self) -> None:
        """One round: each worker's words, deaths, silences; the reload's next step; retired workers reaped."""
        now = time.monotonic()
        for slot in self.slots:
            worker = slot.worker
            worker.listen(now)
            if not worker.process.is_alive():
                worker.reap()
                code = worker.process.exitcode
                if not worker.served and code is not None and code >= 0:
                    logger.error("Worker [%d] ended before it served (exit code %s); stopping.", worker.pid, code)
                    self.status = STARTUP_FAILURE
                    return
                self.replace(slot, f"ended (exit code {code})", now)
            elif worker.silent(now):
                worker.signal(signal.SIGKILL)
                worker.reap()
                self.replace(slot, "was silent", now)
        self.reload_step(now)
        for worker in list(self.retiring):
            if not worker.process.is_alive():
                worker.reap()
                self.retiring.remove(worker)

    def replace(self, slot: Slot, why: str, now: float) -> None:
        if now < slot.next_start:  # died right after it started: give the machine a moment
            time.sleep(slot.next_start - now)
        logger.warning("Worker [%d] %s; starting another.", slot.worker.pid, why)
        slot.worker = Worker.start(self.config, slot.sock)
        slot.next_start = time.monotonic() + RESTART_SECONDS

    def reload_step(self, now: float) -> None:
        """SIGHUP: the first slot of ``reloading`` gets a successor; once it serves, the old worker retires."""
        if not self.reloading:
            return
        slot = self.reloading[0]
        if slot.successor is None:
            slot.successor = Worker.start(self.config, slot.sock)
            return
        new = slot.successor
        new.listen(now)
        if new.served:
            slot.worker.signal(signal.SIGTERM)
            self.retiring.append(slot.worker)
            slot.worker, slot.successor = new, None
            self.reloading.pop(0)
        elif not new.process.is_alive() or new.silent(now):
            new.signal(signal.SIGKILL)
            new.reap()
            logger.error("New worker [%d] did not start; keeping [%d], reload given up.", new.pid, slot.worker.pid)
            slot.successor, self.reloading = None, []

    def stop(self) -> None:
        """SIGTERM to every worker, then SIGKILL to those still running after ``STOP_SECONDS``."""
        everyone = [s.worker for s in self.slots] + [s.successor for s in self.slots if s.successor] + self.retiring
        for worker in everyone:
            worker.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for worker in everyone:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                logger.warning("Worker [%d] still running %.0f s after SIGTERM; killing it.", worker.pid, STOP_SECONDS)
                worker.signal(signal.SIGKILL)
            worker.reap()


def supervise(config: uvicorn.Config, workers: int) -> int:
    """Run ``workers`` worker processes until SIGINT, SIGTERM or SIGQUIT; the exit status: 0, or 3
    when a worker could not start or the address is taken (this module's docstring).

    ``config`` is the one uvicorn would run (``host``, ``port``, the app as an import string).
    """
    try:
        sockets = listening_sockets(config, workers)
    except OSError as exc:
        logger.error("Cannot listen on %s:%d: %s", config.host, config.port, exc)
        return STARTUP_FAILURE
    received: list[int] = []
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum)) for sig in handled}
    host = f"[{config.host}]" if ":" in config.host else config.host
    # uvicorn's words, which operators and tests look for, then this module's own
    logger.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, config.port)
    logger.info("Supervisor [%d]: %d workers, each on a socket of its own", os.getpid(), workers)
    supervisor = Supervisor(config, sockets)
    try:
        while supervisor.status is None:
            time.sleep(POLL_SECONDS)
            while received:
                supervisor.on_signal(received.pop(0))
            if supervisor.status is None:
                supervisor.look()
    finally:
        supervisor.stop()
        for sock in sockets:
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return supervisor.status or 0
