"""The management web UI (SPEC §4): server-rendered pages, split by area."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openplatform.web.ui import admin, auth, developer, portal
from openplatform.web.ui.pages import is_screen_request, screen_error

__all__ = ["is_screen_request", "routes", "screen_error"]

STATIC = Path(__file__).resolve().parent.parent / "static"


class _Nosniff:
    """Static files with the headers the pages have (no MIME sniffing, no framing)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-content-type-options", b"nosniff"),
                    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
                    (b"cache-control", b"public, max-age=3600"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


_STATIC_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "public, max-age=3600",  # as /static (_Nosniff)
}


FAVICON = (STATIC / "favicon.ico").read_bytes()  # 217 bytes: kept in memory


async def favicon(_request: Request) -> Response:
    """``/favicon.ico``, which browsers ask for on their own; the pages link ``/static/favicon.svg``."""
    return Response(FAVICON, media_type="image/x-icon", headers=_STATIC_HEADERS)


routes: list[BaseRoute] = [
    *auth.routes,
    *developer.routes,
    *portal.routes,
    *admin.routes,
    Route("/favicon.ico", favicon, methods=["GET"], name="favicon"),
    Mount("/static", app=_Nosniff(StaticFiles(directory=STATIC)), name="static"),
]
