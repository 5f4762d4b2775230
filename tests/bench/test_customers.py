"""``--customers N`` of ``bench/inprocess.py`` and ``bench/run.py``: the codes and the refresh chains
are spread over N customers, each on its own installation, as a platform's user tokens are (issue 14:
an index entered at each customer's place cost a rotation 71 % of its WAL, and one customer hid it).
No speed is asserted: the figures are in docs/benchmarks.md."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = 3


def installations_used(db: Path) -> tuple[int, int]:
    """(the customers' own installations the user tokens stand on, user tokens on the SPE-wide one)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT i.customer_id IS NOT NULL, COUNT(DISTINCT t.installation_id), COUNT(*) FROM tokens AS t "
            "JOIN installations AS i ON i.installation_id = t.installation_id GROUP BY 1"
        ).fetchall()
    by_kind = {bool(own): (distinct, tokens) for own, distinct, tokens in rows}
    return by_kind.get(True, (0, 0))[0], by_kind.get(False, (0, 0))[1]


@pytest.mark.parametrize("scenario", ["code-exchange", "refresh"])
def test_inprocess_spreads_the_user_tokens_over_the_customers(scenario: str, tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "inprocess.py"), scenario, "--requests", "64", "--warmup", "2",
         "--customers", str(CUSTOMERS), "--database-url", f"sqlite:///{db}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert installations_used(db) == (CUSTOMERS, 0)


def test_one_customer_is_the_spe_wide_installation(tmp_path: Path) -> None:
    """Without ``--customers`` the bench is as before: one customer, the SPE-wide installation."""
    db = tmp_path / "bench.db"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "inprocess.py"), "refresh", "--requests", "64", "--warmup", "2",
         "--database-url", f"sqlite:///{db}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    own, spe_wide = installations_used(db)
    assert own == 0 and spe_wide > 0


def test_run_mints_and_chains_for_every_customer(tmp_path: Path) -> None:
    """``bench/run.py`` notes a MISMATCH unless the user tokens stand on every customer's installation
    (``Bench.check_spread``): the codes minted by ``lua/mint.lua`` from its file of paths, and the chains."""
    assert shutil.which("wrk"), "wrk is needed (apt-get install -y wrk; .ci/run installs it)"
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--customers", str(CUSTOMERS), "--only", "exchange", "--only", "refresh",
         "--duration", "1", "--warmup", "0", "--baseline", "raw", "--chains", "128", "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{CUSTOMERS} customer(s)" in done.stdout
    [written] = list(tmp_path.glob("*.md"))
    text = written.read_text()
    assert "MISMATCH" not in text and "NOTE" not in text, text
    assert "(code exchange) | 1 |" in text and "(refresh rotation) | 1 |" in text, text
