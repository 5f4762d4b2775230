"""The in-process commands of docs/benchmarks.md ("One endpoint kernel"), run as printed but short, so
``bench/inprocess.py`` does not rot. No speed is asserted: figures live in the docs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"
SECTION = "## One endpoint kernel (issue 11, item 1)\n"


def doc_commands() -> list[str]:
    section = DOC.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, f"no sh block under {SECTION!r}"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_the_section_prints_both_scenarios() -> None:
    assert [command.split()[-1] for command in doc_commands()] == ["app-token", "open-api"]


@pytest.mark.parametrize("line", range(2), ids=["app-token", "open-api"])
def test_the_printed_command_runs(line: int) -> None:
    command = doc_commands()[line] + " --requests 640"
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = re.search(r"(\d+) requests, [\d.]+ µs CPU and [\d.]+ µs wall per request; statuses \{200: (\d+)\}",
                      done.stdout)  # fmt: skip
    assert found is not None, done.stdout
    assert int(found.group(1)) == 640 and int(found.group(2)) == 640 + 32 * 200  # every answer a 200, warm-up too
