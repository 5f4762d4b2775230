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
from openplatform.core.context import Platform
from openplatform.errors import OAuthError
from openplatform.runtime import build_admin, build_platform, make_database
from openplatform.services.directory import Directory
from openplatform.services.webhooks import WebhookWorker
from openplatform.storage.cache import CachedStore
from openplatform.web import api_sites, docs, health, manage_api, oauth, open_api, ui
from openplatform.web.kernel import Headers, RouteTable, error_response
from openplatform.web.limits import MAX_HEADER_BYTES, header_bytes, refusal
from openplatform.web.responses import NO_STORE

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
    headers = {**NO_STORE, **(getattr(exc, "headers", None) or {})}  # a 405 keeps its Allow
    if status == 405:  # every method of the path, not only its first route's (RFC 9110 §15.5.6)
        path, root = request.scope["path"], request.scope.get("root_path", "")
        allowed = request.app.table.allowed(path[len(root) :] if root and path.startswith(root) else path)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    return error_response(OAuthError(kind, message), request.app.state.platform, headers)


def ascii_query_string(scope: Scope) -> None:
    """Percent-encode the bytes above 0x7f of a raw query string, as a browser would have.

    A request target is ASCII (RFC 3986), and uvicorn's parser refuses anything else,
    but an ASGI server may pass raw bytes on; Starlette decodes the query string as
    strict UTF-8 when it builds ``request.url``, which then fails (a 500 on every page).
    Encoded, such bytes reach the parameter parsers, which refuse invalid UTF-8 (40001).
    """
    query: bytes = scope.get("query_string", b"")
    if not query.isascii():
        scope["query_string"] = b"".join(b"%%%02X" % byte if byte > 0x7F else bytes((byte,)) for byte in query)


class OpenPlatformApp(Starlette):
    """Starlette, with the API routes (``table``) dispatched before its middleware and router.

    A method and path of the table take the kernel's fast way (``web.kernel``); everything
    else, including a HEAD, another method, a trailing slash or a ``root_path`` on those
    paths, goes through Starlette, where the same endpoints sit in the router, and the
    screens. What holds on every answer, whichever way it goes, is decided here once:
    request headers over 16 KiB are answered 431 (``web.limits``), a raw query string is
    made ASCII, and ``answer_headers`` (HSTS under an https ISSUER, SPEC §9) are added.
    """

    answer_headers: Headers = []
    table = RouteTable([])
    platform: Platform  # also app.state.platform; an attribute, read once per API call, is cheaper
    directory: Directory | None = None  # the Open APIs' service, built on first use (``open_api.directory_of``)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if header_bytes(scope["headers"]) > MAX_HEADER_BYTES:
            await self.refuse_headers(send)
            return
        if not scope.get("query_string", b"").isascii():  # the usual query string needs no call
            ascii_query_string(scope)
        endpoint = self.table.dispatch(scope) if not scope.get("root_path") else None
        if endpoint is not None:
            scope["app"] = self
            # Its __call__ named: a Python-to-Python call, where calling the instance goes through
            # the type's C call slot into a new interpreter frame (760 instructions a request, callgrind).
            await endpoint.__call__(scope, receive, send, self.answer_headers)
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

    def refusal(self, error: OAuthError) -> tuple[int, Headers, bytes]:
        """``web.limits.refusal`` under this app's settings (``always-200``, HSTS)."""
        status, headers, body = refusal(error, self.state.platform.settings.error_status == "always-200")
        return status, headers + self.answer_headers, body

    async def refuse_headers(self, send: Send) -> None:
        status, headers, body = self.refusal(OAuthError("request_headers_too_large"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    # Every API route, declared once in its module; the screens stay Starlette routes.
    table = RouteTable(
        [*oauth.routes, *open_api.routes, *api_sites.routes, *manage_api.routes, *health.routes, *docs.routes]
    )
    app = OpenPlatformApp(
        routes=[*table.starlette_routes, *ui.routes],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    app.table = table
    # One database layer for the token store and management: a driver (pool, writer), or the
    # process's one MemoryStore for memory://.
    database = make_database(settings)
    platform = app.state.platform = app.platform = build_platform(settings, database)
    app.answer_headers = [HSTS] if settings.issuer.startswith("https://") else []
    store = platform.store
    if not isinstance(store, CachedStore):  # runtime.build_platform wraps every backend's store
        raise TypeError("the server needs the cached store")
    # What the screens and the admin services change is dropped from this process's
    # caches at once and published to the other nodes (SPEC §8).
    app.state.admin = build_admin(settings, announce=store.announce, database=database)
    return app
