"""The frame every management page runs in: session, role, CSRF, rendering, headers.

A handler is wrapped by ``page(*roles)``. Before it runs, the session cookie is
resolved (server-side, by keyed digest), the role is checked, and a POST must
carry the session's CSRF token in its form (and, when the browser sends one, an
``Origin`` of this host) or it is refused with 403. Every answer carries the
security headers of SPEC §4: a CSP without inline script, ``frame-ancestors
'none'``, ``Referrer-Policy: no-referrer``, ``nosniff``, and ``no-store`` because
pages show private data.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from openplatform.core.redirect_uri import ascii_url
from openplatform.errors import OAuthError, StorageUnavailable
from openplatform.records import User, WebSession
from openplatform.security import constant_time_equals
from openplatform.services.accounts import Accounts, build_accounts
from openplatform.services.console import Console, FormErrors
from openplatform.services.validation import NotFound, ValidationError
from openplatform.web.kernel import platform_of, read_body, request_ip
from openplatform.web.ui.templating import NOTICES, env, security_headers

log = logging.getLogger("openplatform.ui")

SESSION_COOKIE = "op_session"
LOGIN_COOKIE = "op_login"  # double-submit CSRF token of the sign-in form (no session yet)
# Over https these go as "__Host-op_session" / "__Host-op_login" (SPEC §9): Secure, Path=/, no Domain, so
# no other host (a sibling subdomain, a plain-http page) can set them. Read and write them by these names
# through read_cookie() / set_cookie(), which add the prefix.
HOST_COOKIES = frozenset({SESSION_COOKIE, LOGIN_COOKIE})
HOST_PREFIX = "__Host-"
MAX_FORM_BYTES = 65536
HOME = {"admin": "/admin", "developer": "/console", "spe-admin": "/portal"}


class Forbidden(Exception):
    pass


@dataclass
class Ctx:
    """One management request: who asks, their form, and the services they act through."""

    request: Request
    session: WebSession | None
    accounts: Accounts
    console: Console
    form: dict[str, list[str]] = field(default_factory=dict)
    cookies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def user(self) -> User:
        assert self.session is not None
        return self.session.user

    @property
    def ip(self) -> str:
        return request_ip(self.request)

    def value(self, name: str, default: str = "") -> str:
        """The first value of a form field (stripped of nothing: validation does that)."""
        return (self.form.get(name) or [default])[0]

    def param(self, name: str) -> str:
        return self.request.path_params[name]  # type: ignore[no-any-return]

    def set_cookie(self, name: str, value: str, **options: Any) -> None:
        self.cookies.append((name, value, options))


def services(request: Request) -> tuple[Accounts, Console]:
    admin = request.app.state.admin
    store = platform_of(request).store
    changed = getattr(store, "apply", lambda kind, key: None)  # the CachedStore of this process
    console = Console(admin, admin.stores.console, admin.stores.directory, changed)
    platform = platform_of(request)
    accounts = build_accounts(admin.stores, admin.keyring, platform.limiter, platform.settings.session_idle_seconds)
    return accounts, console


def is_https(request: Request) -> bool:
    """Served over https: seen directly, or declared by an https ISSUER (behind a TLS-terminating proxy)."""
    return request.url.scheme == "https" or platform_of(request).settings.issuer.startswith("https://")


def cookie_name(request: Request, name: str) -> str:
    return HOST_PREFIX + name if name in HOST_COOKIES and is_https(request) else name


def read_cookie(request: Request, name: str) -> str | None:
    return request.cookies.get(cookie_name(request, name))


def origin_of(url: str) -> str:
    """The origin of a (valid) URL, as CSP wants it: the host as IDNA A-labels (SPEC §9)."""
    parts = urlsplit(ascii_url(url))
    return f"{parts.scheme}://{parts.netloc}"


def render(ctx: Ctx | Request, template: str, status: int = 200, form_origins: Iterable[str] = (),
           **values: Any) -> Response:  # fmt: skip
    request = ctx.request if isinstance(ctx, Ctx) else ctx
    session = ctx.session if isinstance(ctx, Ctx) else None
    notice = NOTICES.get(request.query_params.get("notice", ""))
    html = env.get_template(template).render(
        user=session.user if session else None, csrf_token=session.csrf_token if session else "",
        path=request.url.path, notice=notice, home=HOME, **values,
    )  # fmt: skip
    response = HTMLResponse(html, status_code=status)
    if isinstance(ctx, Ctx):
        for name, value, options in ctx.cookies:
            set_cookie(request, response, name, value, **options)
    return security_headers(response, form_origins)


def set_cookie(request: Request, response: Response, name: str, value: str, **options: Any) -> None:
    options.setdefault("httponly", True)
    options.setdefault("samesite", "lax")
    options.setdefault("path", "/")
    if name in HOST_COOKIES:
        options["path"] = "/"
    response.set_cookie(cookie_name(request, name), value, secure=is_https(request), **options)


def redirect(ctx: Ctx, url: str) -> Response:
    response = RedirectResponse(url, status_code=303)
    for name, value, options in ctx.cookies:
        set_cookie(ctx.request, response, name, value, **options)
    return security_headers(response)


@dataclass(frozen=True)
class Confirm:
    """A destructive action's confirmation page (confirm.html): what will happen, then one POST.

    A screen links its button to the action's URL with GET, which answers this page; the
    page's form POSTs (with the CSRF token) to ``action``; ``cancel`` goes back unchanged.
    """

    title: str
    lines: tuple[str, ...]
    warning: str
    action: str
    fields: dict[str, str]
    button: str
    cancel: str


def confirm_page(ctx: Ctx, confirm: Confirm) -> Response:
    return render(ctx, "confirm.html", confirm=confirm)


def error_page(request: Request, session: WebSession | None, status: int, title: str, message: str) -> Response:
    ctx = Ctx(request, session, *services(request))
    return render(ctx, "error.html", status, title=title, message=message)


SCREEN_PREFIXES = ("/console", "/portal", "/admin", "/login", "/logout", "/account")
# Paths for programs: the APIs, the OpenAPI document, metrics, the probes, well-known URIs (RFC 8615).
MACHINE_PREFIXES = ("/api", "/oauth", "/openapi.json", "/metrics", "/healthz", "/readyz", "/.well-known")
NO_SUCH_PAGE = "There is no page at this address: check the link you followed."


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def is_screen_request(request: Request) -> bool:
    """Whether a 404 or 405 is answered with the screens' styled page rather than the envelope (SPEC §2).

    Under the screens' paths: a client that takes HTML (a browser, or one that names no preference);
    only one that asks for JSON and not for HTML gets the envelope. Anywhere else but the machine
    paths (``MACHINE_PREFIXES``, which always keep the envelope): a client that asks for text/html,
    such as a browser at a mistyped ``/logn``.
    """
    path = request.url.path
    accept = request.headers.get("accept", "").lower()
    if _under(path, SCREEN_PREFIXES):
        return "text/html" in accept or "application/json" not in accept
    return "text/html" in accept and not _under(path, MACHINE_PREFIXES)


async def screen_error(request: Request, status: int, headers: dict[str, str] | None = None) -> Response:
    """The styled page of a 404 or 405 (no such page, or a method it does not take) under the screens.

    The page has the usual layout: signed-in people see their menu and a link to their start page,
    others a link to sign in. A 405 keeps its ``Allow`` header.
    """
    session = None
    try:
        session = await services(request)[0].session(read_cookie(request, SESSION_COOKIE))
    except Exception:  # the database is away: the page still renders, signed out
        log.warning("session unavailable for the error page", exc_info=True)
    if status == 405:
        title = "Not possible here"
        message = f"This address does not take {request.method} requests. Use the links and buttons of the pages."
    else:
        title, message = "Page not found", NO_SUCH_PAGE
    response = error_page(request, session, status, title, message)
    response.headers.update({k: v for k, v in (headers or {}).items() if k.lower() == "allow"})
    return response


async def read_form(request: Request) -> dict[str, list[str]]:
    body = await read_body(request, MAX_FORM_BYTES)
    form: dict[str, list[str]] = {}
    pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=500)
    refuse_nul(pairs)
    for key, value in pairs:
        form.setdefault(key, []).append(value)
    return form


def refuse_nul(*pairs: Iterable[tuple[str, object]]) -> None:
    """ValueError (a 400 page) for a NUL in any name or value of a page's query, path or form.

    A page's fields are looked up as they come (ids) before any validation, and PostgreSQL text
    cannot hold NUL: its driver's error was a 500 (``%00`` as a form's app_id, found by the fuzz
    of tests/web/test_fuzz_openapi.py). Other control characters stay: a textarea's line breaks
    are input, and services.validation refuses them where a name or text cannot have them.
    """
    for name, value in itertools.chain(*pairs):
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            raise ValueError("a NUL character in the request")


def check_origin(request: Request) -> None:
    """A cross-site POST is refused even before its token is looked at (defence in depth)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise Forbidden("This form was sent from another site.")


