"""Starting the two servers pinned to one core, waiting for them, stopping them by PID."""

from __future__ import annotations

import argparse
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int | None, argv: list[str]) -> list[str]:
    """Prefix ``taskset -c CORE`` (taskset execs, so the PID stays the program's)."""
    return argv if core is None else ["taskset", "-c", str(core), *argv]


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT)


def start_openplatform(port: int, core: int | None, env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    argv = [str(BIN / "openplatform"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    return start(pinned(core, argv), env, workdir, workdir / "openplatform.log")


def start_bare(port: int, core: int | None, env: dict[str, str], workdir: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, str(BENCH_DIR / "bare_app.py"), str(port)]
    return start(pinned(core, argv), env, workdir, workdir / "bare.log")


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
    """SIGINT (uvicorn's graceful shutdown), then SIGKILL after 10 s; by PID only."""
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


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (all its threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def group_commits(self, metrics_key: str = "") -> tuple[float, float]:
        """(operations, commits) so far, from openplatform's /metrics (read with an admin key);
        (0, 0) for the bare app."""
        request = urllib.request.Request(self.url + "/metrics", headers={"Authorization": f"Bearer {metrics_key}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
                text = response.read().decode()
        except OSError:
            return (0.0, 0.0)
        found = dict.fromkeys(("_sum", "_count"), 0.0)
        for line in text.splitlines():
            for suffix in found:
                if line.startswith(f"openplatform_db_batch_operations{suffix} "):
                    found[suffix] = float(line.split()[1])
        return (found["_sum"], found["_count"])


@contextlib.contextmanager
def servers(opts: argparse.Namespace, env: dict[str, str], workdir: Path) -> Iterator[tuple[Server, Server]]:
    """openplatform and the bare app, both on core 0 (when there are two cores)."""
    core = 0 if can_pin() and not opts.no_pin else None
    op_port, bare_port = free_port(), free_port()
    started: list[subprocess.Popen[bytes]] = []
    try:
        started.append(start_openplatform(op_port, core, env, workdir))
        started.append(start_bare(bare_port, core, env, workdir))
        pair = (
            Server(f"http://127.0.0.1:{op_port}", started[0].pid),
            Server(f"http://127.0.0.1:{bare_port}", started[1].pid),
        )
        wait_ready(started[0], pair[0].url + "/readyz")
        wait_ready(started[1], pair[1].url + "/ready")
        yield pair
    except RuntimeError:
        for log in ("openplatform.log", "bare.log"):
            print(f"--- {log}\n{(workdir / log).read_text(errors='replace')[-3000:]}")
        raise
    finally:
        for proc in started:
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
