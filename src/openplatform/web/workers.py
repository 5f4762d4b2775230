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
  is replaced; connections that arrive meanwhile wait in the slot's queue for the next worker (the
  price of a socket per worker: with a shared one, the other workers would take them);
- a worker that dies (a crash, ``kill -9``, the OOM killer) is started again on the same socket, at
  most once per ``Limits.restart``, that wait doubling while new workers keep failing to start (up to
  ``Limits.restart_most``); only when the first workers end by themselves before any has served
  (the app cannot be built) does everything stop, with exit status 3 (uvicorn's ``STARTUP_FAILURE``);
- each worker tells the supervisor every second that it is alive, and at once when it serves, from a
  thread of its own; one silent for ``Limits.silent`` (stopped, or holding the interpreter), or not
  serving ``Limits.startup`` after its start (its app hanging), is killed and replaced;
- SIGINT, SIGTERM or SIGQUIT stop the workers (SIGTERM: a worker stops as one uvicorn does,
  finishing the requests it holds), and any still running after ``Limits.stop`` are killed; SIGHUP
  starts new workers one slot at a time, retiring each old one once its successor serves (a retired
  worker still running ``Limits.stop`` later is killed);
- the workers ignore the signals a terminal sends to the whole process group (``GROUP_SIGNALS``):
  they are the supervisor's to act on;
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
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from openplatform.web.metrics import forget_worker

logger = logging.getLogger("uvicorn.error")

POLL_SECONDS = 0.2  # how often the supervisor looks at its workers and at the signals received
HEARTBEAT_SECONDS = 1.0  # how often a worker says it is alive (Limits: what the supervisor allows)
PR_SET_PDEATHSIG = 1  # linux/prctl.h
# What a terminal sends to the whole process group (hang-up, Ctrl+C, Ctrl+\): the supervisor's to act
# on. The workers ignore them; the supervisor stops or replaces them with SIGTERM.
GROUP_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)
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


class _Server(uvicorn.Server):
    """uvicorn's server, which sets ``serving`` once it has started (the heartbeat then says so at once)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.serving = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.serving.set()


def worker_main(config: uvicorn.Config, sock: socket.socket, word: Connection, supervisor: int) -> None:
    """A worker process's body (spawned): uvicorn on its slot's socket until SIGTERM, and a thread that
    tells the supervisor whether the server has started, every ``HEARTBEAT_SECONDS`` and as it starts."""
    # Born with GROUP_SIGNALS blocked (Worker.start): ignored from here on, and any that came meanwhile
    # is dropped. uvicorn installs its own SIGINT handler once it runs, as a single serve does.
    for sig in GROUP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)
    if not die_with(supervisor):
        return
    config.configure_logging()  # a spawned process starts without the parent's logging
    server = _Server(config)

    def heartbeat() -> None:  # the only thread that writes to the pipe
        try:
            while True:
                serving = server.serving.is_set()
                word.send(serving)
                if serving:
                    time.sleep(HEARTBEAT_SECONDS)
                else:
                    server.serving.wait(HEARTBEAT_SECONDS)  # woken as soon as it serves
        except OSError:  # the supervisor has reaped this worker (it is ending) or has itself ended
            pass

    threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
    server.run(sockets=[sock])


@dataclass(frozen=True)
class Limits:
    """The supervisor's times, in seconds (tests shorten them)."""

    silent: float = 10.0  # a worker that has said nothing this long is killed and replaced
    startup: float = 60.0  # a worker not serving this long after its start is killed and replaced
    restart: float = 1.0  # the least wait between two starts in one slot; doubled after each failed start
    restart_most: float = 10.0  # ... up to this (the slot's connections wait meanwhile)
    stop: float = 30.0  # after SIGTERM, how long a worker may take before SIGKILL


