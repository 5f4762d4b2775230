"""Plain ASGI endpoints for the busiest routes, without Starlette's per-request objects.

Measured on the benchmark machine (docs/benchmarks.md): uvicorn alone answers a
POST, body read, in about 21 µs of CPU; through Starlette's middleware stack,
router, ``Request`` and ``Response`` the same answer costs about 27 µs. On a
token check that is a third of the work. So the token endpoints and the
customer read are ``LeanEndpoint`` objects: ASGI callables reading only the
headers they need from the scope and sending pre-encoded headers. The app
(``web.app.OpenPlatformApp``) dispatches them by exact path and method before
Starlette's stack; they also sit in Starlette's router as ordinary ASGI routes,
so any other method, HEAD, or a trailing slash gets Starlette's own answer.

Everything a Starlette endpoint gets from ``http.endpoint()`` holds here too:
every failure becomes the envelope with its status (or 200 under
``error_status=always-200``), the detail of unexpected ones only in the log.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import orjson
from starlette.types import Receive, Scope, Send

from openplatform.core.context import Platform
from openplatform.core.ip_policy import client_ip
from openplatform.errors import OAuthError
from openplatform.web import metrics
from openplatform.web.responses import as_oauth_error, encode_headers

Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")
NO_HEADERS: Headers = []


class Call:
    """One request as a lean endpoint sees it: the scope, the few headers used, the body."""

    __slots__ = (
        "scope", "receive", "platform", "content_type", "content_length", "authorization", "forwarded", "accept",
    )  # fmt: skip

    def __init__(self, scope: Scope, receive: Receive, platform: Platform) -> None:
        self.scope, self.receive, self.platform = scope, receive, platform
        content_type = content_length = authorization = accept = ""
        forwarded: list[str] = []
        # Names come lower-cased (ASGI spec); a repeated header counts by its first line, as
        # Starlette's Headers.get() reads it, except X-Forwarded-For, which is one list.
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = content_type or value.decode("latin-1")
            elif name == b"content-length":
                content_length = content_length or value.decode("latin-1")
            elif name == b"authorization":
                authorization = authorization or value.decode("latin-1")
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif name == b"accept":
                accept = accept or value.decode("latin-1")
        self.content_type, self.content_length, self.accept = content_type, content_length, accept
        self.authorization, self.forwarded = authorization or None, forwarded

    @property
    def query_string(self) -> bytes:
        return self.scope.get("query_string", b"")  # type: ignore[no-any-return]

    def client_ip(self) -> str:
        return caller_ip(self.scope, self.forwarded, self.platform)

    async def body(self) -> bytes:
        limit = self.platform.settings.max_body_bytes
        declared = self.content_length
        if declared:
            if not (declared.isascii() and declared.isdigit()):  # "²" is a digit to isdigit(), not to int()
                raise OAuthError("invalid_request", "Content-Length is malformed.")
            if int(declared) > limit:
                raise OAuthError("invalid_request", f"The request body is larger than {limit} bytes.")
        message = await self.receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):  # the usual case: the whole body in one message
            if len(body) > limit:
                raise OAuthError("invalid_request", f"The request body is larger than {limit} bytes.")
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise OAuthError("invalid_request", "The client went away before sending the whole body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise OAuthError("invalid_request", f"The request body is larger than {limit} bytes.")
            chunks.append(chunk)
        return b"".join(chunks)


def caller_ip(scope: Scope, forwarded: list[str], platform: Platform) -> str:
    """The caller's address: the peer, or what X-Forwarded-For says behind a trusted proxy."""
    client = scope.get("client")
    peer = client[0] if client else ""
    proxies = platform.settings.trusted_proxy_networks
    # Repeated header lines are one comma-joined list (RFC 9110 §5.3); a proxy that
    # adds its own line puts the real client last, so reading only the first is spoofable.
    joined = (", ".join(forwarded) or None) if proxies else None
    return client_ip(peer, joined, proxies)


# A handler returns the response body (the success envelope, encoded) and extra headers.
Handler = Callable[[Call], Awaitable[tuple[bytes, Headers]]]


def encode_success(result: object) -> bytes:
    return orjson.dumps({"code": 0, "msg": "success", "result": result})


class LeanEndpoint:
    """An ASGI app for one route: runs ``handler``, renders its result or its error.

    ``headers`` go on every answer; ``on_401`` on the answers of a 401 error (the
    token endpoints' ``WWW-Authenticate: Basic``, RFC 7235, SPEC §9), unless the
    error names its own. ``always`` are the app's headers for every answer
    (HSTS), passed by ``web.app`` when it dispatches here itself.
    """

    def __init__(
        self, name: str, handler: Handler, headers: dict[str, str] | None = None,
        on_401: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.handler = handler
        self.fixed = [JSON_TYPE, *encode_headers(headers or {})]
        self.on_401 = on_401 or {}
        self.__name__ = name  # Starlette names routes after their endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send, always: Headers = NO_HEADERS) -> None:
        started = time.perf_counter()
        platform: Platform = scope["app"].state.platform
        try:
            body, extra = await self.handler(Call(scope, receive, platform))
            status, code = 200, 0
        except Exception as exc:  # noqa: BLE001 - every failure must become an envelope
            error = as_oauth_error(exc)
            body, extra, code = orjson.dumps(error.envelope()), self.error_headers(error), error.code
            status = 200 if platform.settings.error_status == "always-200" else error.status
        headers = self.fixed + always
        if extra:
            headers += extra
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        metrics.observe(self.name, code, time.perf_counter() - started)

    def error_headers(self, error: OAuthError) -> Headers:
        if error.status == 401 and self.on_401:
            return encode_headers({**self.on_401, **error.headers})
        return encode_headers(error.headers)
