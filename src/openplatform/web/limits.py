"""SPEC §9: request headers larger than 16 KiB in total are answered 431 with the envelope.

The size of a request's headers is what their lines take on the wire: name,
``": "``, value and CRLF (4 bytes per line besides name and value). The app
checks it at its ASGI entry (``web.app.OpenPlatformApp``), before any route, so
every path answers the same way whatever server runs it. ``openplatform serve``
also stops reading a request head past ``HEAD_READ_LIMIT`` bytes (request line
included) and gives the same answer (``web.serve.BoundedHttpToolsProtocol``):
without that, uvicorn would hold a header of any size in memory first.
"""

from __future__ import annotations

import orjson

from openplatform.errors import OAuthError

MAX_HEADER_BYTES = 16 * 1024
# What the server reads of one request head (request line and headers) before it gives up on it.
HEAD_READ_LIMIT = 2 * MAX_HEADER_BYTES

Headers = list[tuple[bytes, bytes]]


def header_bytes(headers: Headers) -> int:
    size = 4 * len(headers)
    for name, value in headers:
        size += len(name) + len(value)
    return size


def refusal(error: OAuthError, always_200: bool) -> tuple[int, Headers, bytes]:
    """Status, headers and body of an answer that ends the connection: an oversized request head
    (431 / 43101) or one that is not HTTP/1.1 at all (400 / 40001), written by the server itself
    (``web.serve``) or by the app before any route."""
    body = orjson.dumps(error.envelope())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),
    ]
    return 200 if always_200 else error.status, headers, body