@dataclass
class Worker:
    """A worker process as the supervisor sees it."""

    process: BaseProcess
    word: Connection  # the supervisor's end of the heartbeat
    born: float
    heard: float  # when it last said it was alive (its start, until it does)
    served: bool = False  # whether it ever said its server had started
    stopping_since: float | None = None  # when it was sent SIGTERM

    @classmethod
    def start(cls, config: uvicorn.Config, sock: socket.socket) -> Worker:
        ours, theirs = spawn.Pipe(duplex=False)
        args = (config, sock, theirs, os.getpid())
        process = spawn.Process(target=worker_main, args=args, name="openplatform-worker")
        # A blocked signal stays blocked in the child, across exec, and one sent to the supervisor
        # meanwhile waits instead of being lost. So the new worker, and multiprocessing's resource
        # tracker started with the first one, never dies of a signal sent to the whole process group
        # while it starts (worker_main then ignores them).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
        try:
            process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            theirs.close()
        now = time.monotonic()
        return cls(process, ours, now, now)

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

    def stuck(self, now: float, limits: Limits) -> str | None:
        """Why it should be killed (silent, not serving in time, not stopping in time), or None."""
        if now - self.heard > limits.silent:
            return f"was silent for {limits.silent:g} s"
        if not self.served and now - self.born > limits.startup:
            return f"did not serve within {limits.startup:g} s"
        if self.stopping_since is not None and now - self.stopping_since > limits.stop:
            return f"was still running {limits.stop:g} s after SIGTERM"
        return None

    def terminate(self, now: float) -> None:
        if self.stopping_since is None and self.process.is_alive():
            os.kill(self.pid, signal.SIGTERM)
            self.stopping_since = now

    def kill(self) -> None:
        if self.process.is_alive():
            os.kill(self.pid, signal.SIGKILL)

    def reap(self) -> None:
        self.process.join()
        self.word.close()
        # A worker stopped by SIGTERM dies of it once uvicorn has stopped (uvicorn raises the signal
        # again), so its own exit handlers never run: its live gauges are dropped here, as for kill -9.
        forget_worker(self.pid)


@dataclass
class Slot:
    """One listening socket and the worker accepting from it (and, during a SIGHUP, its successor)."""

    sock: socket.socket
    worker: Worker | None  # None while it waits to start again (``Supervisor.replace``)
    successor: Worker | None = None
    next_start: float = 0.0  # no start in this slot before this time
    failures: int = 0  # starts in a row that ended before serving (the restart wait doubles with each)


