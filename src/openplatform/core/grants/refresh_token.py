"""SPEC §2.3 / RFC 6749 §6: rotate a refresh token, detecting reuse.

The old refresh token stops working on rotation. Presenting an already rotated
one is treated as theft and revokes the whole family — except the immediately
previous token presented again within ``refresh_leeway`` seconds, which gets
the same new pair again (a network retry, or two workers refreshing at once).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from openplatform import events
from openplatform.core import client_auth, lifecycle, tokens
from openplatform.core.context import Platform
from openplatform.core.requests import TokenRequest
from openplatform.core.store import BackingStorage, RotatedBefore, TokenStorage
from openplatform.errors import OAuthError
from openplatform.models import App, IssuedTokens, TokenRecord
from openplatform.security import Keyring, issue_stamp, stamp_of


class RefreshStorage(client_auth.ClientStorage, BackingStorage, TokenStorage, Protocol):
    """What a rotation uses: the client's app, the refresh token and what it stands on."""


class ValidRefresh(NamedTuple):  # immutable; cheaper to build than a frozen dataclass
    app: App
    raw: str
    record: TokenRecord


class RefreshTokenGrant:
    # "refresh_code" is the documented spelling; the RFC's is accepted too.
    GRANT_TYPES = ("refresh_code", "refresh_token")

    async def validate(self, platform: Platform[RefreshStorage], request: TokenRequest) -> ValidRefresh:
        required = platform.settings.refresh_requires_secret
        client = await client_auth.identify(platform, request, secret_required=required, allow_suspended=True)
        raw = request.require("refresh_token")
        found = await tokens.find_token_backed(platform, raw)  # the token and its backing: one read
        app = client.app
        if app is None or found is None or found[0].kind != "refresh" or found[0].app_id != app.app_id:
            # Without a secret the app may not exist: the same answer, so nothing is told (SPEC §9).
            raise OAuthError("invalid_grant", "The refresh token is unknown or was issued to another app.")
        record, backing = found
        await client_auth.admit(platform, request, app)  # whitelist and budget, once the client is vouched for
        reason = lifecycle.refusal(backing)  # SPEC §8, read from the database with the token
        if reason is not None:
            raise OAuthError("invalid_grant", f"The refresh token can no longer be used: {reason}.")
        if record.revoked_at is not None:
            raise OAuthError("invalid_grant", "The refresh token was revoked.")
        now = platform.clock()
        if record.family_expires_at is not None and record.family_expires_at <= now:
            raise OAuthError(
                "invalid_grant", "The refresh token's family has reached its maximum age; connect the customer again."
            )
        if record.expires_at <= now:
            raise OAuthError("invalid_grant", "The refresh token has expired.")
        return ValidRefresh(app, raw, record)

    async def issue(
        self, platform: Platform[RefreshStorage], request: TokenRequest, valid: ValidRefresh
    ) -> IssuedTokens:
        # Stamped with this rotation's time, not the family's: the new keys then append to the
        # tokens' primary key index instead of going back to the family's place in it (a random
        # page per rotation; docs/benchmarks.md, "Refresh, introspection, two workers").
        issued, access, refresh = self._pair(platform, platform.keyring, valid, issue_stamp())
        found = await platform.store.rotate_refresh(valid.record, access, refresh)
        if found is None:  # straight to the store, with keywords (as the code exchange's)
            platform.store.audit(events.TOKEN_REFRESHED, app_id=valid.app.app_id, customer_id=valid.record.customer_id,
                                 ip=request.client_ip)  # fmt: skip
            return issued
        fields = dict(app_id=valid.app.app_id, customer_id=valid.record.customer_id, ip=request.client_ip)
        if found.revoked:
            raise OAuthError("invalid_grant", "The refresh token was revoked.")
        again = self._first_pair(platform, found, valid)
        if again is not None:
            platform.audit(events.TOKEN_REFRESH_RETRIED, **fields)  # nothing issued: not a grant
            return again
        if valid.record.family_id:
            # Kept until the family's end, which every token of it carries and none outlives
            # (tokens.user_pair); a token from before migration 0004 has none: kept for ever.
            await platform.store.revoke_family(valid.record.family_id, valid.record.family_expires_at)
        platform.audit(events.REFRESH_REUSED, **fields)
        raise OAuthError("invalid_grant", "The refresh token was already used; its family is revoked.")

    @staticmethod
    def _pair(
        platform: Platform[object], keyring: Keyring, valid: ValidRefresh, stamp: bytes
    ) -> tuple[IssuedTokens, TokenRecord, TokenRecord]:
        """The successor pair of ``valid`` under ``keyring``, stamped ``stamp`` (SPEC §2.3)."""
        derive = keyring.rotation_token
        return tokens.user_pair(
            platform, valid.record, valid.app.scopes, derive(valid.raw, "access", stamp),
            derive(valid.raw, "refresh", stamp), stamp,
        )  # fmt: skip

    @classmethod
    def _first_pair(cls, platform: Platform[object], found: RotatedBefore, valid: ValidRefresh) -> IssuedTokens | None:
        """The pair the first rotation of ``valid`` handed out, when this request is its retry
        (``_is_retry``), else None. The pair is derived from the same token with the stamp the
        first rotation used, read from the successor it stored; under the current server key or,
        when the first request reached a node not yet switched to it or came just before the
        restart that switched (SPEC §10), an old one. Only a lost race comes here: rare."""
        if found.successor is None:
            return None
        stamp = stamp_of(found.successor)
        for keyring in (platform.keyring, *platform.keyring.old):
            issued = cls._pair(platform, keyring, valid, stamp)[0]
            assert issued.refresh_token is not None  # a user pair always has one
            if cls._is_retry(platform, found, keyring.token_digest(issued.refresh_token)):
                return issued
        return None

    @staticmethod
    def _is_retry(platform: Platform[object], found: RotatedBefore, new_refresh: str) -> bool:
        """The immediately previous token again (``new_refresh``: the stored key of its successor),
        within the leeway, its successor still unused: a network retry or two workers refreshing
        at once (SPEC §2.3). Anything else is theft."""
        return (
            found.successor == new_refresh
            and found.rotated_at is not None
            and platform.clock() - found.rotated_at <= platform.settings.refresh_leeway
            and found.successor_live
        )
