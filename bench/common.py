"""What the load benchmarks (``run.py``, ``cleanup.py``) share: their options, where the server
and wrk run, and a timed wrk run that also measures the server's CPU."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import procs
import wrk

POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432"


def add_options(parser: argparse.ArgumentParser, warmup: float = 3.0) -> None:
    """--database, --postgres-server, --sqlite-synchronous, --connections, --warmup and the pinning."""
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-server",
        default=POSTGRES_SERVER,
        help="server for --database postgres; a fresh database is created and dropped",
    )
    parser.add_argument("--sqlite-synchronous", choices=("NORMAL", "FULL"), default="NORMAL")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--warmup", type=float, default=warmup, help="untimed seconds of load before each timed part (0: none)"
    )
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list for the servers (default 0)")
    parser.add_argument("--load-cpus", default="1", help="taskset CPU list for wrk (default 1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the servers and wrk to CPUs")


@dataclass(frozen=True)
class Placement:
    """Where the servers and wrk run (``taskset -c`` lists); None: unpinned."""

    server: str | None
    load: str | None


def placement(opts: argparse.Namespace) -> Placement:
    """The pinning asked for, when the machine has two cores and taskset; else none."""
    if opts.no_pin or not procs.can_pin():
        return Placement(None, None)
    return Placement(opts.server_cpus, opts.load_cpus)


def timed_load(
    server: procs.Server,
    path: str,
    script: str,
    args: list[str],
    seconds: float,
    opts: argparse.Namespace,
    headers: tuple[str, ...] = (),
) -> wrk.Result:
    """One wrk run against ``server`` (``opts.connections``, pinned by ``opts``), with the CPU
    the server (all its processes) used meanwhile in ``cpu_seconds``."""
    cpu = server.cpu_seconds()
    got = wrk.run(server.url + path, script, args, seconds, opts.connections, placement(opts).load, headers)
    return dataclasses.replace(got, cpu_seconds=server.cpu_seconds() - cpu)
