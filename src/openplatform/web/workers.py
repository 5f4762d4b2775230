"""``openplatform serve --workers N``: N worker processes, each listening on a socket of its own.

uvicorn's own supervisor binds one socket and hands it to every worker, so the workers accept
from one queue and a burst of new connections goes to whichever worker wakes first: 27 of wrk's
32 connections to one of two workers in one count (docs/benchmarks.md, "SQLite writers across
workers"). The other worker then commits small batches, and the CPU per request grows. Here each
worker binds a socket of its own to the address with ``SO_REUSEPORT``, and the kernel deals new
connections among the listening sockets by a hash of their addresses.

The supervisor (``supervise``):

- first checks that nothing else holds the address (a plain bind: ``SO_REUSEPORT`` alone would let
  a second server of the same user share the port in silence), then keeps the address bound,
  without listening (the kernel gives connections only to listening sockets), so that the port
  stays this server's while a worker is replaced;
- starts the workers as uvicorn does (``multiprocessing``'s spawn), each a ``uvicorn.Server`` on
  its own socket;
- starts a worker again when one ends after it has served; when a worker ends before it has
  served (it cannot bind, the app cannot be built), the same would happen again: it stops every
  worker and returns ``STARTUP_FAILURE`` (3, as uvicorn);
- on SIGINT or SIGTERM sends each worker SIGTERM (a worker stops as one uvicorn does: it stops
  listening, finishes the requests it has, then exits) and waits for them.

uvicorn's supervisor also pings its workers and replaces one that does not answer in time, and
restarts them all on SIGHUP; neither is done here (docs/deployment.md).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import uvicorn
from uvicorn.config import STARTUP_FAILURE

logger = logging.getLogger("uvicorn.error")

POLL_SECONDS = 0.2  # how often the supervisor looks at its workers and at the signals received
spawn = multiprocessing.get_context("spawn")


def address_of(config: uvicorn.Config) -> tuple[socket.AddressFamily, str, int]:
    """(family, host, port) as uvicorn binds them (``Config.bind_socket``: IPv6 when the host has a colon)."""
    family = socket.AF_INET6 if config.host and ":" in config.host else socket.AF_INET
    return family, config.host, config.port


def reserve(config: uvicorn.Config) -> socket.socket:
    """The supervisor's socket: bound to the address with ``SO_REUSEPORT``, not listening.

    Raises ``OSError`` (``EADDRINUSE``) when another socket holds the address, even one that set
    ``SO_REUSEPORT`` too: a plain bind is tried first. A port of 0 is resolved here, once, so that
    every worker binds the same port (``config.port`` is set to it).
    """
    family, host, port = address_of(config)
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no conflict
        probe.bind((host, port))
        port = probe.getsockname()[1]
    held = socket.socket(family)
    try:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind((host, port))
    except OSError:
        held.close()
        raise
    config.port = port
    return held


def listening_socket(config: uvicorn.Config) -> socket.socket:
    """A worker's own socket: bound with ``SO_REUSEPORT`` beside the supervisor's and the other workers'.

    uvicorn's ``create_server`` makes it listen (``config.backlog``). Raises ``OSError``.
    """
    family, host, port = address_of(config)
    sock = socket.socket(family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, telling the supervisor once it serves (through ``started``)."""

    def __init__(self, config: uvicorn.Config, started: Connection) -> None:
        super().__init__(config)
        self._started = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.should_exit:
            self._started.send(True)


def worker_main(config: uvicorn.Config, started: Connection) -> None:
    """A worker process's body (spawned): its own socket, then uvicorn until SIGTERM or SIGINT."""
    config.configure_logging()  # a spawned process starts without the parent's logging
    try:
        sock = listening_socket(config)
    except OSError as exc:
        logger.error("Worker [%d] could not bind %s:%d: %s", os.getpid(), config.host, config.port, exc)
        raise SystemExit(STARTUP_FAILURE) from exc
    try:
        _Server(config, started).run(sockets=[sock])
    except KeyboardInterrupt:  # the terminal's Ctrl+C reaches the workers too; the supervisor stops them
        pass


@dataclass
class Worker:
    process: BaseProcess
    started: Connection  # the supervisor's end: a message once the worker serves
    served: bool = field(default=False)

    @classmethod
    def start(cls, config: uvicorn.Config) -> Worker:
        ours, theirs = spawn.Pipe(duplex=False)
        process = spawn.Process(target=worker_main, args=(config, theirs), name="openplatform-worker")
        process.start()
        theirs.close()
        return cls(process, ours)

    def has_served(self) -> bool:
        if not self.served:
            try:
                self.served = self.started.poll() and bool(self.started.recv())
            except (EOFError, OSError):  # it ended before telling: has_served stays False
                pass
        return self.served


def supervise(config: uvicorn.Config, workers: int) -> int:
    """Run ``workers`` worker processes until SIGINT or SIGTERM; the exit status (0, or 3 when a
    worker could not start, or the address was taken).

    ``config`` is the one uvicorn would run (``host``, ``port``, an import string for the app);
    each worker runs it on its own ``SO_REUSEPORT`` socket (this module's docstring).
    """
    try:
        held = reserve(config)
    except OSError as exc:
        logger.error("Cannot listen on %s:%d: %s", config.host, config.port, exc)
        return STARTUP_FAILURE
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    host = f"[{config.host}]" if ":" in config.host else config.host
    # uvicorn's words, which operators and tests look for, then what is this module's own
    logger.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, config.port)
    logger.info("Supervisor [%d]: %d workers, each listening on its own socket", os.getpid(), workers)
    status = 0
    running = [Worker.start(config) for _ in range(workers)]
    try:
        while not stop.wait(POLL_SECONDS):
            for index, worker in enumerate(running):
                if worker.process.is_alive():
                    worker.has_served()
                    continue
                worker.process.join()
                if not worker.has_served():
                    logger.error(
                        "Worker [%s] ended before it served (exit code %s); stopping.",
                        worker.process.pid, worker.process.exitcode,
                    )  # fmt: skip
                    status = STARTUP_FAILURE
                    stop.set()
                    break
                logger.warning(
                    "Worker [%s] ended (exit code %s); starting another.", worker.process.pid, worker.process.exitcode
                )
                running[index] = Worker.start(config)
        if received:
            logger.info("Received %s, stopping the workers.", signal.Signals(received[0]).name)
    finally:
        for worker in running:
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        for worker in running:
            worker.process.join()
            worker.started.close()
        held.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
