"""Prometheus metrics (``/metrics``, SPEC §10): requests by endpoint and envelope code, latency.

Every metric the server exports, and where it is fed (``deploy/grafana/openplatform.json``
queries each of them; ``tests/web/test_metrics_dashboard.py`` keeps that true):

- ``openplatform_requests_total{endpoint, code}`` and ``openplatform_request_seconds{endpoint}``:
  here, from the endpoint kernel (``web/kernel.py``, every API route but ``/healthz``). ``code`` is the
  envelope code (0: success), and
  the grants have their own endpoints (``access_token``, ``refresh_token``, ``credit_token``).
- ``openplatform_db_batch_operations``: write operations per group commit (``storage/sql/driver.py``).
- ``openplatform_db_busy_retries_total``: SQLite group commits retried because another connection
  held the write lock (``storage/sql/sqlite.py``).
- ``openplatform_db_keyed_reads``: PostgreSQL: codes or tokens read with their backing by each
  statement of the keyed reads (``storage/sql/postgres.py``).
- ``openplatform_cache_lookups_total{cache, result}``: hits and misses of the in-process caches
  (``storage/cache.py``).
- ``openplatform_revocation_lag_seconds{path}``: from an invalidation record's creation to its
  application in this process, by the poller (``path="poll"``) or Redis (``"fanout"``).
- ``openplatform_webhook_backlog``: undelivered webhook notifications with attempts left
  (``services/webhooks.py``).

The request counts live in plain dicts and become Prometheus families only when
``/metrics`` is scraped. prometheus_client's own Counter and Histogram take a
lock on every update: about 1.5 µs per request in the benchmark's profile,
for numbers read a few times a minute. Every update happens on the event loop's
thread, so the dicts need no lock.

Several workers (``serve --workers N``): ``web/serve.py`` creates an empty directory for the
run and names it in ``PROMETHEUS_MULTIPROC_DIR`` before the workers start, so prometheus_client
keeps each worker's values in files there (its multiprocess mode), and ``/metrics``, whichever
worker answers it, sums every worker's files (``MultiProcessCollector``). The request counts are
written to this worker's own files on every update (about 0.45 µs more a request, no lock): a
scrape sees every request answered so far by any worker. With one worker the ordinary registry is used.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import struct
import tempfile
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess, values
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BOUNDS = (*map(floatToGoString, BUCKETS), "+Inf")
REQUESTS = "openplatform_requests"
REQUESTS_HELP = "Requests by endpoint and envelope code"
LATENCY = "openplatform_request_seconds"
LATENCY_HELP = "Request latency by endpoint"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's name for the directory
DOUBLE = struct.Struct("d").pack  # a value in prometheus_client's files: a native double


class WorkerFiles:
    """This worker's request counts in the multiprocess directory, in prometheus_client's format.

    Files of its own (``counter_requests_<pid>.db``, ``histogram_requests_<pid>.db``): two
    writers on prometheus_client's ``counter_<pid>.db`` would overwrite each other's entries.
    ``MultiProcessCollector`` reads every ``*.db`` of the directory and sums them; it takes
    histogram buckets as they are kept here (each bucket's own count) and accumulates them.

    A sample's entry is made once through ``MmapedDict.write_value``; after that its value is
    written straight to its position in the map (``_positions``, ``_m``: prometheus_client's file
    layout, which tests/web/test_metrics_workers.py reads back). Measured (``observe``, best of 15
    runs): 0.23 µs with one worker, 0.67 µs with these writes; through ``write_value`` 1.5 µs.
    """

    def __init__(self, directory: str, pid: int) -> None:
        self.counters = MmapedDict(os.path.join(directory, f"counter_requests_{pid}.db"))  # type: ignore[no-untyped-call]
        self.histograms = MmapedDict(os.path.join(directory, f"histogram_requests_{pid}.db"))  # type: ignore[no-untyped-call]
        self.count_map, self.latency_map = self.counters._m, self.histograms._m
        self.count_slots: dict[tuple[str, int], int] = {}  # (endpoint, code) -> position of its value
        self.latency_slots: dict[str, list[int]] = {}  # per endpoint: each bucket's position, then the sum's

    def write(self, endpoint: str, code: int, count: int, slot: int, histogram: list[float]) -> None:
        """Store the new values of one request's samples (counts are totals, not increments)."""
        at = self.count_slots.get((endpoint, code))
        if at is None:
            key = mmap_key(REQUESTS, REQUESTS + "_total", ["endpoint", "code"], [endpoint, str(code)], REQUESTS_HELP)
            at = self.count_slots[(endpoint, code)] = self._make(self.counters, key)
        self.count_map[at : at + 8] = DOUBLE(count)
        slots = self.latency_slots.get(endpoint)
        if slots is None:  # every bucket, +Inf included, exists from the start (histogram_quantile needs them)
            bucket = LATENCY + "_bucket"
            keys = [mmap_key(LATENCY, bucket, ["endpoint", "le"], [endpoint, b], LATENCY_HELP) for b in BOUNDS]
            keys.append(mmap_key(LATENCY, LATENCY + "_sum", ["endpoint"], [endpoint], LATENCY_HELP))
            slots = self.latency_slots[endpoint] = [self._make(self.histograms, key) for key in keys]
        at = slots[slot]
        self.latency_map[at : at + 8] = DOUBLE(histogram[slot])
        at = slots[-1]
        self.latency_map[at : at + 8] = DOUBLE(histogram[-1])

    def _make(self, file: MmapedDict, key: str) -> int:
        """A new sample at 0; returns where its value is. The map may have grown into a new mmap."""
        file.write_value(key, 0.0, 0.0)  # type: ignore[no-untyped-call]
        self.count_map, self.latency_map = self.counters._m, self.histograms._m
        return int(file._positions[key])


class RequestStats(Collector):
    def __init__(self, files: WorkerFiles | None = None) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        # per endpoint: one count per bucket (the last one is +Inf), then the sum of seconds
        self.latency: dict[str, list[float]] = {}
        self.files = files  # with several workers: where the other workers' scrapes read them

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        key = (endpoint, code)
        count = self.counts[key] = self.counts.get(key, 0) + 1
        histogram = self.latency.get(endpoint)
        if histogram is None:
            histogram = self.latency[endpoint] = [0.0] * (len(BUCKETS) + 2)
        slot = bisect_left(BUCKETS, seconds)  # buckets are "less than or equal"
        histogram[slot] += 1
        histogram[-1] += seconds
        if self.files is not None:
            self.files.write(endpoint, code, count, slot, histogram)

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(REQUESTS, REQUESTS_HELP, labels=["endpoint", "code"])
        for (endpoint, code), count in sorted(self.counts.items()):
            requests.add_metric([endpoint, str(code)], count)
        latency = HistogramMetricFamily(LATENCY, LATENCY_HELP, labels=["endpoint"])
        for endpoint, histogram in sorted(self.latency.items()):
            cumulative, buckets = 0.0, []
            for bound, in_bucket in zip(BOUNDS, histogram[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((bound, cumulative))
            latency.add_metric([endpoint], buckets, histogram[-1])
        yield requests
        yield latency


def multiprocess_directory() -> str | None:
    """The directory this process shares its values in, or None for the ordinary registry.

    prometheus_client chose its mode when it was first imported (from the environment), so this
    asks it rather than the environment now.
    """
    shared = getattr(values.ValueClass, "_multiprocess", False)
    return os.environ.get(MULTIPROC_ENV) if shared else None


DIRECTORY_PREFIX = "openplatform-metrics-"
# openplatform-metrics-<pid of the serve process>-<random>; in it, prometheus_client's files and
# ours are named <kind>_<pid of the worker>.db (WorkerFiles; MultiProcessCollector reads *.db).
OWNED_DIRECTORY = re.compile(re.escape(DIRECTORY_PREFIX) + r"(\d+)-[A-Za-z0-9_]+")
WORKER_FILE = re.compile(r"_(\d+)\.db")


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (another user's counts: it cannot be signalled, but it lives)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_abandoned(parent: str) -> list[str]:
    """Remove the metrics directories in ``parent`` that no process uses any more; their paths.

    A ``serve --workers N`` killed by SIGKILL (the OOM killer, ``kill -9``) never runs its
    ``finally``, so its directory stayed behind, one per such start. A directory is removed only
    when its serve process (the pid in its name) and every worker named in its files are gone:
    a live one, or one whose workers outlived their serve process, is never touched. A pid reused
    by an unrelated process keeps its directory (a leftover kept, never a live one removed), and a
    directory named without a pid (before this rule) is left alone: nothing says whose it is.
    """
    removed: list[str] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        owner = OWNED_DIRECTORY.fullmatch(entry.name)
        try:
            if owner is None or not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != os.getuid():
                continue
            pids = {int(owner.group(1))}
            pids |= {int(m.group(1)) for name in os.listdir(entry.path) if (m := WORKER_FILE.search(name))}
        except OSError:  # removed meanwhile by another serve starting
            continue
        if not any(_alive(pid) for pid in pids):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


@contextlib.contextmanager
def shared_directory(workers: int) -> Iterator[str | None]:
    """For ``serve --workers N`` (N > 1): a new, empty directory named in ``PROMETHEUS_MULTIPROC_DIR``
    for the workers this process starts (they inherit the environment), removed afterwards.

    A new directory for each run, so no count of an earlier run is summed in; it is made under the
    system's temporary directory (``TMPDIR``), named with this process's pid, and the directories
    that killed runs left there are removed first (``remove_abandoned``), with one worker too.
    Yields its path, or None with one worker.
    """
    remove_abandoned(tempfile.gettempdir())
    if workers <= 1:
        yield None
        return
    directory = tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-")
    inherited = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield directory
    finally:
        if inherited is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = inherited
        shutil.rmtree(directory, ignore_errors=True)


def forget_worker(pid: int) -> None:
    """After a worker of ``serve --workers N`` has ended, however it ended: its live gauges (the
    webhook backlog) stop counting in ``/metrics`` (prometheus_client's ``mark_process_dead``, which
    the worker's own exit handler below does not get to run when a signal ends it)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


SHARED_DIRECTORY = multiprocess_directory()
if SHARED_DIRECTORY is None:
    STATS = RequestStats()
    REGISTRY.register(STATS)
    OUTPUT: CollectorRegistry = REGISTRY
else:
    STATS = RequestStats(WorkerFiles(SHARED_DIRECTORY, os.getpid()))
    OUTPUT = CollectorRegistry()
    multiprocess.MultiProcessCollector(OUTPUT, SHARED_DIRECTORY)  # type: ignore[no-untyped-call]
    # A live gauge (the webhook backlog) stops counting when its worker exits.
    atexit.register(multiprocess.mark_process_dead, os.getpid(), SHARED_DIRECTORY)
observe = STATS.observe


EXPOSITION_TYPE = CONTENT_TYPE_LATEST.encode("latin-1")  # the content-type of ``exposition()``


def exposition() -> bytes:
    """The Prometheus text format (``EXPOSITION_TYPE``): this process's metrics, or every worker's summed
    (see above)."""
    return generate_latest(OUTPUT)
