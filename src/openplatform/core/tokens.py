"""Building token records (raw values go to the client, only digests are stored) and finding them again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from openplatform.core.context import Platform
from openplatform.core.store import CodeStorage, TokenStorage
from openplatform.models import INSTALL_LOGIN, App, AuthorizationCode, Backing, IssuedTokens, TokenRecord
from openplatform.security import Keyring

T = TypeVar("T")


def app_token(platform: Platform[object], app: App) -> tuple[IssuedTokens, TokenRecord]:
    """SPEC §2.4: a bearer token for the app itself, with all its registered scopes."""
    raw, digest = platform.keyring.mint()
    now = platform.clock()
    ttl = platform.settings.access_token_ttl
    # By position, in TokenRecord's field order (tests/core/test_tokens_records.py): called with keywords, a
    # class takes them through a dict (docs/benchmarks.md, "Records and limits (issue 14)").
    record = TokenRecord(
        digest, "access", app.app_id, " ".join(app.scopes), now + ttl,
        None, None, None, None, None, None, None, now,  # installation .. successor: an app token has none
    )  # fmt: skip
    return IssuedTokens(access_token=raw, expires_in=ttl), record


def still_granted(scope: str, registered: tuple[str, ...]) -> str:
    """The scopes of ``scope`` (space-separated) that still count, in their order: those the app still
    has ``registered``, and ``install_login`` (implied by the installation, never registered)."""
    # Each scope tested inline: a call per scope splitting the scope again (``resources.granted``)
    # measured 6,600 instructions for one scope, this 2,300.
    scopes = scope.split()
    for one in scopes:
        if one != INSTALL_LOGIN and one not in registered:  # one withdrawn: leave it (and its like) out
            return " ".join([kept for kept in scopes if kept == INSTALL_LOGIN or kept in registered])
    return " ".join(scopes)


def user_pair(
    platform: Platform[object],
    base: AuthorizationCode | TokenRecord,
    registered: tuple[str, ...],
    access_raw: str | None = None,
    refresh_raw: str | None = None,
    stamp: bytes | None = None,
) -> tuple[IssuedTokens, TokenRecord, TokenRecord]:
    """An access + refresh pair for one customer's installation (SPEC §2.2, §2.3).

    The tokens keep the scope of ``base`` (a scope counts only while the app has it registered, and
    counts again if it is registered again); the answer's ``scope`` is what counts now
    (``still_granted`` of the app's ``registered`` scopes), as introspection reports it, so that an
    app is not told of a scope withdrawn since the code was issued (RFC 6749 §5.1: the answer names
    the scope when it differs from the one asked for).

    The family's absolute lifetime (SPEC §8, ``refresh_family_max_age`` seconds)
    starts at the code exchange and is copied on every rotation, never renewed:
    both tokens expire at the earlier of their own lifetime and the family's end,
    and ``expires_in`` says so. A family from before migration 0004 (no end yet)
    starts its lifetime at its first rotation. ``stamp``: the issue-time prefix the given
    values start with (``Keyring.rotation_token``'s), so their keys need not decode it again.
    """
    access_raw, access_key = _minted_or_given(platform.keyring, access_raw, stamp)
    refresh_raw, refresh_key = _minted_or_given(platform.keyring, refresh_raw, stamp)
    now = platform.clock()
    settings = platform.settings
    family: str | None
    if isinstance(base, AuthorizationCode):
        family, family_ends = base.digest, now + settings.refresh_family_max_age
    else:
        family = base.family_id
        family_ends = base.family_expires_at or now + settings.refresh_family_max_age
    # By position, in TokenRecord's field order (digest, kind, app_id, scope, expires_at, installation_id,
    # customer_id, xspe, family_id, revoked_at, rotated_at, successor, created_at, family_expires_at):
    # eleven keywords cost each record about 4,700 instructions more (callgrind; docs/benchmarks.md,
    # "The exchange's and the rotation's own work"). tests/core/test_tokens_records.py checks each field.
    app_id, scope, installation_id, customer_id, xspe = (
        base.app_id, base.scope, base.installation_id, base.customer_id, base.xspe
    )  # fmt: skip
    access = TokenRecord(
        access_key, "access", app_id, scope, min(now + settings.access_token_ttl, family_ends),
        installation_id, customer_id, xspe, family, None, None, None, now, family_ends,
    )  # fmt: skip
    refresh = TokenRecord(
        refresh_key, "refresh", app_id, scope, min(now + settings.refresh_token_ttl, family_ends),
        installation_id, customer_id, xspe, family, None, None, None, now, family_ends,
    )  # fmt: skip
    capped = family_ends < now + settings.access_token_ttl
    expires_in = max(0, int(family_ends - now)) if capped else settings.access_token_ttl
    issued = IssuedTokens(access_raw, expires_in, refresh_raw, still_granted(scope, registered))
    return issued, access, refresh


def _minted_or_given(keyring: Keyring, raw: str | None, stamp: bytes | None) -> tuple[str, str]:
    """A new token and its stored key (``Keyring.mint``), or ``raw`` (a rotation's derived successor)
    with its key. A minted token's key comes with it: digesting it again cost an HMAC and a base64
    decode of its prefix per token, two per code exchange (docs/benchmarks.md)."""
    if raw is None:
        return keyring.mint()
    return raw, keyring.token_digest(raw, stamp)


# Tokens issued before migration 0003 were stored under a plain HMAC of their
# value (43 characters, no time prefix). They are found under that key until the
# last of them expires (refresh tokens live 30 days by default); then this goes.
LEGACY_TOKEN_LENGTH = 43


async def find_token(platform: Platform[TokenStorage], raw: str) -> TokenRecord | None:
    """The record of a bearer or refresh token, wherever it is stored: under the current
    server key, else (a token from before migration 0003) its plain digest, else under
    an old server key (SPEC §10). Only a miss pays for the fallbacks (``find_token_elsewhere``,
    which the token-checked GET and introspection call themselves after their own lookup)."""
    found = await platform.store.get_token(platform.keyring.token_digest(raw))
    return found if found is not None else await _elsewhere(platform.keyring, platform.store.get_token, raw)


def find_token_elsewhere(platform: Platform[TokenStorage], raw: str) -> Awaitable[TokenRecord | None]:
    """``find_token``'s fallbacks alone, for a caller that looked the current key's digest up itself
    (``store.get_token(keyring.token_digest(raw))``) and missed: the token-checked GET and
    introspection do, which saves them ``find_token``'s coroutine (about 1,000 instructions)."""
    return _elsewhere(platform.keyring, platform.store.get_token, raw)


async def find_token_backed(platform: Platform[TokenStorage], raw: str) -> tuple[TokenRecord, Backing] | None:
    """``find_token`` with what the token stands on (SPEC §8), read fresh in the same statement."""
    found = await platform.store.get_token_backed(platform.keyring.token_digest(raw))
    return found if found is not None else await _elsewhere(platform.keyring, platform.store.get_token_backed, raw)


async def _elsewhere(keyring: Keyring, fetch: Callable[[str], Awaitable[T | None]], raw: str) -> T | None:
    """What the current key's digest missed: under the plain digest of a legacy token, else an old key's."""
    found = await fetch(keyring.digest(raw)) if len(raw) == LEGACY_TOKEN_LENGTH else None
    for old in keyring.old if found is None else ():
        found = await fetch(old.token_digest(raw))
        if found is not None:
            break
    return found


async def find_code_backed(platform: Platform[CodeStorage], raw: str) -> tuple[AuthorizationCode, Backing] | None:
    """An authorization code's record, under the current server key or else an old one (SPEC §10),
    with what the code stands on (SPEC §8), read fresh in the same statement."""
    return await platform.keyring.find(platform.store.get_code_backed, Keyring.token_digest, raw)
