"""Glue between Starlette and the core: bounded body reading, client IP, errors.

Every endpoint is wrapped by ``endpoint()``: any OAuthError becomes the
envelope with its status (or 200 under ``error_status=always-200``), a backing
service failure becomes 50301, anything else 50001 with the detail only in the log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Scope

from openplatform.core.context import Platform
from openplatform.errors import OAuthError
from openplatform.web import lean, metrics
from openplatform.web.responses import as_oauth_error, encode_headers, error_response

Handler = Callable[[Request], Awaitable[Response]]

# No identifier contains a control character, and PostgreSQL text cannot even
# hold NUL: such a path segment must be a 40001, not a database error (50001).
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def platform_of(request: Request) -> Platform:
    return request.app.state.platform  # type: ignore[no-any-return]


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):  # "²" is a digit to isdigit(), not to int()
            raise OAuthError("invalid_request", "Content-Length is malformed.")
        if int(declared) > limit:
            raise OAuthError("invalid_request", f"The request body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise OAuthError("invalid_request", f"The request body is larger than {limit} bytes.")
            chunks.append(chunk)
    except ClientDisconnect as exc:  # as web.lean says it: not a server error (nor a traceback in the log)
        raise OAuthError("invalid_request", "The client went away before sending the whole body.") from exc
    return b"".join(chunks)


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


def caller_ip(request: Request, platform: Platform) -> str:
    return lean.caller_ip(request.scope, request.headers.getlist("x-forwarded-for"), platform)


def check_path_params(request: Request) -> None:
    for name in request.path_params:
        path_param(request.scope, name)


def path_param(scope: Scope, name: str) -> str:
    value: str = scope["path_params"][name]
    if _CONTROL_CHARS.search(value):
        raise OAuthError("invalid_request", f"The {name} in the path contains control characters.", field=name)
    return value


def set_headers(response: Response, fixed: list[tuple[bytes, bytes]]) -> None:
    """Like ``response.headers.update()``, with the names encoded once per endpoint, not per request."""
    names = {key for key, _value in fixed}
    response.raw_headers[:] = [pair for pair in response.raw_headers if pair[0] not in names] + fixed


def endpoint(
    name: str, headers: dict[str, str] | None = None, html_errors: bool = False
) -> Callable[[Handler], Handler]:
    fixed = encode_headers(headers or {})

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapped(request: Request) -> Response:
            started = time.perf_counter()
            try:
                check_path_params(request)
                response = await handler(request)
                code = 0
            except Exception as exc:  # noqa: BLE001 - every failure must become an envelope
                error = as_oauth_error(exc)
                always_200 = platform_of(request).settings.error_status == "always-200"
                wants_html = html_errors and "text/html" in request.headers.get("accept", "")
                response = error_response(error, always_200, headers, wants_html)
                code = error.code
            if fixed:
                set_headers(response, fixed)
            metrics.observe(name, code, time.perf_counter() - started)
            return response

        return wrapped

    return decorate
