"""Run the app under uvicorn (uvloop + httptools), logging text or JSON lines (``openplatform.logs``).

uvicorn's access log is off on purpose: it prints query strings, and the
documented API carries codes and tokens there (``?access_token=``); the app's
own (``web.access_log``) logs paths only. uvicorn's
proxy-headers middleware is off too: by default it believes X-Forwarded-For from
127.0.0.1, which would let anyone on the host pass an IP whitelist; the app
honours that header only from ``OPENPLATFORM_TRUSTED_PROXIES`` (``core.ip_policy``).
A request head is read up to ``web.limits.HEAD_READ_LIMIT`` bytes and no further (SPEC §9).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from openplatform import logs
from openplatform.config import Settings
from openplatform.web.access_log import AccessLog
from openplatform.web.app import create_app
from openplatform.web.limits import HEAD_READ_LIMIT, headers_too_large
from openplatform.web.metrics import shared_directory

# Collect the young generation every 20,000 net allocations instead of 700.
GC_THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path of a long-running server.

    Everything alive after start-up (modules, routes, settings: about 100,000
    objects) is moved out of the collector's sight, so full collections only
    walk what the server creates later (mostly its caches). In the benchmark's
    in-process profile this took the collector from about 60 to 2 µs per app
    token and removed full collections of 100+ ms from the tail latency.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# After refusing a request head, read and drop what the client still sends for this long, then
# close: closing at once, with its data unread, would reset the connection before it reads the 431.
LINGER_SECONDS = 2.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, reading at most ``HEAD_READ_LIMIT`` bytes of a request head.

    httptools has no limit of its own: an 8 MB header would be held in memory,
    then handed to the app. Past the limit the answer is the app's 431
    (``web.limits``, the same the app gives to smaller oversized heads), and the
    connection closes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0  # of the request head being read; -1 while a body is read
        self.refused = False

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.head_bytes >= 0:
            self.head_bytes += len(data)
            if self.head_bytes > HEAD_READ_LIMIT:
                self.refuse_head()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self.head_bytes = -1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.head_bytes = 0
        super().on_message_complete()

    def refuse_head(self) -> None:
        self.refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined request is still being answered: no room for a 431
            return
        app = self.app
        if hasattr(app, "headers_too_large"):
            status, headers, body = app.headers_too_large()
        else:  # pragma: no cover - the app is always an OpenPlatformApp
            status, headers, body = headers_too_large(always_200=False)
        lines = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *headers]:
            lines.extend([name, b": ", value, b"\r\n"])
        self.transport.write(b"".join([*lines, b"\r\n", body]))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def access_log_wanted(settings: Settings) -> bool:
    """Whether each request gets a line (``Settings.access_log``; unset: only with text logs).

    Off as well when the log level hides INFO lines: the wrapper would then only cost time.
    """
    wanted = settings.access_log
    if wanted is None:
        wanted = (settings.log_format or logs.default_format()) == "text"
    level = logging.getLevelName(settings.log_level.upper())
    return wanted and isinstance(level, int) and level <= logging.INFO


def create_served_app() -> Starlette | AccessLog:
    """The factory each uvicorn worker process calls (tests use create_app directly)."""
    settings = Settings()
    app = create_app(settings)
    tune_gc()
    return AccessLog(app) if access_log_wanted(settings) else app


def run(host: str, port: int, workers: int, log_level: str = "info", log_format: logs.LogFormat | None = None) -> None:
    """Serve until stopped; ``log_format`` None: text on a terminal, JSON otherwise (``logs.configure``)."""
    with shared_directory(workers):  # several workers: /metrics sums them (web.metrics)
        uvicorn.run(
            "openplatform.web.serve:create_served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http=BoundedHttpToolsProtocol,
            access_log=False,
            log_config=logs.configure(log_level, log_format),
            log_level=log_level.lower(),
            server_header=False,
            proxy_headers=False,
        )
