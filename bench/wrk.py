"""Running wrk (from Debian: ``apt-get install -y wrk``) and reading its summary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from procs import pinned

LUA_DIR = Path(__file__).resolve().parent / "lua"
INSTALL_HINT = "wrk is not installed: run `apt-get install -y wrk` (Debian/Ubuntu) and try again."


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # socket errors and responses with status >= 400
    status_errors: int  # responses with status >= 400 only
    cpu_seconds: float = 0.0  # CPU the server used meanwhile (robust when other work shares the core)
    ok: int = 0  # answers a checking script found right (e.g. a token in it, "active":true)
    bad: int = 0  # answers a checking script found wrong; both 0 for scripts that do not check

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def answered(self) -> int:
        """Successful answers: those a checking script found right, else those below status 400."""
        return self.ok if self.ok or self.bad else self.requests - self.status_errors

    @property
    def cpu_us(self) -> float:
        """Server CPU microseconds per answered request."""
        return 1e6 * self.cpu_seconds / self.requests if self.requests else 0.0


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(INSTALL_HINT)
    return found


def command(
    url: str, script: str, args: list[str], seconds: float, connections: int, headers: tuple[str, ...] = ()
) -> list[str]:
    """The wrk command line: one thread, ``connections`` keep-alive connections, ``seconds`` long."""
    argv = [
        require_wrk(),
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(LUA_DIR / script),
    ]
    for header in headers:
        argv += ["-H", header]
    return [*argv, url, "--", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "BENCH_LUA_DIR": str(LUA_DIR)}


def parse(stdout: str, stderr: str, returncode: int) -> Result:
    """The summary ``lua/report.lua`` prints (also after wrk is stopped early with SIGINT)."""
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({returncode}): {stderr.strip() or stdout.strip()}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Result(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors=errors,
        status_errors=raw["status"],
        ok=raw["ok"],
        bad=raw["bad"],
    )


def run(
    url: str,
    script: str,
    args: list[str],
    seconds: float,
    connections: int,
    cpus: str | None,
    headers: tuple[str, ...] = (),
) -> Result:
    """One wrk run: one thread, ``connections`` keep-alive connections, ``seconds`` long."""
    argv = command(url, script, args, seconds, connections, headers)
    done = subprocess.run(pinned(cpus, argv), env=environment(), capture_output=True, text=True, timeout=seconds + 60)
    return parse(done.stdout, done.stderr, done.returncode)