def check_csrf(ctx: Ctx, public: bool) -> None:
    sent = ctx.value("csrf_token")
    expected = read_cookie(ctx.request, LOGIN_COOKIE) or "" if public else (
        ctx.session.csrf_token if ctx.session else ""
    )  # fmt: skip
    if not sent or not expected or not constant_time_equals(sent, expected):
        raise Forbidden("The form's security token is missing or out of date. Reload the page and try again.")


Handler = Callable[[Ctx], Awaitable[Response]]
CSRF_REFUSED = "The form was refused"


async def _prepare(request: Request, roles: tuple[str, ...], public: bool) -> Ctx | Response:
    accounts, console = services(request)
    session = await accounts.session(read_cookie(request, SESSION_COOKIE))
    request.state.session = session  # for the error page, should a check below refuse the request
    ctx = Ctx(request, session, accounts, console)
    refuse_nul(request.query_params.multi_items(), request.path_params.items())
    if request.method == "POST":
        ctx.form = await read_form(request)
        check_origin(request)
        check_csrf(ctx, public)
    if public:
        return ctx
    if session is None:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    if roles and session.user.role not in roles:
        raise Forbidden("Your account cannot open this page.")
    return ctx


def page(*roles: str, public: bool = False) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    def decorate(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @wraps(handler)
        async def wrapped(request: Request) -> Response:
            try:
                prepared = await _prepare(request, roles, public)
                if isinstance(prepared, Response):
                    return security_headers(prepared)
                return await handler(prepared)
            except Exception as exc:
                return _refusal(request, exc)

        return wrapped

    return decorate


def _refusal(request: Request, exc: Exception) -> Response:
    """The page for a refused or failed request; the detail of a failure goes to the log only."""
    session = getattr(request.state, "session", None)
    if isinstance(exc, Forbidden):
        title = CSRF_REFUSED if "token" in str(exc) else "Not allowed"
        return error_page(request, session, 403, title, str(exc))
    if isinstance(exc, NotFound):
        return error_page(request, session, 404, "Not found", "There is nothing here, or it is not yours to see.")
    if isinstance(exc, ValidationError):
        return error_page(request, session, 400, "Not possible", _sentence(exc))
    if isinstance(exc, FormErrors):  # a form its page does not show again (a status button): say what was wrong
        message = "; ".join(f"{name} {error}" for name, error in exc.errors.items())
        return error_page(request, session, 400, "Not possible", message[:1].upper() + message[1:] + ".")
    if isinstance(exc, OAuthError | UnicodeDecodeError | ValueError):
        log.info("unreadable management request: %s", exc)  # the client's doing: no traceback to fill the log
        return error_page(request, session, 400, "Bad request", "The request could not be read.")
    if isinstance(exc, StorageUnavailable):
        log.warning("backing service unavailable: %s", exc)
        return error_page(request, None, 503, "Unavailable", "The database cannot be reached. Retry in a moment.")
    log.exception("management page failed")
    return error_page(request, None, 500, "Something went wrong", "The server hit an unexpected error.")


def page_number(ctx: Ctx) -> int:
    raw = ctx.request.query_params.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) < 7 and int(raw) > 0 else 1


def safe_next(target: str, user: User) -> str:
    """Only a local path may be the place to go after sign-in (no open redirect)."""
    local = target.startswith("/") and not target.startswith("//") and target != "/login"
    if local and "\\" not in target and all(" " < ch < "\x7f" for ch in target):
        return target
    return HOME.get(user.role, "/")


def _sentence(exc: ValidationError) -> str:
    return exc.message[:1].upper() + exc.message[1:] + ("" if exc.message.endswith(".") else ".")
