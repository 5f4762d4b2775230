"""The benchmark's commands in docs/benchmarks.md, run as printed against real servers, so the
bench code does not rot (issue 14 item 1). No speed is asserted: figures live in the docs.

Each line of the ``sh`` block under "## The command" runs with ``bash`` from the repository root,
shortened: one-second runs without warm-up, the raw ASGI baseline only, 128 refresh chains (four
per connection) and 64 tokens, and only the two scenarios issue 14 added (``--only refresh --only
introspect``; argparse appends them to the line's own). That still starts ``openplatform serve``
at each printed worker count, seeds the refresh chains through ``GET /oauth/connect`` and the code
exchange, rotates them with ``lua/chain.lua``, introspects live tokens with ``lua/introspect.lua``
and counts what was committed. The test checks the table: a row per scenario and worker count with
answers, the committed rows for every answered rotation (no ``MISMATCH`` or other note), the
per-worker table.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PG_SERVER, need, port_open

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"
SHORT = "--duration 1 --warmup 0 --baseline raw --chains 128 --tokens 64 --only refresh --only introspect"
NEW_ROWS = ("POST /oauth/refresh_token (refresh rotation)", "POST /oauth/introspect (introspection)")


def doc_commands() -> list[str]:
    """The command lines of the ``sh`` block in the "The command" section."""
    section = DOC.read_text().split("## The command\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "no sh block under '## The command'"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def table_rows(text: str) -> dict[tuple[str, int], list[str]]:
    """The main table's rows by (scenario, workers)."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 14 and cells[1].isdigit():
            rows[(cells[0], int(cells[1]))] = cells
    return rows


def test_the_commands_cover_both_databases_and_worker_counts() -> None:
    commands = doc_commands()
    assert len(commands) == 2
    for command in commands:
        assert command.startswith(".venv/bin/python bench/run.py --workers 1 --workers 2")
    assert "--database postgres" in commands[1]


@pytest.mark.parametrize("line", range(2), ids=["sqlite", "postgres"])
def test_documented_command_runs_the_new_scenarios(line: int, tmp_path: Path) -> None:
    assert shutil.which("wrk"), "wrk is needed (apt-get install -y wrk; .ci/run installs it)"
    command = doc_commands()[line]
    if "--database postgres" in command:
        need(port_open("127.0.0.1", 5432), "PostgreSQL is not reachable on 127.0.0.1:5432")
        command += f" --postgres-server {shlex.quote(PG_SERVER)}"
    command += f" {SHORT} --results {shlex.quote(str(tmp_path))}"
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    [written] = list(tmp_path.glob("*.md"))
    text = written.read_text()
    assert "MISMATCH" not in text and "NOTE" not in text, text
    rows = table_rows(text)
    assert set(rows) == {(name, workers) for name in NEW_ROWS for workers in (1, 2)}, text
    for cells in rows.values():
        openplatform_rps, raw_rps, server_cpu = cells[2], cells[3], cells[10]
        assert openplatform_rps.replace(",", "").isdigit() and int(openplatform_rps.replace(",", "")) > 0
        assert raw_rps.replace(",", "").isdigit() and int(raw_rps.replace(",", "")) > 0
        assert cells[9] == "0", f"errors in {cells}"
        assert server_cpu.isdigit() and int(server_cpu) > 0
    # every answered rotation is committed: new tokens, a rotated refresh token, an audit event
    rotations = re.findall(
        r"refresh rotation\), (\d) worker\(s\): (\d+) successful answers .*?committed: (\d+) user_tokens, "
        r"(\d+) refresh_tokens, (\d+) rotated_refresh, (\d+) refresh_audits",
        text,
    )
    assert [int(r[0]) for r in rotations] == [1, 2], text
    for _workers, answered, *committed in rotations:
        assert int(answered) > 0
        assert all(int(n) >= int(answered) for n in committed)
    assert re.search(r"\| POST /oauth/refresh_token \(refresh rotation\) \| 2 \| \d+ \| \d+ \|", text), text
    if "--database postgres" in command:  # the backends' share is measured too
        assert "database CPU µs/req" in text
