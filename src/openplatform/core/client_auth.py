"""App (client) authentication, RFC 6749 §2.3.1: app_id + secret in the body or Basic.

SPEC §9: every failure — unknown app_id, wrong or missing secret, suspended
app — answers ``40101 invalid_client`` with the same sentence, after the same
work: an unknown app_id is checked against a dummy secret hash (and looked up
in the cache of missing apps), so neither the answer nor its timing tells
whether an app exists. Only the per-IP limit and the bad-secret lock-out of
the (IP, app_id) pair come first; the IP whitelist and the app's own request
budget come after the secret is verified, so nobody without the secret can
spend an app's budget or learn its whitelist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Protocol

from openplatform import events
from openplatform.core.context import Platform
from openplatform.core.ip_policy import enforce_whitelist
from openplatform.core.requests import TokenRequest
from openplatform.core.store import AppStorage, AuditLog
from openplatform.errors import OAuthError
from openplatform.models import App, AppSecret
from openplatform.security import constant_time_equals

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="openplatform"'}
FAILED = "Client authentication failed: check app_id and secret, and that the app is active."
# Compared against when the app_id is unknown, so that case costs what a wrong secret costs.
_DUMMY_HASH = "0" * 64


def credentials(request: TokenRequest) -> tuple[str, str | None]:
    """app_id and secret, from the body (``app_id``/``secret``, or RFC 6749's ``client_id``/
    ``client_secret``) or Basic auth, but not conflicting ones."""
    params = request.params
    if "client_id" in params or "client_secret" in params:
        app_id = _one_of(params, "app_id", "client_id")
        secret = _one_of(params, "secret", "client_secret")
    else:  # the documented names alone, the usual request: nothing to reconcile (two calls fewer)
        app_id, secret = params.get("app_id"), params.get("secret")
    if request.basic_auth is not None:
        basic_id, basic_secret = request.basic_auth
        if (app_id and app_id != basic_id) or secret:
            raise OAuthError("invalid_request", "Send app credentials once: in the body or as Basic auth.")
        app_id, secret = basic_id, basic_secret
    if not app_id:
        raise OAuthError("invalid_request", "The app_id parameter is required.", field="app_id")
    return app_id, secret or None


def _one_of(params: Mapping[str, str], name: str, standard: str) -> str | None:
    """The documented parameter or its RFC 6749 name (a standard client sends that): one value."""
    value, other = params.get(name), params.get(standard)
    if value and other and value != other:
        raise OAuthError("invalid_request", f"{name} and {standard} differ.", field=name)
    return value or other


def secret_matches(platform: Platform[object], app: App | None, app_id: str, secret: str) -> bool:
    """Constant-time check against every live secret of ``app`` (a dummy one when it is None).

    A verifier computed under an old server key (SPEC §10: before ``openplatform db
    reencrypt`` re-keyed it) is tried only when the current key's misses; an unknown
    app costs the same tries, so the timing still does not tell whether it exists.
    """
    keyring = platform.keyring
    presented = keyring.secret_hash(app_id, secret)
    if app is None:
        constant_time_equals(presented, _DUMMY_HASH)
        for old in keyring.old:
            constant_time_equals(old.secret_hash(app_id, secret), _DUMMY_HASH)
        return False
    now = platform.clock()
    matched = _matches_any(presented, app.secrets, now)
    for old in keyring.old if not matched else ():
        matched = _matches_any(old.secret_hash(app_id, secret), app.secrets, now)
        if matched:
            break
    return matched


def _matches_any(presented: str, secrets: tuple[AppSecret, ...], now: float) -> bool:
    """Whether ``presented`` is the verifier of one of the secrets live at ``now``."""
    matched = False
    for stored in secrets:  # every live secret, so the timing does not tell which matched
        if stored.expires_at is None or stored.expires_at > now:
            matched |= constant_time_equals(presented, stored.secret_hash)
    return matched


class ClientStorage(AppStorage, AuditLog, Protocol):
    """What client authentication reads (the app) and writes (the audit of a failure)."""


class Client(NamedTuple):
    """Who a token request says it comes from. ``verified``: its secret was checked; otherwise
    (a documented refresh without a secret) the grant's own credential must vouch for it.
    (A named tuple: immutable, and cheaper to build than a frozen dataclass.)"""

    app_id: str
    app: App | None
    verified: bool


async def identify(
    platform: Platform[ClientStorage],
    request: TokenRequest,
    *,
    secret_required: bool = True,
    allow_suspended: bool = False,
) -> Client:
    """The client of a token request, its secret verified when one is presented (SPEC §2, §9).

    Every failure of a presented (or required) secret is the one 40101 answer.
    Without a secret, where none is required, nothing is refused or told here:
    the app may not even exist, and it is the grant's credential (the refresh
    token) that must then be verified before ``admit``. ``allow_suspended``
    lets a suspended app through, for the grants whose codes and refresh tokens
    then answer 40006 saying why (SPEC §8). Raises OAuthError 40001, 40101, 42901.
    """
    app_id, secret = credentials(request)
    ip = request.client_ip
    limiter = platform.limiter
    # With the request limits off, nothing is awaited for them: each await of a limiter's coroutine
    # costs its frame even when it returns at once (docs/benchmarks.md, "Records and limits (issue 14)").
    if limiter.enabled:
        await limiter.check_request(ip, app_id)  # per IP, and the (IP, app_id) lock-out
    app = await platform.store.get_app(app_id)
    if secret is None and not secret_required:
        return Client(app_id, app, False)  # not verified
    verified = secret is not None and secret_matches(platform, app, app_id, secret)
    if app is None or not verified or not (app.active or allow_suspended):
        # Counted towards the (IP, app_id) lock-out before the read below (42901 once it is spent):
        # requests racing past check_request together cannot make a database read each.
        if limiter.enabled:
            await limiter.charge_bad_secret(ip, app_id)
        if secret is not None:
            # The cached app may predate a change made in another process that its invalidation poll
            # has not brought yet: a new secret, a resumed or a new app. Read past the cache (which
            # refreshes it) before refusing, so the app is not refused with the secret it was just
            # given. Unknown app_ids and wrong secrets both pay this read: one timing (SPEC §9).
            app = await platform.store.get_app(app_id, fresh=True)
            verified = secret_matches(platform, app, app_id, secret)
        # Asked again only here: the app verified at once is not asked twice (``active`` is a property).
        if app is None or not verified or not (app.active or allow_suspended):
            platform.audit(events.CLIENT_AUTH_FAILED, app_id=app_id if app is not None else None, ip=ip)
            headers = BASIC_CHALLENGE if request.basic_auth is not None else None
            raise OAuthError("invalid_client", FAILED, headers=headers)
    return Client(app_id, app, True)  # verified; by position: no keyword dict


async def admit(platform: Platform[object], request: TokenRequest, app: App) -> None:
    """Once the client is verified (by its secret, or by the grant's credential): the IP
    whitelist (40302), then the app's own request budget (42901) — never before (SPEC §9)."""
    if app.ip_whitelist:  # an empty one lets every address in: two calls fewer
        enforce_whitelist(request.client_ip, app.ip_whitelist)
    if platform.limiter.enabled:  # off: nothing awaited, as in identify
        await platform.limiter.charge_app(app.app_id)


async def authenticate(
    platform: Platform[ClientStorage], request: TokenRequest, *, allow_suspended: bool = False
) -> App:
    """``identify`` with a required secret, then ``admit``: the app making the request."""
    app = (await identify(platform, request, allow_suspended=allow_suspended)).app
    assert app is not None  # a verified client has an app
    # Through ``admit``, not a copy of it: the whitelist and the budget are one rule in one place
    # (inlined, they saved about 1,000 instructions a request: docs/benchmarks.md).
    await admit(platform, request, app)
    return app
