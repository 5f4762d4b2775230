"""``bench/inprocess.py``, as its usage line prints it, runs every scenario to the end with only
200 answers (no speed is asserted: the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "inprocess.py"


def scenarios() -> list[str]:
    usage = re.search(r"inprocess\.py \[([a-z|-]+)\]", SCRIPT.read_text())
    assert usage is not None
    return usage.group(1).split("|")


def test_the_usage_names_every_scenario() -> None:
    assert scenarios() == [
        "app-token", "open-api", "customer-list", "connect", "code-exchange", "refresh", "introspect",
    ]  # fmt: skip


@pytest.mark.parametrize("scenario", scenarios())
def test_each_scenario_runs(scenario: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), scenario, "--requests", "64"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    figures = r"[\d.]+ µs CPU and [\d.]+ µs wall per request"
    status = 302 if scenario == "connect" else 200  # a code, in the redirect to the app
    assert re.fullmatch(rf"{scenario}: 64 requests, {figures}; statuses \{{{status}: \d+\}}", line), line
