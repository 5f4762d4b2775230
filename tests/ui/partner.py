"""A tiny third-party app for the browser tests, served by uvicorn on 127.0.0.1.

It does what SPEC §3 and the documentation ask of an app, and nothing more:
its entrance verifies the signed launch with its secret, sends the browser to
``/oauth/connect``, and its callback exchanges the code (with the secret a
developer copied from the console) and shows the customer fetched from
``/api/spe/customer/{id}``.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from html import escape
from urllib.parse import urlencode

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from openplatform.core.signing import verify_launch
from tests.conftest import free_port


class PartnerApp:
    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.app_id = ""
        self.secret = ""  # pasted by the test from the developer console
        self.launches: dict[str, dict[str, str]] = {}  # state -> verified launch parameters
        self.asgi = Starlette(routes=[Route("/", self.entrance), Route("/callback", self.callback)])

    async def entrance(self, request: Request) -> Response:
        params = dict(request.query_params)
        if not verify_launch(self.secret, params) or params.get("app_id") != self.app_id:
            return HTMLResponse("<h1>Launch refused: bad signature</h1>", status_code=403)
        state = secrets.token_urlsafe(16)
        self.launches[state] = params
        query = urlencode({
            "app_id": self.app_id, "redirect_uri": f"{self.base}/callback", "response_type": "code",
            "scope": "install_login", "xspe": params["xspe"], "state": state, "customer_id": params["customer_id"],
        })  # fmt: skip
        return RedirectResponse(f"{self.platform}/oauth/connect?{query}", status_code=303)

    async def callback(self, request: Request) -> Response:
        launch = self.launches.pop(request.query_params.get("state", ""), None)
        if launch is None or "code" not in request.query_params:
            return HTMLResponse("<h1>Unknown state or no code</h1>", status_code=400)
        async with httpx.AsyncClient(base_url=self.platform, timeout=10) as client:
            exchanged = await client.post("/oauth/access_token", data={
                "app_id": self.app_id, "secret": self.secret, "code": request.query_params["code"],
                "grant_type": "authorization_code",
            })  # fmt: skip
            token = exchanged.json()["result"]["access_token"]
            fetched = await client.get(f"/api/spe/customer/{launch['customer_id']}", params={"access_token": token})
        customer = fetched.json()["result"]
        return HTMLResponse(
            f"<!doctype html><title>Partner app</title><h1>Hello, {escape(customer['name'])}</h1>"
            f"<p>customer_id <code id='customer-id'>{escape(customer['customer_id'])}</code>, "
            f"xspe <code id='xspe'>{escape(customer['xspe'])}</code></p>"
        )


@contextlib.contextmanager
def serving(asgi: Starlette, port: int) -> Iterator[None]:
    """Run an ASGI app under uvicorn in a thread on 127.0.0.1:port; stopped on exit."""
    server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        assert time.time() < deadline, "the test app did not start"
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
