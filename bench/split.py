"""How ``serve --workers N`` deals a burst of new connections among its workers (docs/benchmarks.md).

    .venv/bin/python bench/split.py [--workers 2] [--bursts 20] [--connections 32] [--server-cpus 0]

Starts ``openplatform serve --workers N`` on a fresh SQLite file (the code on ``PYTHONPATH``, or
this checkout's), waits until every worker listens and answers, then opens ``--connections``
connections at once, as wrk does at its start, sends one request on each and reads the answers.
Which worker accepted each connection is read from ``/proc`` (Linux): the established sockets of
``/proc/net/tcp`` by inode, against each worker's file descriptors. Prints, for each burst, the
busiest worker's share, and their median.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LISTEN, ESTABLISHED = "0A", "01"  # /proc/net/tcp's states
REQUEST = b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n"


def sockets_on(port: int, state: str) -> set[int]:
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                found.add(int(fields[9]))
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def workers(supervisor: int, port: int) -> list[int]:
    listening = sockets_on(port, LISTEN)
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children if socket_inodes(int(pid)) & listening]


def burst(port: int, connections: int, pids: list[int]) -> list[int]:
    """Each worker's count of ``connections`` opened at once, busiest first."""
    conns = []
    for _ in range(connections):  # every connect started before any request is sent
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", port))
        conns.append(sock)
    try:
        for sock in conns:
            sock.setblocking(True)
            sock.settimeout(10)
            sock.sendall(REQUEST)
        for sock in conns:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        accepted = sockets_on(port, ESTABLISHED)
        return sorted((len(socket_inodes(pid) & accepted) for pid in pids), reverse=True)
    finally:
        for sock in conns:
            sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bursts", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--server-cpus", help="pin the server and its workers (taskset -c), as bench/run.py does")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
        free.close()
        env = {**os.environ, "OPENPLATFORM_DATABASE_URL": f"sqlite:///{work}/op.db",
               "OPENPLATFORM_SECRET_KEY": "b" * 43, "OPENPLATFORM_RATE_LIMITS": "off"}  # fmt: skip
        argv = [sys.executable, "-m", "openplatform.cli", "serve", "--port", str(port), "--workers", str(opts.workers)]
        if opts.server_cpus:
            argv = ["taskset", "-c", opts.server_cpus, *argv]
        server = subprocess.Popen(argv, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                with contextlib.suppress(OSError, AssertionError, FileNotFoundError):
                    pids = workers(server.pid, port)
                    if len(pids) == opts.workers and burst(port, 1, pids):
                        break
                time.sleep(0.2)
            time.sleep(1)  # every worker idle in its event loop, as when wrk starts
            busiest = []
            for _ in range(opts.bursts):
                busiest.append(burst(port, opts.connections, pids)[0])
                time.sleep(0.3)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    print(f"the busiest of {opts.workers} workers' share of {opts.connections} connections opened at once,")
    print(f"{opts.bursts} bursts: {sorted(busiest)}; median {statistics.median(busiest):g}")


if __name__ == "__main__":
    main()