class Supervisor:
    """The loop of ``supervise``: one ``Slot`` per socket, the signals received, the workers retiring.

    A SIGHUP replaces the workers slot by slot: only the first slot of ``reloading`` has a
    successor at a time; a SIGHUP during a reload makes another one follow it (the code may have
    changed again since the first slots were replaced).
    """

    def __init__(self, config: uvicorn.Config, limits: Limits) -> None:
        self.config, self.limits = config, limits
        self.slots: list[Slot] = []
        self.retiring: list[Worker] = []  # sent SIGTERM after a SIGHUP; reaped once they end
        self.reloading: list[Slot] = []  # slots whose worker SIGHUP replaces, the first one now
        self.reload_again = False
        self.served = False  # whether any worker has served yet: before that, a failed start ends it all
        self.status: int | None = None  # set: stop, and exit with it

    def open(self, sockets: list[socket.socket]) -> None:
        for sock in sockets:
            slot = Slot(sock, None)
            self.slots.append(slot)
            self.start(slot)

    def on_signal(self, signum: int) -> None:
        if signum != signal.SIGHUP:
            if self.status is None:
                logger.info("Received %s, stopping the workers.", signal.Signals(signum).name)
                self.status = 0
        elif self.reloading:
            logger.info("Received SIGHUP during a reload: another one follows it.")
            self.reload_again = True
        else:
            logger.info("Received SIGHUP: starting new workers, one slot at a time.")
            self.reloading = list(self.slots)

    def look(self) -> None:
        """One round: each worker's words, deaths and hangs; the reload's next step; the retired reaped."""
        now = time.monotonic()
        for slot in self.slots:  # every word first: one worker's death is judged knowing who serves
            if slot.worker is not None:
                slot.worker.listen(now)
                if slot.worker.served:
                    self.served, slot.failures = True, 0
        for slot in self.slots:
            if slot.worker is None:  # waiting to start again (``replace``)
                if now >= slot.next_start:
                    self.start(slot)
                continue
            worker, why = slot.worker, None
            if worker.process.is_alive():
                why = worker.stuck(now, self.limits)
                if why is None:
                    continue
                worker.kill()
            worker.reap()
            code = worker.process.exitcode
            if why is None:
                why = f"ended (exit code {code})"
            if not worker.served:
                if not self.served and code is not None and code >= 0:
                    # It ended by itself before serving, and no worker has served yet: the app cannot
                    # start (uvicorn's STARTUP_FAILURE), and every new worker would end the same way.
                    logger.error("Worker [%d] ended before it served (exit code %s); stopping.", worker.pid, code)
                    self.status = STARTUP_FAILURE
                    return
                slot.failures += 1
            self.replace(slot, worker, why, now)
        self.reload_step(now)
        for old in list(self.retiring):
            old.listen(now)
            if old.process.is_alive() and (why := old.stuck(now, self.limits)) is not None:
                logger.warning("Retired worker [%d] %s; killing it.", old.pid, why)
                old.kill()
            if not old.process.is_alive():
                old.reap()
                self.retiring.remove(old)

    def replace(self, slot: Slot, gone: Worker, why: str, now: float) -> None:
        """A new worker for ``slot`` now, or once ``slot.next_start`` comes (``look`` starts it then)."""
        if slot.failures:  # a start that failed again: wait longer each time (a database down for a while)
            slot.next_start = max(slot.next_start, now + self.backoff(slot))
        later = f" in {slot.next_start - now:.1f} s" if slot.next_start > now else ""
        logger.warning("Worker [%d] %s; starting another%s.", gone.pid, why, later)
        slot.worker = None
        if not later:
            self.start(slot)

    def start(self, slot: Slot) -> None:
        """A new worker in ``slot``; if it cannot be started (no memory or processes left for a fork,
        no file descriptors), the slot waits and tries again, the wait doubling."""
        now = time.monotonic()
        try:
            slot.worker = Worker.start(self.config, slot.sock)
        except OSError as exc:
            slot.failures += 1
            slot.next_start = now + self.backoff(slot)
            logger.error("Cannot start a worker: %s; trying again in %.1f s.", exc, slot.next_start - now)
            return
        slot.next_start = now + self.limits.restart

    def backoff(self, slot: Slot) -> float:
        """The wait before the next start after ``slot.failures`` failed ones in a row (seconds)."""
        doubled = self.limits.restart * 2.0 ** min(slot.failures - 1, 30)  # 2 ** 1024 would overflow a float
        return min(doubled, self.limits.restart_most)

    def reload_step(self, now: float) -> None:
        """SIGHUP: the first slot of ``reloading`` gets a successor; once it serves, the old worker retires."""
        if not self.reloading:
            if self.reload_again:
                self.reload_again, self.reloading = False, list(self.slots)
            return
        slot = self.reloading[0]
        if slot.worker is None:  # its worker died: the successor takes its place, or the next one will
            if slot.successor is not None:
                slot.worker, slot.successor = slot.successor, None
                slot.next_start = now + self.limits.restart
            self.reloading.pop(0)
            return
        if slot.successor is None:
            slot.successor = Worker.start(self.config, slot.sock)
            return
        new = slot.successor
        new.listen(now)
        if new.served:
            slot.worker.terminate(now)
            self.retiring.append(slot.worker)
            slot.worker, slot.successor = new, None
            self.reloading.pop(0)
            if not self.reloading:
                logger.info("Reload done: every worker replaced.")
            return
        why = None if new.process.is_alive() else f"ended (exit code {new.process.exitcode})"
        why = why or new.stuck(now, self.limits)
        if why is not None:
            new.kill()
            new.reap()
            logger.error("New worker [%d] %s; keeping [%d], reload given up.", new.pid, why, slot.worker.pid)
            slot.successor, self.reloading = None, []  # a SIGHUP received meanwhile still follows

    def stop(self) -> None:
        """SIGTERM to every worker, then SIGKILL to those still running after ``Limits.stop``."""
        everyone = [w for s in self.slots for w in (s.worker, s.successor) if w is not None] + self.retiring
        now = time.monotonic()
        for worker in everyone:
            worker.terminate(now)
        limit = self.limits.stop
        deadline = now + limit
        for worker in everyone:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                logger.warning("Worker [%d] still running %g s after SIGTERM; killing it.", worker.pid, limit)
                worker.kill()
            worker.reap()


def supervise(config: uvicorn.Config, workers: int, limits: Limits = Limits()) -> int:
    """Run ``workers`` worker processes until SIGINT, SIGTERM or SIGQUIT; the exit status: 0, or 3
    when the first workers could not start or the address is taken (this module's docstring).

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
    supervisor = Supervisor(config, limits)
    # multiprocessing starts its resource tracker with the first worker, and unblocks SIGINT in this
    # process as it does: started first, with the group's signals blocked, it is born immune to them,
    # and Worker.start's blocking then holds for the first worker as for the others.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, GROUP_SIGNALS)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        supervisor.open(sockets)
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
