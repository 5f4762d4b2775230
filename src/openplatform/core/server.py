"""The token endpoints: which grants each path accepts, and the common checks.

SPEC §2.2–2.4. Each documented path accepts its own grant types; the app-token
path also takes ``authorization_code``, as public client code written for the
original platform posts it there. ``/oauth/access_token`` is also the RFC 8414
``token_endpoint``, so it takes every grant the metadata lists, with the same
rules as on their documented paths (a standard OAuth client reads the metadata
and posts every grant there).
"""

from __future__ import annotations

from openplatform import events
from openplatform.core.context import Platform
from openplatform.core.grants.authorization_code import AuthorizationCodeGrant
from openplatform.core.grants.base import AnyGrant, GrantStorage
from openplatform.core.grants.client_credentials import ClientCredentialsGrant
from openplatform.core.grants.refresh_token import RefreshTokenGrant
from openplatform.core.requests import TokenRequest
from openplatform.core.store import AppStorage
from openplatform.errors import OAuthError
from openplatform.models import IssuedTokens

_CODE = AuthorizationCodeGrant()
_REFRESH = RefreshTokenGrant()
_APP = ClientCredentialsGrant()

ENDPOINT_GRANTS: dict[str, tuple[AnyGrant, ...]] = {
    "access_token": (_CODE, _REFRESH, _APP),
    "refresh_token": (_REFRESH,),
    "credit_token": (_APP, _CODE),
}


def select_grant(endpoint: str, grant_type: str | None) -> AnyGrant:
    if not grant_type:
        raise OAuthError("invalid_request", "The grant_type parameter is required.", field="grant_type")
    for grant in ENDPOINT_GRANTS[endpoint]:
        if grant_type in grant.GRANT_TYPES:
            return grant
    accepted = ", ".join(t for g in ENDPOINT_GRANTS[endpoint] for t in g.GRANT_TYPES)
    raise OAuthError("unsupported_grant_type", f"This endpoint accepts grant_type {accepted}.")


async def token_response(platform: Platform[GrantStorage], endpoint: str, request: TokenRequest) -> IssuedTokens:
    try:
        grant = select_grant(endpoint, request.params.get("grant_type"))
        validated = await grant.validate(platform, request)
        return await grant.issue(platform, request, validated)
    except OAuthError as exc:
        if exc.error != "rate_limited":  # a flood must not flood the audit log too
            platform.audit(
                events.TOKEN_DENIED, endpoint=endpoint, error=exc.error, ip=request.client_ip,
                app_id=await _known_app_id(platform, request),
            )  # fmt: skip
        raise


async def _known_app_id(platform: Platform[AppStorage], request: TokenRequest) -> str | None:
    """The request's app_id if such an app exists. An attacker's made-up ids are not kept: each
    would be an audit row of its own, where refusals from one address coalesce into one a commit."""
    app_id = request.get("app_id") or request.get("client_id")
    if not app_id or len(app_id) > 32:
        return None
    return app_id if await platform.store.get_app(app_id) is not None else None
