"""/healthz (the process answers), /readyz (the database answers too), /metrics (admin key only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from openplatform.errors import OAuthError
from openplatform.services.admin_keys import AdminKeys
from openplatform.web.kernel import Answer, ApiRoute, Call, ok, request_route
from openplatform.web.metrics import metrics_endpoint


async def healthz(_call: Call) -> Answer:
    return ok({"status": "ok"})


async def readyz(call: Call) -> Answer:
    await call.platform.store.ping()
    return ok({"status": "ready"})


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
    ApiRoute("GET", "/healthz", healthz, "healthz", observed=False),  # probes are not traffic to count
    ApiRoute("GET", "/readyz", readyz, "readyz"),
    request_route("GET", "/metrics", metrics, "metrics"),
]
