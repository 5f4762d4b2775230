"""SPEC §2.2 / RFC 6749 §4.1.3: exchange a code for a user token pair.

RFC 6749 §4.1.2: "If an authorization code is used more than once, the
authorization server MUST deny the request and SHOULD revoke (when possible) all
tokens previously issued based on that authorization code." Consumption is one
atomic statement, so of two racing exchanges exactly one succeeds, and the
loser's attempt counts as the replay it is.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from openplatform import events
from openplatform.core import client_auth, lifecycle, pkce, tokens
from openplatform.core.context import Platform
from openplatform.core.requests import TokenRequest
from openplatform.core.store import BackingStorage, CodeStorage, TokenStorage
from openplatform.errors import OAuthError
from openplatform.models import App, AuthorizationCode, IssuedTokens


class CodeExchangeStorage(client_auth.ClientStorage, BackingStorage, CodeStorage, TokenStorage, Protocol):
    """What the exchange uses: the client's app, the code and what it stands on; consuming it
    stores the pair, a replay revokes the family (``TokenStorage.revoke_family``)."""


class ValidCode(NamedTuple):  # immutable; cheaper to build than a frozen dataclass
    app: App
    code: AuthorizationCode
    presented_before: bool  # the code was already used when it was read: a replay


class AuthorizationCodeGrant:
    GRANT_TYPES = ("authorization_code",)

    async def validate(self, platform: Platform[CodeExchangeStorage], request: TokenRequest) -> ValidCode:
        app = await client_auth.authenticate(platform, request, allow_suspended=True)  # 40006 below
        raw = request.require("code")
        found = await tokens.find_code_backed(platform, raw)  # the code and its backing: one read
        if found is None or found[0].app_id != app.app_id:
            raise OAuthError("invalid_grant", "The code is unknown or was issued to another app.")
        code, backing = found
        # SPEC §8, read from the database with the code: before the replay check, so an
        # uninstall is never mistaken for theft.
        reason = lifecycle.refusal(backing)
        if reason is not None:
            raise OAuthError("invalid_grant", f"The code can no longer be used: {reason}.")
        if code.used_at is not None:  # a replay whatever else is wrong with the request
            return ValidCode(app, code, presented_before=True)
        if code.expires_at <= platform.clock():
            raise OAuthError("invalid_grant", "The code has expired.")
        redirect_uri = request.get("redirect_uri")
        if redirect_uri is not None and redirect_uri != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri differs from the one used to get the code.")
        pkce.verify(code.code_challenge, request.get("code_verifier"))
        return ValidCode(app, code, presented_before=False)

    async def issue(
        self, platform: Platform[CodeExchangeStorage], request: TokenRequest, valid: ValidCode
    ) -> IssuedTokens:
        if not valid.presented_before:
            issued, access, refresh = tokens.user_pair(platform, valid.code, valid.app.scopes)
            if await platform.store.consume_code(valid.code.digest, access, refresh):
                # Straight to the store, with keywords: each ** forwarding (Platform.audit, a dict of the
                # fields) rebuilt the fields' dict, 8,000 instructions for both (callgrind).
                platform.store.audit(events.TOKEN_ISSUED, grant="authorization_code", app_id=valid.app.app_id,
                                     customer_id=valid.code.customer_id, ip=request.client_ip)  # fmt: skip
                return issued
        # Presented before, or consumed by a racing request first: RFC 6749 §4.1.2.
        fields = dict(app_id=valid.app.app_id, customer_id=valid.code.customer_id, ip=request.client_ip)
        # The family's end is on its tokens, not on the code; an estimate from today's settings
        # could fall before it (a lowered max age): the revocation is kept for ever, one row a replay.
        await platform.store.revoke_family(valid.code.digest, None)
        platform.audit(events.CODE_REPLAYED, **fields)
        raise OAuthError("invalid_grant", "The code was already used; its tokens are revoked.")
