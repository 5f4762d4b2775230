"""The partner app: entrance (signed launch) → connect → callback → pages using the tokens.

GET  /          the entrance (the app's host_url): verify the signed launch, then
                a customer launch goes to /oauth/connect, an SPE launch to /spe
GET  /callback  check the state cookie, exchange the code (the SDK keeps the tokens)
GET  /sites     the customer's sites, with the customer's user token; POST adds one
GET  /spe       the SPE's customers, with the app token
POST /webhook   install/uninstall notifications, verified; uninstall forgets the tokens
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from openplatform_client import (
    WEBHOOK_ACK,
    AsyncAppClient,
    InvalidSignature,
    OpenPlatformError,
    ReauthorizationRequired,
    ValidationError,
    WebhookEvent,
)

from . import pages
from .config import Config
from .cookies import SESSION_COOKIE, SESSION_MAX_AGE, STATE_COOKIE, STATE_MAX_AGE, CookieJar

log = logging.getLogger("partner_app")
# The user token's scopes: its own record (install_login) and its sites.
USER_SCOPE = "install_login site:read site:write"


def client_of(request: Request) -> AsyncAppClient:
    return request.app.state.client  # type: ignore[no-any-return]


def jar_of(request: Request) -> CookieJar:
    return request.app.state.jar  # type: ignore[no-any-return]


def html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers={"Referrer-Policy": "no-referrer"})


async def start_connect(request: Request, xspe: str, customer_id: str) -> Response:
    """Send the browser to /oauth/connect; the state waits in a signed cookie for the callback."""
    config: Config = request.app.state.config
    url, state = client_of(request).connect_url(
        xspe=xspe, customer_id=customer_id, redirect_uri=config.callback_url, scope=USER_SCOPE
    )
    response = RedirectResponse(url, status_code=302)
    cookie = {"state": state, "xspe": xspe, "customer_id": customer_id}
    jar_of(request).write(response, STATE_COOKIE, cookie, STATE_MAX_AGE)
    return response


async def entrance(request: Request) -> Response:
    if "signature" not in request.query_params:
        return html(pages.message_page("Partner app", "Open this app from your SPE admin portal."))
    try:
        launch = client_of(request).verify_launch(request.query_params)
    except InvalidSignature as exc:
        return html(pages.message_page("Launch refused", exc.msg), 403)
    if launch.customer_id:
        return await start_connect(request, launch.xspe, launch.customer_id)
    response = RedirectResponse("/spe", status_code=302)
    session = {"xspe": launch.xspe, "spe": True, "csrf": secrets.token_urlsafe(16)}
    jar_of(request).write(response, SESSION_COOKIE, session, SESSION_MAX_AGE)
    return response


async def callback(request: Request) -> Response:
    query, jar = request.query_params, jar_of(request)
    if "error" in query:  # RFC 6749 §4.1.2.1: the platform refused, e.g. the app was uninstalled
        return html(pages.message_page("Not connected", query.get("error_description", query["error"])), 403)
    pending = jar.read(request, STATE_COOKIE)
    if pending is None:
        return html(pages.message_page("Not connected", "The sign-in expired; open the app again."), 400)
    try:
        token = await client_of(request).exchange_code(
            query.get("code", ""), state=query.get("state"), expected_state=pending["state"],
            customer_id=pending["customer_id"], xspe=pending["xspe"],
            redirect_uri=request.app.state.config.callback_url,
        )  # fmt: skip
    except OpenPlatformError as exc:  # StateMismatch, InvalidGrantError (code used or expired)...
        return html(pages.message_page("Not connected", exc.msg), 400)
    response = RedirectResponse("/sites", status_code=303)
    session = {"customer_id": token.customer_id, "xspe": token.xspe, "csrf": secrets.token_urlsafe(16)}
    jar.write(response, SESSION_COOKIE, session, SESSION_MAX_AGE)
    jar.clear(response, STATE_COOKIE)
    return response


def session_of(request: Request, spe: bool = False) -> dict[str, Any] | None:
    session = jar_of(request).read(request, SESSION_COOKIE)
    if session is None or bool(session.get("spe")) != spe:
        return None
    return session


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < int(raw) < 100_000 else 1


async def render_sites(request: Request, session: dict[str, Any], error: str | None = None) -> Response:
    me = client_of(request).as_customer(session["customer_id"])
    customer = await me.get()
    sites = await me.sites.list(page=page_number(request))
    return html(pages.sites_page(customer, sites, session["csrf"], error), 400 if error else 200)


async def sites(request: Request) -> Response:
    session = session_of(request)
    if session is None:
        return html(pages.message_page("Signed out", "Open this app from your SPE admin portal."), 401)
    try:
        if request.method == "POST":
            return await add_site(request, session)
        return await render_sites(request, session)
    except ReauthorizationRequired:
        # The refresh was refused (uninstalled, revoked, theft detected): connect again.
        return await start_connect(request, session["xspe"], session["customer_id"])


async def add_site(request: Request, session: dict[str, Any]) -> Response:
    form = await request.form()
    if not secrets.compare_digest(str(form.get("csrf", "")), session["csrf"]):
        return html(pages.message_page("Refused", "The form expired; reload the page."), 403)
    name, domain = str(form.get("name", "")).strip(), str(form.get("domain", "")).strip()
    try:
        await client_of(request).as_customer(session["customer_id"]).sites.create(name, domain)
    except ValidationError as exc:
        return await render_sites(request, session, f"{exc.field or 'input'}: {exc.msg}")
    return RedirectResponse("/sites", status_code=303)  # post/redirect/get


async def spe(request: Request) -> Response:
    session = session_of(request, spe=True)
    if session is None:
        return html(pages.message_page("Signed out", "Open this app from your SPE admin portal."), 401)
    customers = await client_of(request).customers.list(xspe=session["xspe"], page=page_number(request))
    return html(pages.spe_page(session["xspe"], customers))


async def webhook(request: Request) -> Response:
    client = client_of(request)
    try:
        event = client.verify_webhook(await request.body(), request.headers)
    except InvalidSignature as exc:
        return JSONResponse({"code": exc.code, "msg": exc.msg}, status_code=400)
    if event.uninstalled and event.customer_id:
        await client.forget(event.customer_id)
    log.info("%s", webhook_line(event))
    return JSONResponse(WEBHOOK_ACK)


def webhook_line(event: WebhookEvent) -> str:
    """What the app's terminal shows for a notification (the README quotes it)."""
    kind = "uninstall" if event.uninstalled else "install"
    whom = f"customer {event.customer_id} of SPE {event.xspe}" if event.customer_id else f"the whole SPE {event.xspe}"
    return f"webhook: {kind} (type {event.type}) for {whom}, event {event.event_id}"


def create_app(config: Config) -> Starlette:
    client = AsyncAppClient(config.app_id, config.app_secret, config.openplatform_url)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = Starlette(
        routes=[
            Route("/", entrance, methods=["GET"]),
            Route("/callback", callback, methods=["GET"]),
            Route("/sites", sites, methods=["GET", "POST"]),
            Route("/spe", spe, methods=["GET"]),
            Route("/webhook", webhook, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.client = client
    app.state.jar = CookieJar(config.app_secret, secure=config.base_url.startswith("https://"))
    return app
