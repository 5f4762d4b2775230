"""App (client) authentication, RFC 6749 §2.3.1: app_id + secret in the body or Basic.

Order matters: the app is looked up, then the IP whitelist is applied (a
disallowed address learns nothing about the secret), then the secret is checked
in constant time against every live secret (the current one, and the previous
one during its grace period). Repeated bad secrets lock the app+IP pair out.
"""

from __future__ import annotations

from openplatform.core.context import Platform
from openplatform.core.ip_policy import enforce_whitelist
from openplatform.core.requests import TokenRequest
from openplatform.errors import OAuthError
from openplatform.models import App
from openplatform.security import constant_time_equals

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="openplatform"'}


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


def _invalid_client(request: TokenRequest, message: str | None = None) -> OAuthError:
    headers = BASIC_CHALLENGE if request.basic_auth is not None else None
    return OAuthError("invalid_client", message, headers=headers)


def secret_matches(platform: Platform, app: App, secret: str) -> bool:
    presented = platform.keyring.secret_hash(app.app_id, secret)
    now = platform.clock()
    matched = False
    for stored in app.secrets:  # every live secret, so the timing does not tell which matched
        if stored.expires_at is None or stored.expires_at > now:
            matched |= constant_time_equals(presented, stored.secret_hash)
    return matched


async def load_app(platform: Platform, request: TokenRequest, app_id: str) -> App:
    await platform.limiter.check_request(request.client_ip, app_id)
    app = await platform.store.get_app(app_id)
    if app is None:
        await platform.limiter.record_bad_secret(request.client_ip, app_id)
        raise _invalid_client(request, "Unknown app_id.")
    enforce_whitelist(request.client_ip, app.ip_whitelist)
    if not app.active:
        raise _invalid_client(request, "The app is suspended.")
    return app


async def authenticate(platform: Platform, request: TokenRequest, *, secret_required: bool = True) -> App:
    app_id, secret = credentials(request)
    app = await load_app(platform, request, app_id)
    if secret is None:
        if secret_required:
            raise OAuthError("invalid_request", "The secret parameter is required.", field="secret")
        return app
    if not secret_matches(platform, app, secret):
        await platform.limiter.record_bad_secret(request.client_ip, app_id)
        platform.audit("client.auth_failed", app_id=app_id, ip=request.client_ip)
        raise _invalid_client(request, "Wrong secret.")
    return app
