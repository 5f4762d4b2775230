"""create_app(settings): routes, lifespan (storage, background jobs), error rendering."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from openplatform.config import Settings
from openplatform.errors import OAuthError
from openplatform.runtime import build_admin, build_platform, make_database
from openplatform.services.webhooks import WebhookWorker
from openplatform.storage.cache import CachedStore
from openplatform.web import api_sites, docs, health, oauth, open_api, ui
from openplatform.web.http import ascii_query_string
from openplatform.web.lean import Headers, LeanEndpoint
from openplatform.web.limits import MAX_HEADER_BYTES, header_bytes, headers_too_large
from openplatform.web.responses import NO_STORE, error_response

HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")

log = logging.getLogger("openplatform")


async def _clean_up_forever(app: Starlette) -> None:
    """Every ``cleanup_interval`` seconds, one cleanup pass in small batches (SPEC §8)."""
    settings = app.state.platform.settings
    while True:
        await asyncio.sleep(settings.cleanup_interval)
        try:
            await app.state.platform.store.cleanup(
                audit_retention_seconds=settings.audit_retention_days * 86400, batch_size=settings.cleanup_batch_size
            )
        except Exception:
            log.exception("cleanup of expired rows failed")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await app.state.platform.store.start()
    purger = asyncio.create_task(_clean_up_forever(app))
    webhooks = WebhookWorker(app.state.admin, app.state.platform.settings.webhook_poll_seconds)
    webhooks.start()
    try:
        yield
    finally:
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger
        await webhooks.stop()
        await app.state.platform.store.close()
        await app.state.platform.limiter.close()
        await app.state.admin.db.close()


async def http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    if status in (404, 405) and ui.is_screen_request(request):  # the screens answer with a page, not JSON
        return await ui.screen_error(request, status, getattr(exc, "headers", None))
    kind = {404: "not_found", 405: "method_not_allowed"}.get(status, "invalid_request")
    message = "No such endpoint." if status == 404 else None
    always_200 = request.app.state.platform.settings.error_status == "always-200"
    headers = {**NO_STORE, **(getattr(exc, "headers", None) or {})}  # a 405 keeps its Allow
    return error_response(OAuthError(kind, message), always_200, headers)


def lean_endpoint(scope: Scope) -> LeanEndpoint | None:
    """The lean endpoint for exactly this method and path, with its path parameter set; or None."""
    method, path = scope["method"], scope["path"]
    found = oauth.lean_endpoints.get((method, path))
    if found is not None:
        return found
    for lean_method, prefix, name, endpoint in open_api.lean_prefix_endpoints:
        rest = path[len(prefix) :]
        if method == lean_method and path.startswith(prefix) and rest and "/" not in rest:
            scope["path_params"] = {name: rest}
            return endpoint
    return None


class OpenPlatformApp(Starlette):
    """Starlette, with the hot routes (``web.lean``) dispatched before its middleware and router.

    Only an exact method and path take the lean way; everything else, including
    a HEAD, another method or a trailing slash on those paths, goes through
    Starlette as usual, where the same endpoints also sit in the router.
    Before either, request headers over 16 KiB are answered 431 (``web.limits``);
    ``answer_headers`` (HSTS under an https ISSUER, SPEC §9) go on every answer.
    """

    answer_headers: Headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if header_bytes(scope["headers"]) > MAX_HEADER_BYTES:
            await self.refuse_headers(send)
            return
        ascii_query_string(scope)
        lean = lean_endpoint(scope) if not scope.get("root_path") else None
        if lean is not None:
            scope["app"] = self
            await lean(scope, receive, send, self.answer_headers)
        elif self.answer_headers:
            await super().__call__(scope, receive, self.with_answer_headers(send))
        else:
            await super().__call__(scope, receive, send)

    def with_answer_headers(self, send: Send) -> Send:
        always = self.answer_headers

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *always]
            await send(message)

        return sending

    def headers_too_large(self) -> tuple[int, Headers, bytes]:
        status, headers, body = headers_too_large(self.state.platform.settings.error_status == "always-200")
        return status, headers + self.answer_headers, body

    async def refuse_headers(self, send: Send) -> None:
        status, headers, body = self.headers_too_large()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    app = OpenPlatformApp(
        routes=[*oauth.routes, *open_api.routes, *api_sites.routes, *health.routes, *docs.routes, *ui.routes],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    database = make_database(settings)  # one driver (pool, writer) for the token store and management
    platform = app.state.platform = build_platform(settings, database)
    app.answer_headers = [HSTS] if settings.issuer.startswith("https://") else []
    store = platform.store
    if not isinstance(store, CachedStore):  # runtime.build_platform always wraps the SQL store
        raise TypeError("the server needs the cached store")
    # What the screens and the admin services change is dropped from this process's
    # caches at once and published to the other nodes (SPEC §8).
    app.state.admin = build_admin(settings, announce=store.announce, database=database)
    return app
