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

from openplatform.core.context import Platform
from openplatform.core.ip_policy import enforce_whitelist
from openplatform.core.requests import TokenRequest
from openplatform.errors import OAuthError
from openplatform.models import App
from openplatform.security import constant_time_equals

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="openplatform"'}
FAILED = "Client authentication failed: check app_id and secret, and that the app is active."
# Compared against when the app_id is unknown, so that case costs what a wrong secret costs.
_DUMMY_HASH = "0" * 64


def credentials(request: TokenRequest) -> tuple[str, str | None]:
    """app_id and secret, from the body or Basic auth, but not conflicting ones."""
    app_id, secret = request.get("app_id"), request.get("secret")
    if request.basic_auth is not None:
        basic_id, basic_secret = request.basic_auth
        if (app_id and app_id != basic_id) or secret:
            raise OAuthError("invalid_request", "Send app credentials once: in the body or as Basic auth.")
        app_id, secret = basic_id, basic_secret
    if not app_id:
        raise OAuthError("invalid_request", "The app_id parameter is required.", field="app_id")
    return app_id, secret or None


def secret_matches(platform: Platform, app: App | None, app_id: str, secret: str) -> bool:
    """Constant-time check against every live secret of ``app`` (a dummy one when it is None)."""
    presented = platform.keyring.secret_hash(app_id, secret)
    now = platform.clock()
    matched = False
    if app is None:
        constant_time_equals(presented, _DUMMY_HASH)
        return False
    for stored in app.secrets:  # every live secret, so the timing does not tell which matched
        if stored.expires_at is None or stored.expires_at > now:
            matched |= constant_time_equals(presented, stored.secret_hash)
    return matched


async def authenticate(
    platform: Platform, request: TokenRequest, *, secret_required: bool = True, allow_suspended: bool = False
) -> App:
    """The app making a token-endpoint request (SPEC §2, §9).

    ``secret_required=False`` (the documented refresh grant) accepts a request
    without a secret, but verifies one when present. ``allow_suspended`` lets a
    suspended app through once its secret is verified, for the grants whose
    codes and refresh tokens then answer ``40006`` saying why (SPEC §8).
    Raises OAuthError: 40001 (no app_id, conflicting credentials), 40101,
    40302 (IP whitelist), 42901 (rate limits).
    """
    app_id, secret = credentials(request)
    ip = request.client_ip
    await platform.limiter.check_request(ip, app_id)  # per IP, and the (IP, app_id) lock-out
    app = await platform.store.get_app(app_id)
    if secret is not None:
        verified = secret_matches(platform, app, app_id, secret)
    else:
        verified = not secret_required and app is not None
    if app is None or not verified or not (app.active or allow_suspended):
        await platform.limiter.record_bad_secret(ip, app_id)
        platform.audit("client.auth_failed", app_id=app_id if app is not None else None, ip=ip)
        headers = BASIC_CHALLENGE if request.basic_auth is not None else None
        raise OAuthError("invalid_client", FAILED, headers=headers)
    enforce_whitelist(ip, app.ip_whitelist)
    await platform.limiter.charge_app(app.app_id)
    return app
