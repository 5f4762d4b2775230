"""Sign-in at /login, sign-out, one's own password, and / sending each role to its home (SPEC §4, §9).

The sign-in form has no session yet, so its CSRF token is a double-submit
cookie: a random value set with the form and required back in it. Each POST to
/login spends one of the client IP's ``login`` budget (429 with Retry-After once
spent). A successful sign-in always starts a new session (no fixation) and ends
the one the browser had, if any; so does a password change at /account/password,
which ends every other session of the user too.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from openplatform.security import new_token
from openplatform.services.accounts import LOGIN, SESSION_SECONDS, SignInRefused, check_password
from openplatform.services.console import FormErrors, validate
from openplatform.services.validation import ValidationError
from openplatform.web.ui.pages import (
    HOME,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Ctx,
    page,
    read_cookie,
    redirect,
    render,
    safe_next,
    services,
)
from openplatform.web.ui.templating import security_headers


async def root(request: Request) -> Response:
    accounts, _ = services(request)
    session = await accounts.session(read_cookie(request, SESSION_COOKIE))
    target = HOME.get(session.user.role, "/login") if session else "/login"
    return security_headers(RedirectResponse(target, status_code=303))


def _login_form(ctx: Ctx, status: int = 200, error: str = "", email: str = "") -> Response:
    token = read_cookie(ctx.request, LOGIN_COOKIE) or ""
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
    if wait := await ctx.accounts.limiter.take(LOGIN, ctx.ip):
        minutes = -(-wait // 60)  # the same wait as Retry-After, in words
        later = f"{wait} second{'s' if wait != 1 else ''}" if wait < 60 else f"{minutes} minutes"
        message = f"Too many sign-in attempts from your address. Try again in {later}."
        response = _login_form(ctx, 429, message, email)
        response.headers["Retry-After"] = str(wait)
        return response
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


@page()
async def account_password(ctx: Ctx) -> Response:
    """Change one's own password: the current one, and the new one twice."""
    assert ctx.session is not None
    errors: dict[str, str] = {}
    if ctx.request.method == "POST":
        new, again = ctx.value("new_password"), ctx.value("new_password_again")
        try:
            validate({
                "new_password": lambda: check_password(new),
                "new_password_again": lambda: _same(new, again),
            })  # fmt: skip
            fresh = await ctx.accounts.change_password(ctx.session, ctx.value("current_password"), new, ctx.ip)
        except FormErrors as exc:
            errors = exc.errors
        except ValidationError as exc:
            errors = {exc.field: exc.message}
        else:
            ctx.set_cookie(SESSION_COOKIE, fresh.cookie_value, max_age=SESSION_SECONDS)
            return redirect(ctx, "/account/password?notice=password-changed")
    return render(ctx, "account/password.html", 400 if errors else 200, errors=errors)


def _same(new: str, again: str) -> str:
    if new != again:
        raise ValidationError("new_password_again", "the two new passwords differ")
    return again


routes = [
    Route("/", root, methods=["GET"], name="ui.root"),
    Route("/login", login, methods=["GET", "POST"], name="ui.login"),
    Route("/logout", logout, methods=["POST"], name="ui.logout"),
    Route("/account/password", account_password, methods=["GET", "POST"], name="ui.password"),
]
