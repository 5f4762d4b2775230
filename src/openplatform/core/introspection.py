"""RFC 7662 token introspection, RFC 7009 revocation, for the app that owns the token.

An app sees only its own tokens: another app's token introspects as
``{"active": false}`` and revoking it does nothing (RFC 7009 §2.2: the answer is
200 either way, so nothing is learned about tokens one does not hold).
"""

from __future__ import annotations

from typing import Protocol

from openplatform import events
from openplatform.core import client_auth, lifecycle, tokens
from openplatform.core.context import Platform
from openplatform.core.requests import TokenRequest
from openplatform.core.resources import effective_scope
from openplatform.core.store import BackingStorage, TokenStorage
from openplatform.models import App, TokenRecord


class RevocationStorage(client_auth.ClientStorage, TokenStorage, Protocol):
    """What revocation uses: the client's app, the token (found, then revoked), the audit log."""


class IntrospectionStorage(RevocationStorage, BackingStorage, Protocol):
    """What introspection reads: the client's app, the token and what it stands on (SPEC §8)."""


async def _own_token(platform: Platform[RevocationStorage], request: TokenRequest) -> tuple[App, TokenRecord | None]:
    app = await client_auth.authenticate(platform, request)
    raw = request.require("token")
    record = await tokens.find_token(platform, raw)
    if record is None or record.app_id != app.app_id:
        return app, None
    return app, record


async def introspect(platform: Platform[IntrospectionStorage], request: TokenRequest) -> dict[str, object]:
    """RFC 7662 §2.2 response members for an active token, else only active=false.

    Members without a value are left out (RFC 7662 §2.2: all but ``active`` are optional).
    """
    # Through ``_own_token``, as revocation: another app's token is refused in one place (inlined,
    # with ``find_token``, it saved about 2,000 instructions a request: docs/benchmarks.md).
    app, record = await _own_token(platform, request)
    now = platform.clock()
    if record is None or record.revoked_at is not None or record.expires_at <= now:
        return {"active": False}
    if record.kind == "refresh" and record.rotated_at is not None:
        return {"active": False}
    # SPEC §8; an app token (no installation) stands on its app alone, which client authentication
    # has just read. ``installation_id`` read, not the ``is_app_token`` property: a Python call less.
    if record.installation_id is not None and await lifecycle.unbacked(platform, record, fresh=False) is not None:
        return {"active": False}
    body: dict[str, object] = {
        "active": True,
        "scope": effective_scope(record, app),  # without the scopes withdrawn from the app since
        "client_id": app.app_id,
        "token_type": "Bearer" if record.kind == "access" else "refresh_token",
        "exp": int(record.expires_at),
        "iat": int(record.created_at),
    }
    issuer = platform.settings.issuer.rstrip("/")  # the same issuer as the RFC 8414 metadata
    if issuer:
        body["iss"] = issuer
    if record.customer_id:
        body.update(sub=record.customer_id, customer_id=record.customer_id)
        if record.xspe is not None:
            body["xspe"] = record.xspe
    return body


async def revoke(platform: Platform[RevocationStorage], request: TokenRequest) -> None:
    app, record = await _own_token(platform, request)
    if record is not None and record.revoked_at is None:
        await platform.store.revoke_token(record)
        platform.audit(events.TOKEN_REVOKED, app_id=app.app_id, kind=record.kind, ip=request.client_ip)


def metadata(issuer: str) -> dict[str, object]:
    """RFC 8414 §2 authorization server metadata."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/connect",
        "token_endpoint": f"{issuer}/oauth/access_token",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["install_login", "customer:read", "customer:write", "site:read", "site:write"],
        "service_documentation": f"{issuer}/docs",
        "openplatform_refresh_endpoint": f"{issuer}/oauth/refresh_token",
        "openplatform_app_token_endpoint": f"{issuer}/oauth/credit/token",
    }
