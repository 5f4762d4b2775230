"""``serve --workers N``: ``/metrics`` sums every worker, and a new run starts from zero (SPEC §10).

Real ``openplatform serve --workers 2`` processes on a SQLite file. Each request goes on a new
connection, so the kernel hands connections to both workers; the test reads each worker's own
file in the run's metrics directory (made under the server's ``TMPDIR``) to see that both
answered, then checks that one scrape, answered by either worker, counts every request.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from openplatform.config import Settings
from tests.conftest import TEST_SECRET_KEY, cli_env, free_port, run_cli
from tests.web.test_metrics_dashboard import dashboard, expressions, metric_names

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
MAX_REQUESTS = 2000  # both workers answer long before this (about half the connections each)


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    tmpdir: Path  # the server's TMPDIR: its metrics directory is made in there
    log: Path

    def metrics_dirs(self) -> list[Path]:
        return sorted(self.tmpdir.glob("openplatform-metrics-*"))


@pytest.fixture
def settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    target = tmp_path / "openplatform.db"
    shutil.copy(sqlite_template, target)
    return Settings(database_url=f"sqlite:///{target}", secret_key=TEST_SECRET_KEY, rate_limits="off")


@contextlib.contextmanager
def serving(settings: Settings, workdir: Path, name: str, workers: int = 2, **extra_env: str) -> Iterator[Served]:
    """``openplatform serve --workers N`` until the block ends, then SIGTERM (by PID) and wait."""
    tmpdir = workdir / f"{name}-tmp"
    tmpdir.mkdir()
    log = workdir / f"{name}.log"
    port = free_port()
    env = {**cli_env(settings), "TMPDIR": str(tmpdir), **extra_env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "openplatform.cli", "serve", "--port", str(port), "--workers", str(workers)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
        )  # fmt: skip
    served = Served(f"http://127.0.0.1:{port}", process, tmpdir, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # /healthz is not counted in the metrics
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"not serving in {START_TIMEOUT:.0f} s:\n{log.read_text()}"
            time.sleep(0.05)
        yield served
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)


def per_worker(directory: Path, endpoint: str) -> dict[str, float]:
    """Requests to ``endpoint`` by worker PID, as each worker wrote them to its own file."""
    found: dict[str, float] = {}
    for path in directory.glob("counter_requests_*.db"):
        pid = path.stem.rsplit("_", 1)[1]
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[2].get("endpoint") == endpoint:
                found[pid] = found.get(pid, 0.0) + value
    return found


def scrape(served: Served, key: str) -> dict[str, float]:
    """``/metrics`` as {sample name with sorted labels: value}."""
    answer = httpx.get(f"{served.url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def readyz_counts(samples: dict[str, float]) -> tuple[float, float]:
    """(openplatform_requests_total summed over codes, the latency histogram's count) for /readyz."""
    requests = sum(
        v for k, v in samples.items() if k.startswith("openplatform_requests_total{") and "endpoint=readyz" in k
    )
    latency = samples.get("openplatform_request_seconds_count{endpoint=readyz}", 0.0)
    return requests, latency


def ask_readyz(served: Served, times: int) -> None:
    for _ in range(times):  # a new connection each time: the kernel spreads them over the workers
        assert httpx.get(f"{served.url}/readyz", timeout=5).status_code == 200


def test_metrics_sum_every_worker_and_a_new_run_starts_from_zero(settings: Settings, tmp_path: Path) -> None:
    key = json.loads(run_cli(settings, "admin-key", "create", "--name", "prometheus").stdout)["key"]
    stale = tmp_path / "stale"  # an inherited PROMETHEUS_MULTIPROC_DIR holding a previous run's files

    with serving(settings, tmp_path, "first") as served:
        (directory,) = served.metrics_dirs()
        sent = 0
        while len(per_worker(directory, "readyz")) < 2:
            assert sent < MAX_REQUESTS, f"only one worker answered {sent} requests:\n{served.log.read_text()}"
            ask_readyz(served, 10)
            sent += 10
        workers = per_worker(directory, "readyz")
        assert sum(workers.values()) == sent and all(count > 0 for count in workers.values()), workers

        for _ in range(4):  # whichever worker answers the scrape, it counts every worker's requests
            assert readyz_counts(scrape(served, key)) == (sent, sent)
        summed = {name.split("{", 1)[0] for name in scrape(served, key)}
        queried = set().union(*map(metric_names, expressions(dashboard())))
        assert queried <= summed, sorted(queried - summed)  # the dashboard works on several workers too
        shutil.copytree(directory, stale)
        stale_files = {path.name: path.read_bytes() for path in stale.iterdir()}

    assert served.process.returncode == 0, served.log.read_text()
    assert not directory.exists(), "the run's metrics directory outlived it"

    with serving(settings, tmp_path, "second", PROMETHEUS_MULTIPROC_DIR=str(stale)) as again:
        (fresh,) = again.metrics_dirs()
        assert fresh != directory and fresh != stale
        assert readyz_counts(scrape(again, key)) == (0, 0)
        ask_readyz(again, 7)
        assert readyz_counts(scrape(again, key)) == (7, 7)
    assert {path.name: path.read_bytes() for path in stale.iterdir()} == stale_files  # nor written to


def test_one_worker_uses_the_ordinary_registry(settings: Settings, tmp_path: Path) -> None:
    """With one worker no directory is made, and the process's own metrics are served."""
    key = json.loads(run_cli(settings, "admin-key", "create", "--name", "prometheus").stdout)["key"]
    with serving(settings, tmp_path, "one", workers=1) as served:
        ask_readyz(served, 3)
        samples = scrape(served, key)
        assert readyz_counts(samples) == (3, 3)
        assert any(k.startswith("process_") for k in samples)  # the ordinary registry's process collector
        assert served.metrics_dirs() == []
