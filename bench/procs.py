"""Starting the servers pinned to their CPUs, waiting for them, measuring their CPU, stopping them by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
BASELINES = {  # name -> the script that serves it (``SCRIPT PORT WORKERS``)
    "raw": "raw_asgi.py",  # a plain ASGI callable reading the body: the ceiling (issue 14)
    "starlette": "bare_app.py",  # one Starlette route, the body not read (issue 2)
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpus: str | None, argv: list[str]) -> list[str]:
    """Prefix ``taskset -c CPUS`` (taskset execs, so the PID stays the program's; children inherit it)."""
    return argv if cpus is None else ["taskset", "-c", cpus, *argv]


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)


def start_openplatform(
    port: int, cpus: str | None, env: dict[str, str], workdir: Path, workers: int = 1
) -> subprocess.Popen[bytes]:
    argv = [str(BIN / "openplatform"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    return start(pinned(cpus, argv), env, workdir, workdir / "openplatform.log")


def start_baseline(
    name: str, port: int, cpus: str | None, env: dict[str, str], workdir: Path, workers: int = 1
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, str(BENCH_DIR / BASELINES[name]), str(port), str(workers)]
    return start(pinned(cpus, argv), env, workdir, workdir / f"{name}.log")


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (uvicorn's graceful shutdown; its supervisor stops its workers), then SIGKILL after 10 s; by PID."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def can_pin() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants alive now: uvicorn's supervisor and its worker processes."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in task.read_text().split())
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (all its threads); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """CPU time so far of the server: the process and every process under it (``--workers N``)."""
        return sum(cpu_seconds(pid) for pid in process_tree(self.pid))

    def group_commits(self, metrics_key: str = "") -> tuple[float, float, float]:
        """(operations, commits, SQLite busy retries) so far, from openplatform's /metrics (read
        with an admin key); zeros for a baseline."""
        request = urllib.request.Request(self.url + "/metrics", headers={"Authorization": f"Bearer {metrics_key}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
                text = response.read().decode()
        except OSError:
            return (0.0, 0.0, 0.0)
        names = ("openplatform_db_batch_operations_sum", "openplatform_db_batch_operations_count",
                 "openplatform_db_busy_retries_total")  # fmt: skip
        found = dict.fromkeys(names, 0.0)
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in found:
                found[name] = float(value)
        return (found[names[0]], found[names[1]], found[names[2]])


@dataclass(frozen=True)
class Servers:
    """openplatform and the baselines of one run, all started with the same number of workers."""

    op: Server
    baselines: dict[str, Server]
    workers: int


@contextlib.contextmanager
def servers(
    env: dict[str, str], workdir: Path, cpus: str | None, workers: int, baselines: tuple[str, ...]
) -> Iterator[Servers]:
    """openplatform and each baseline of ``BASELINES`` asked for, all on ``cpus`` (``taskset -c``)."""
    started: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    try:
        for name in ("openplatform", *baselines):
            port = free_port()
            urls[name] = f"http://127.0.0.1:{port}"
            if name == "openplatform":
                started[name] = start_openplatform(port, cpus, env, workdir, workers)
            else:
                started[name] = start_baseline(name, port, cpus, env, workdir, workers)
        for name, proc in started.items():
            wait_ready(proc, urls[name] + ("/readyz" if name == "openplatform" else "/ready"))
        yield Servers(
            Server(urls["openplatform"], started["openplatform"].pid),
            {name: Server(urls[name], started[name].pid) for name in baselines},
            workers,
        )
    except RuntimeError:
        for name in started:
            print(f"--- {name}.log\n{(workdir / f'{name}.log').read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for proc in started.values():
            stop(proc)


@contextlib.contextmanager
def profiled(server: Server, out_dir: Path | None, name: str, seconds: float) -> Iterator[None]:
    """With ``--profile DIR``: py-spy samples the server (all threads) while the block runs."""
    if out_dir is None:
        yield
        return
    spy = shutil.which("py-spy") or str(BIN / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in name.split("(")[0].strip()).strip("-").lower()
    argv = [
        spy,
        "record",
        "--pid",
        str(server.pid),
        "--subprocesses",  # --workers N: the workers are the supervisor's children
        "--duration",
        str(max(1, int(seconds) - 1)),
        "--rate",
        "250",
        "--format",
        "raw",
        "--nonblocking",
        "--threads",
        "--output",
        str(out_dir / f"{slug}.txt"),
    ]
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.wait(timeout=seconds + 30)
