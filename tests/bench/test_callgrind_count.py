"""``bench/inprocess.py --callgrind`` (``bench/callgrind.py``): the timed part's instructions, counted
under valgrind as docs/benchmarks.md prints the command, short. No count is asserted but that there is
one: the figures live in the docs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import callgrind  # noqa: E402 - bench/ is not a package


def test_the_dump_of_every_thread_is_summed(tmp_path: Path) -> None:
    (tmp_path / "callgrind.out.41.1-01").write_text("version: 1\nthread: 1\nsummary: 1000\n")
    (tmp_path / "callgrind.out.41.1-02").write_text("version: 1\nthread: 2\nsummary: 234\n")
    (tmp_path / "callgrind.out.41").write_text("summary: 99999\n")  # the rest of the run: not the timed part
    (tmp_path / "callgrind.out.42.1").write_text("summary: 5\n")  # another process
    assert callgrind.dumped_instructions(41, tmp_path) == 1234
    assert callgrind.dumped_instructions(42, tmp_path) == 5
    assert callgrind.dumped_instructions(43, tmp_path) is None


def test_the_documented_command_counts_the_timed_part(tmp_path: Path) -> None:
    assert shutil.which("valgrind"), "valgrind is not installed: apt-get install -y valgrind"
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"{ROOT}/.venv/bin/python",
         f"{ROOT}/bench/inprocess.py", "app-token", "--requests", "64", "--warmup", "2", "--callgrind"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = re.search(r"instructions per request \(timed part\): ([\d,]+); (\d+) group commits", done.stdout)
    assert found is not None, done.stdout
    assert int(found.group(1).replace(",", "")) > 10_000 and int(found.group(2)) >= 1
