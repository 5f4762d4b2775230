"""``bench/checkpoints.py`` (docs/benchmarks.md, "Refresh, introspection, two workers") run short, so the
probe of the checkpointer does not rot: it must time the checkpoints of a run and count its WAL frames
over its group commits. No speed is asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_probe_counts_frames_per_group_commit() -> None:
    command = [sys.executable, "bench/checkpoints.py", "refresh", "--requests", "12800", "--warmup", "50"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = re.search(r"(\d+) checkpoints, (\d+) WAL frames, (\d+) group commits of ([\d.]+) operations", done.stdout)
    assert summary is not None, done.stdout
    checkpoints, frames, commits, operations = (float(value) for value in summary.groups())
    assert commits > 0 and operations >= 1
    rounds = re.findall(
        r"^PASSIVE +[\d.]+ ms \(\d+, (\d+), (\d+)\) +RESTART +(?:-|[\d.]+ ms \(\d+, (\d+), \d+\))$", done.stdout, re.M
    )
    assert len(rounds) == checkpoints >= 1  # the checkpointer runs once a second; the run is longer
    restarted = [int(restart) for _log, _done, restart in rounds if restart]
    assert frames == sum(restarted) + (int(rounds[-1][0]) if not rounds[-1][2] else 0) > 0


SECTION = "## Refresh, introspection, two workers (issue 14)\n"
VALGRIND = "valgrind --tool=callgrind --instr-atstart=no "


def section_commands() -> list[str]:
    section = (ROOT / "docs" / "benchmarks.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, f"no sh block under {SECTION!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_sections_counting_commands_run_without_valgrind() -> None:
    """The counts' commands as printed, short and without valgrind (``--callgrind`` then says it counted
    nothing), so their options do not rot."""
    commands = section_commands()
    assert [command.split()[5] for command in commands] == ["refresh", "refresh", "introspect", "introspect"]
    for command in commands[::2]:
        assert command.startswith(VALGRIND)
        short = command.removeprefix(VALGRIND) + " --requests 64 --warmup 2"
        done = subprocess.run(["bash", "-c", short], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert re.search(r"64 requests, .* statuses \{200: 128\}", done.stdout), done.stdout
