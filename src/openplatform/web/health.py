"""/healthz (the process answers) and /readyz (the database answers too)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openplatform.web.http import endpoint, platform_of
from openplatform.web.metrics import metrics_endpoint
from openplatform.web.responses import success


async def healthz(_request: Request) -> Response:
    return success({"status": "ok"})


@endpoint("readyz")
async def readyz(request: Request) -> Response:
    await platform_of(request).store.ping()
    return success({"status": "ready"})


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics_endpoint, methods=["GET"]),
]
