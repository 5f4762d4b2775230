"""``bench/ab.py``'s own logic, without servers: the alternated order, the time estimate, the table and
its 3 % verdict from ``bench/run.py --json`` rows. (Running it is for a quiet machine: it loads both
cores for minutes; docs/benchmarks.md records the run.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def load_ab() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ab", ROOT / "bench" / "ab.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ab"] = module
    spec.loader.exec_module(module)
    return module


ab = load_ab()


def row(scenario: str, ratio_raw: float, ratio_starlette: float, cpu_us: float, p99_ms: float = 0.0) -> dict[str, Any]:
    return {"scenario": scenario, "name": f"the {scenario}", "ratio_raw": ratio_raw,
            "ratio_starlette": ratio_starlette, "openplatform": {"cpu_us": cpu_us, "p99_ms": p99_ms}}  # fmt: skip


def test_sides_alternate_round_by_round_on_each_database() -> None:
    assert ab.schedule(2, ["sqlite", "postgres"]) == [
        (1, "sqlite", "A"), (1, "sqlite", "B"), (1, "postgres", "A"), (1, "postgres", "B"),
        (2, "sqlite", "B"), (2, "sqlite", "A"), (2, "postgres", "B"), (2, "postgres", "A"),
    ]  # fmt: skip


def test_the_defaults_fit_in_fifteen_minutes() -> None:
    opts = ab.parse_args(["1c81c75", "HEAD"])
    assert opts.only == ["app-token", "exchange", "open-api"] and opts.database == ["sqlite", "postgres"]
    assert 8 * 60 < ab.estimate_seconds(opts) < 15 * 60


def test_other_options_go_to_run_py() -> None:
    opts = ab.parse_args(["A", "B", "--no-pin", "--only", "open-api", "--connections", "16"])
    assert opts.only == ["open-api"] and opts.run_options == ["--no-pin", "--connections", "16"]


def test_the_table_gives_medians_and_the_verdict() -> None:
    opts = ab.parse_args(["A", "B", "--database", "sqlite", "--only", "app-token", "--only", "open-api"])
    results = {
        ("sqlite", "A"): [row("app-token", 0.50, 0.60, 50, 9.5), row("app-token", 0.52, 0.62, 48, 12.25),
                          row("app-token", 0.51, 0.61, 49, 8.0), row("open-api", 0.60, 0.80, 30)],
        ("sqlite", "B"): [row("app-token", 0.50, 0.61, 49), row("app-token", 0.50, 0.60, 50),
                          row("app-token", 0.52, 0.62, 48), row("open-api", 0.57, 0.80, 30)],
    }  # fmt: skip
    header, rule, app_token, open_api = ab.summary(results, opts)
    assert header.startswith("| database | scenario | A ratio to raw") and rule.startswith("|---")
    cells = [cell.strip() for cell in app_token.strip("|").split("|")]
    assert cells[:5] == ["sqlite", "the app-token", "0.510 (0.50, 0.52, 0.51)", "0.500 (0.50, 0.50, 0.52)", "0.980"]
    assert cells[8:11] == ["49 (50, 48, 49)", "49 (49, 50, 48)", "1.000"] and cells[-1] == "yes"  # 2 % lower: within
    assert cells[11:13] == ["9.5 (9.5, 12.2, 8.0)", "–"]  # each side's median p99, no verdict (B ran none here)
    assert open_api.split("|")[5].strip() == "0.950" and open_api.rstrip(" |").endswith("NO")  # 5 % lower


def test_the_documented_ab_command_runs(tmp_path: Path) -> None:
    """The A/B command of docs/benchmarks.md ("The wall-clock A/B"), as printed, shortened: one round,
    one-second runs, the GET on SQLite; both commits checked out and run, the table written."""
    import re
    import shutil
    import subprocess

    assert shutil.which("wrk"), "wrk is needed (apt-get install -y wrk; .ci/run installs it)"
    section = (ROOT / "docs" / "benchmarks.md").read_text().split("### The wall-clock A/B", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    [command] = block.group(1).strip().splitlines()
    short = f" --rounds 1 --duration 1 --warmup 0 --only open-api --database sqlite --results {tmp_path}"
    done = subprocess.run(["bash", "-c", command + short], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [written] = list(tmp_path.glob("ab-*.md"))
    assert "| sqlite | GET /api/spe/customer/{id} (token checked) |" in written.read_text()
