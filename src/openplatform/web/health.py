"""/healthz (the process answers), /readyz (the database answers too), /metrics (admin key only)."""

from __future__ import annotations

from openplatform.errors import OAuthError
from openplatform.web.kernel import Answer, ApiRoute, Call, ok
from openplatform.web.manage_api import admitted
from openplatform.web.metrics import EXPOSITION_TYPE, exposition


async def healthz(_call: Call) -> Answer:
    return ok({"status": "ok"})


async def readyz(call: Call) -> Answer:
    await call.platform.store.ping()
    return ok({"status": "ready"})


async def metrics(call: Call) -> Answer:
    """Prometheus metrics, for an admin key of the whole platform (SPEC §9, §10): one made with
    ``--metrics-only`` (the one a Prometheus server should hold) or a platform key of the admin
    API. 401 without a live key, 429 past the key's rate limit, 403 for a key bound to an SPE.
    A scrape is not audited; it keeps the key's ``last_used_at`` (at most a write a minute)."""
    keys, key = await admitted(call)
    if key.xspe is not None:
        raise OAuthError("access_denied", "Metrics need an admin key of the whole platform, not one bound to an SPE.")
    await keys.record_use(key, None, 0, write=False)
    return 200, exposition(), [(b"content-type", EXPOSITION_TYPE)]


routes = [
    ApiRoute("GET", "/healthz", healthz, "healthz", observed=False),  # probes are not traffic to count
    ApiRoute("GET", "/readyz", readyz, "readyz"),
    ApiRoute("GET", "/metrics", metrics, "metrics"),
]
