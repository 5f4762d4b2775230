"""Prometheus metrics (``/metrics``): requests by endpoint and envelope code, latency."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

REQUESTS = Counter("openplatform_requests_total", "Requests by endpoint and envelope code", ["endpoint", "code"])
LATENCY = Histogram(
    "openplatform_request_seconds",
    "Request latency by endpoint",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
_children: dict[tuple[str, int], tuple[object, object]] = {}


def observe(endpoint: str, code: int, seconds: float) -> None:
    children = _children.get((endpoint, code))
    if children is None:
        children = _children[(endpoint, code)] = (
            REQUESTS.labels(endpoint, str(code)),
            LATENCY.labels(endpoint),
        )
    children[0].inc()  # type: ignore[attr-defined]
    children[1].observe(seconds)  # type: ignore[attr-defined]


async def metrics_endpoint(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
