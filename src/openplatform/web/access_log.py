"""One log line per HTTP request: method, path, status, milliseconds.

``POST /oauth/credit/token 200 1.9 ms`` on the ``openplatform.access`` logger, at
INFO. The path is the request's path as sent, **without** its query string: the
documented API carries codes and tokens there (``?access_token=``, SPEC §2.5), so
neither the query, the body nor any header (``Authorization``) is ever read
here. The time runs from the request reaching the app to the app returning,
that is, after the last byte of the answer was handed to the server.

``openplatform serve`` wraps the app in ``AccessLog`` when ``Settings.access_log``
says so (by default with text logs only: the line costs a measurable share of
a token grant's CPU, see docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openplatform.logs import ACCESS_LOGGER

# Longer paths are cut here (a request head may hold up to 16 KiB of path).
MAX_LOGGED_PATH = 200

_LOGGER = logging.getLogger(ACCESS_LOGGER)


def logged_path(scope: Scope) -> str:
    """The request's path as the client wrote it (percent-encoded, no query), made safe for a log line.

    ``raw_path`` holds no query under uvicorn (ASGI spec); ``path`` (decoded) is the fallback.
    """
    raw = scope.get("raw_path")
    path: str = raw.decode("ascii", "backslashreplace") if raw else scope.get("root_path", "") + scope["path"]
    path = path.split("?", 1)[0]  # a server that left the query in raw_path still logs none
    if not path.isprintable():
        path = path.encode("unicode_escape").decode("ascii")
    return path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "…"


class AccessLog:
    """ASGI middleware writing ``METHOD PATH STATUS MS ms`` for each HTTP request.

    Other attributes (``refusal``, ``state``…) are the wrapped app's, so
    the server's protocol (``web.serve``) sees the app it expects. A request the
    app fails on without answering is logged as 500, as uvicorn then answers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            elapsed_ms = round((perf_counter() - started) * 1000, 1)
            _LOGGER.info("%s %s %d %.1f ms", scope["method"], logged_path(scope), status, elapsed_ms)
