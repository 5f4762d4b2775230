"""The envelope (SPEC §2), the headers of each kind of answer (SPEC §9), what a failure becomes.

The endpoints render through ``web.kernel`` (``ok``, ``error_answer``); this module holds what
the kernel and the route modules share.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping

import orjson

from openplatform.errors import OAuthError, StorageUnavailable

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


def encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs, encoded once per endpoint rather than per request."""
    return [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()]


def encode_success(result: object) -> bytes:
    """The success envelope of SPEC §2: ``{"code": 0, "msg": "success", "result": ...}``, encoded."""
    return orjson.dumps({"code": 0, "msg": "success", "result": result})


def as_oauth_error(exc: Exception) -> OAuthError:
    """What a failure becomes: itself if an OAuthError, 50301 for a backing service, else 50001 (logged)."""
    if isinstance(exc, OAuthError):
        return exc
    if isinstance(exc, StorageUnavailable):
        log.warning("backing service unavailable: %s", exc)
        return OAuthError("temporarily_unavailable", headers={"Retry-After": "1"})
    log.exception("unexpected error")  # the detail goes to the log, never to the client
    return OAuthError("server_error")


def error_page(error: OAuthError) -> str:
    """The error as a short HTML page, for a browser (``/oauth/connect``)."""
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Request refused</title>"
        f"<h1>Request refused</h1><p>{html.escape(error.message)}</p>"
        f"<p><code>{error.code} {html.escape(error.error)}</code></p></html>"
    )
