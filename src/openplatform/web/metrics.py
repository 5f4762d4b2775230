"""Prometheus metrics (``/metrics``): requests by endpoint and envelope code, latency.

The counts live in plain dicts and become Prometheus families only when
``/metrics`` is scraped. prometheus_client's own Counter and Histogram take a
lock on every update: about 1.5 µs per request in the benchmark's profile,
for numbers read a few times a minute. Every update happens on the event loop's
thread, so the dicts need no lock.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class RequestStats(Collector):
    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], int] = {}
        # per endpoint: one count per bucket (the last one is +Inf), then the sum of seconds
        self.latency: dict[str, list[float]] = {}

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        key = (endpoint, code)
        self.counts[key] = self.counts.get(key, 0) + 1
        histogram = self.latency.get(endpoint)
        if histogram is None:
            histogram = self.latency[endpoint] = [0.0] * (len(BUCKETS) + 2)
        histogram[bisect_left(BUCKETS, seconds)] += 1  # buckets are "less than or equal"
        histogram[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "openplatform_requests", "Requests by endpoint and envelope code", labels=["endpoint", "code"]
        )
        for (endpoint, code), count in sorted(self.counts.items()):
            requests.add_metric([endpoint, str(code)], count)
        latency = HistogramMetricFamily(
            "openplatform_request_seconds", "Request latency by endpoint", labels=["endpoint"]
        )
        for endpoint, histogram in sorted(self.latency.items()):
            cumulative, buckets = 0.0, []
            for bound, in_bucket in zip((*map(str, BUCKETS), "+Inf"), histogram[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((bound, cumulative))
            latency.add_metric([endpoint], buckets, histogram[-1])
        yield requests
        yield latency


STATS = RequestStats()
REGISTRY.register(STATS)
observe = STATS.observe


async def metrics_endpoint(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
