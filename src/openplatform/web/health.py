"""/healthz (the process answers), /readyz (the database answers too), /metrics (admin key only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from openplatform.errors import OAuthError
from openplatform.services.admin_keys import AdminKeys
from openplatform.web.http import endpoint, platform_of
from openplatform.web.metrics import metrics_endpoint
from openplatform.web.responses import success


async def healthz(_request: Request) -> Response:
    return success({"status": "ok"})


@endpoint("readyz")
async def readyz(request: Request) -> Response:
    await platform_of(request).store.ping()
    return success({"status": "ready"})


@endpoint("metrics")
async def metrics(request: Request) -> Response:
    """Prometheus metrics, for an admin key of the whole platform only (SPEC §9, §10)."""
    admin = request.app.state.admin
    key = await AdminKeys(admin.db, admin.keyring).authenticate(request.headers.get("authorization"))
    if key is None:
        raise OAuthError(
            "invalid_token",
            "An admin key is required: Authorization: Bearer <key> (openplatform admin-key create).",
            headers={"WWW-Authenticate": 'Bearer realm="openplatform"'},
        )
    if key.xspe is not None:
        raise OAuthError("access_denied", "Metrics need an admin key of the whole platform, not one bound to an SPE.")
    return await metrics_endpoint(request)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
