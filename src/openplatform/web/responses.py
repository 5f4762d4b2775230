"""The envelope (SPEC §2) and the rendering of errors, in one place."""

from __future__ import annotations

import html
import logging
from typing import Any

import orjson
from starlette.responses import Response

from openplatform.errors import ERRORS, OAuthError, StorageUnavailable

log = logging.getLogger("openplatform.web")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # token answers (RFC 6749 §5.1)
# Open API answers (SPEC §9): Cache-Control alone — each header is measurable work on the hot GET
# (docs/benchmarks.md), and HTTP/1.0 caches, which read only Pragma, do not apply to bearer requests.
API_NO_STORE = {"Cache-Control": "no-store"}
# SPEC §9: every HTML page carries these (the management pages have their own CSP: ui/templating.py).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
# RFC 7235 §4.1, SPEC §9: a 401 from a token endpoint names the scheme the client authenticates with.
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="openplatform"'}
JSON = "application/json"


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs, encoded once per endpoint rather than per request."""
    return [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=JSON)


def success(result: Any, headers: dict[str, str] | None = None) -> Response:
    return json_response({"code": 0, "msg": "success", "result": result}, headers=headers)


def as_oauth_error(exc: Exception) -> OAuthError:
    if isinstance(exc, OAuthError):
        return exc
    if isinstance(exc, StorageUnavailable):
        log.warning("backing service unavailable: %s", exc)
        return OAuthError("temporarily_unavailable", headers={"Retry-After": "1"})
    log.exception("unexpected error")  # the detail goes to the log, never to the client
    return OAuthError("server_error")


def error_response(
    exc: OAuthError, always_200: bool, headers: dict[str, str] | None = None, as_html: bool = False
) -> Response:
    status = 200 if always_200 else exc.status
    merged = {**(headers or {}), **exc.headers}
    if as_html:
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Request refused</title>"
            f"<h1>Request refused</h1><p>{html.escape(exc.message)}</p>"
            f"<p><code>{exc.code} {html.escape(exc.error)}</code></p></html>"
        )
        merged = {**merged, **PAGE_HEADERS}
        return Response(page, status_code=status, headers=merged, media_type="text/html; charset=utf-8")
    return json_response(exc.envelope(), status, merged)


def not_found_envelope() -> dict[str, object]:
    return OAuthError("not_found", "No such endpoint.").envelope()


__all__ = [
    "ERRORS",
    "error_response",
    "json_response",
    "success",
    "NO_STORE",
    "API_NO_STORE",
    "PAGE_HEADERS",
    "BASIC_CHALLENGE",
    "as_oauth_error",
]
