"""Every command block of docs/benchmarks.md from "SQLite claims batched (issue 14)" on, run as printed
but short, so the commands of issue 14's sections do not rot: ``bench/inprocess.py`` without valgrind
and with few requests, ``bench/run.py`` and ``bench/ab.py`` with one-second runs of one scenario,
``bench/checkpoints.py`` with few requests, ``bench/proto.py`` without valgrind, ``bench/split.py``
with two bursts, ``bench/sends.py`` with few answers. No count or speed is
asserted: figures live in the docs."""

from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"
FIRST = "### SQLite claims batched (issue 14)"
VALGRIND = "valgrind --tool=callgrind --instr-atstart=no "


def blocks() -> list[list[str]]:
    text = DOC.read_text()
    found = re.findall(r"```sh\n(.*?)```", text[text.index(FIRST) :], re.S)
    return [[line for line in block.splitlines() if line.strip() and not line.startswith("#")] for block in found]


def shortened(line: str) -> str:
    """The line as the test runs it: fewer requests, one-second runs of one scenario, no valgrind."""
    line = line.split("  #", 1)[0].strip().removeprefix(VALGRIND)
    if "bench/proto.py" in line:  # valgrind with its own output file; the request count last
        return re.sub(r"^valgrind( --\S+)* ", "", line).rsplit(" ", 1)[0] + " 50"
    if "bench/inprocess.py" in line or "bench/checkpoints.py" in line:
        return line + " --requests 64 --warmup 2"  # argparse keeps the last --requests
    if "bench/split.py" in line:
        return line + " --bursts 2"  # argparse keeps the last --bursts
    if "bench/sends.py" in line:
        return line + " --answers 1000 --rounds 1"  # argparse keeps the last of each
    if "bench/run.py" in line or "bench/ab.py" in line:
        line = re.sub(r" --only \S+", "", line)
        line = re.sub(r" --(duration|warmup|rounds) \S+", "", line)
        extra = " --rounds 1" if "bench/ab.py" in line else ""
        return line + " --only open-api --duration 1 --warmup 0" + extra
    return line


def test_the_blocks_are_there() -> None:
    commands = [line for block in blocks() for line in block]
    scripts = {
        name for name in ("inprocess.py", "checkpoints.py", "run.py", "ab.py") if any(name in c for c in commands)
    }
    assert scripts == {"inprocess.py", "checkpoints.py", "run.py", "ab.py"}, commands


def run_block(block: list[str]) -> str | None:
    """The block as a bash script; None when it exits 0, else the script and the end of its output."""
    script = "set -euo pipefail\n" + "\n".join(shortened(line) for line in block)
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=900)
    return None if done.returncode == 0 else script + "\n" + done.stdout[-3000:] + done.stderr[-3000:]


def test_each_block_runs_shortened() -> None:
    """Two lanes at once (about two minutes one after another, mostly servers starting): the blocks
    that run ``bench/ab.py`` in one, since each adds git worktrees to this repository and two
    ``git worktree add`` at once can find the other's lock; the rest in the other. Each bench run
    makes its own database and files, and no figure is asserted, so sharing the cores is harmless."""
    assert shutil.which("wrk"), "wrk is needed (apt-get install -y wrk; .ci/run installs it)"
    lanes: tuple[list[list[str]], list[list[str]]] = ([], [])
    for block in blocks():
        lanes[not any("bench/ab.py" in line for line in block)].append(block)
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = pool.map(lambda lane: [run_block(block) for block in lane], lanes)
        failed = [error for lane in outcomes for error in lane if error]
    assert not failed, "\n\n".join(failed)
