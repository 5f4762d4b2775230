"""The instruction-count commands of docs/benchmarks.md ("Cheaper grants"), run as printed but short:
one under valgrind as printed, the others without it (each is the same script and options), so
``bench/inprocess.py``'s options there do not rot. No count or speed is asserted: figures live in the docs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## Cheaper grants (issue 14, item 2)\n"
VALGRIND = "valgrind --tool=callgrind "
SHORT = " --requests 64 --warmup 2"  # argparse keeps the last --requests


def doc_commands() -> list[str]:
    section = DOC.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, f"no sh block under {SECTION!r}"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def run(command: str, tmp_path: Path) -> str:
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path if command.startswith(VALGRIND) else ROOT,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_each_scenario_is_counted_at_two_lengths() -> None:
    commands = doc_commands()
    assert all(command.startswith(VALGRIND + ".venv/bin/python bench/inprocess.py ") for command in commands)
    lengths = [re.search(r"--requests (\d+)", command) for command in commands]
    assert all(lengths) and len({c.split()[4] for c in commands}) * 2 == len(commands)


@pytest.mark.parametrize("line", range(4))
def test_the_printed_command_runs(line: int, tmp_path: Path) -> None:
    command = doc_commands()[line] + SHORT
    if line == 0:  # as printed, valgrind included (its output file lands in tmp_path)
        assert shutil.which("valgrind"), "valgrind is not installed: apt-get install -y valgrind"
        command = command.replace(".venv/bin/python bench/", f"{ROOT}/.venv/bin/python {ROOT}/bench/")
        output = run(command, tmp_path)
        assert list(tmp_path.glob("callgrind.out.*")), "callgrind wrote no profile"
    else:
        output = run(command.removeprefix(VALGRIND), tmp_path)
    found = re.search(r"(\d+) requests, [\d.]+ µs CPU and [\d.]+ µs wall per request; statuses \{200: (\d+)\}", output)
    assert found is not None, output
    assert int(found.group(1)) == 64 and int(found.group(2)) == 64 + 32 * 2  # every answer a 200
