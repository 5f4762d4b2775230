"""Sign-in at /login, sign-out, and / sending each role to its home (SPEC §4).

The sign-in form has no session yet, so its CSRF token is a double-submit
cookie: a random value set with the form and required back in it. A successful
sign-in always starts a new session (no fixation) and ends the one the browser
had, if any.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from openplatform.security import new_token
from openplatform.services.accounts import SESSION_SECONDS, SignInRefused
from openplatform.web.ui.pages import (
    HOME,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Ctx,
    page,
    redirect,
    render,
    safe_next,
    services,
)
from openplatform.web.ui.templating import security_headers


async def root(request: Request) -> Response:
    accounts, _ = services(request)
    session = await accounts.session(request.cookies.get(SESSION_COOKIE))
    target = HOME.get(session.user.role, "/login") if session else "/login"
    return security_headers(RedirectResponse(target, status_code=303))


def _login_form(ctx: Ctx, status: int = 200, error: str = "", email: str = "") -> Response:
    token = ctx.request.cookies.get(LOGIN_COOKIE, "")
    if len(token) != 43:  # new_token() length: anything else was not set by us
        token = new_token()
        ctx.set_cookie(LOGIN_COOKIE, token, max_age=3600, samesite="strict")
    next_path = ctx.value("next") or ctx.request.query_params.get("next", "")
    return render(ctx, "login.html", status, login_csrf=token, error=error, email=email, next_path=next_path)


@page(public=True)
async def login(ctx: Ctx) -> Response:
    if ctx.request.method == "GET":
        if ctx.session is not None:
            return redirect(ctx, HOME.get(ctx.session.user.role, "/"))
        return _login_form(ctx)
    email = ctx.value("email").strip()
    try:
        new = await ctx.accounts.sign_in(email, ctx.value("password"), ctx.ip)
    except SignInRefused as refused:
        return _login_form(ctx, 200, refused.message, email)
    if ctx.session is not None:
        await ctx.accounts.store.delete_session(ctx.session.digest)
    ctx.set_cookie(SESSION_COOKIE, new.cookie_value, max_age=SESSION_SECONDS)
    ctx.set_cookie(LOGIN_COOKIE, "", max_age=0, samesite="strict")
    return redirect(ctx, safe_next(ctx.value("next"), new.user))


@page()
async def logout(ctx: Ctx) -> Response:
    assert ctx.session is not None
    await ctx.accounts.sign_out(ctx.session)
    ctx.set_cookie(SESSION_COOKIE, "", max_age=0)
    return redirect(ctx, "/login?notice=signed-out")


routes = [
    Route("/", root, methods=["GET"], name="ui.root"),
    Route("/login", login, methods=["GET", "POST"], name="ui.login"),
    Route("/logout", logout, methods=["POST"], name="ui.logout"),
]
