"""The records ``core.tokens`` issues (SPEC §2.2–2.4, §8), field by field.

``user_pair`` and ``app_token`` build their ``TokenRecord``s by position (cheaper than keywords,
issue 14): each field is checked here by name against a record built by keyword, so a value put in
another field's place shows.
"""

from __future__ import annotations

from typing import Any

from openplatform.config import Settings
from openplatform.core import tokens
from openplatform.core.context import Platform
from openplatform.core.ratelimit import RateLimiter
from openplatform.models import ACTIVE, App, AuthorizationCode, IssuedTokens, TokenRecord
from openplatform.security import Keyring
from openplatform.storage.memory import MemoryStore
from tests.conftest import TEST_SECRET_KEY

NOW = 1_700_000_000.0


def platform() -> Platform:
    settings = Settings(secret_key=TEST_SECRET_KEY, rate_limits="off")
    keyring = Keyring(settings.resolved_secret_key())
    return Platform(settings, MemoryStore(clock=lambda: NOW), keyring, RateLimiter("off"), clock=lambda: NOW)


def code() -> AuthorizationCode:
    return AuthorizationCode(
        digest="code-digest", app_id="app-1", installation_id="ins-1", customer_id="cus-1", xspe="spe-1",
        redirect_uri="https://app.example.com/cb", scope="install_login customer:read", expires_at=NOW + 60,
    )  # fmt: skip


def test_a_code_exchange_pair_carries_the_code_and_the_family() -> None:
    p = platform()
    settings = p.settings
    issued, access, refresh = tokens.user_pair(p, code(), ("customer:read",))
    family_ends = NOW + settings.refresh_family_max_age
    assert p.keyring.token_digest(issued.access_token) == access.digest
    assert issued.refresh_token is not None and p.keyring.token_digest(issued.refresh_token) == refresh.digest
    shared: dict[str, Any] = dict(
        app_id="app-1", scope="install_login customer:read", installation_id="ins-1", customer_id="cus-1",
        xspe="spe-1", family_id="code-digest", created_at=NOW, family_expires_at=family_ends,
    )  # fmt: skip
    assert access == TokenRecord(
        digest=access.digest, kind="access", expires_at=NOW + settings.access_token_ttl, **shared
    )  # fmt: skip
    assert refresh == TokenRecord(
        digest=refresh.digest, kind="refresh", expires_at=min(NOW + settings.refresh_token_ttl, family_ends), **shared
    )  # fmt: skip
    for record in (access, refresh):
        assert (record.revoked_at, record.rotated_at, record.successor) == (None, None, None)
    assert issued == IssuedTokens(issued.access_token, settings.access_token_ttl, issued.refresh_token,
                                  "install_login customer:read")  # fmt: skip


def test_a_rotation_pair_keeps_the_family_and_its_end() -> None:
    p = platform()
    ends = NOW + 100  # the family ends before the access token would: both are capped, and expires_in says so
    old = TokenRecord(
        digest="old", kind="refresh", app_id="app-2", scope="s1 s2", expires_at=NOW + 10, installation_id="ins-2",
        customer_id=None, xspe="spe-2", family_id="fam-2", rotated_at=None, created_at=NOW - 50,
        family_expires_at=ends,
    )  # fmt: skip
    issued, access, refresh = tokens.user_pair(p, old, ("s1", "s2"), "access-raw", "refresh-raw", b"\x00" * 6)
    shared: dict[str, Any] = dict(
        app_id="app-2", scope="s1 s2", installation_id="ins-2", customer_id=None, xspe="spe-2", family_id="fam-2",
        created_at=NOW, family_expires_at=ends, expires_at=ends,
    )  # fmt: skip
    assert access == TokenRecord(digest=p.keyring.token_digest("access-raw", b"\x00" * 6), kind="access", **shared)
    assert refresh == TokenRecord(digest=p.keyring.token_digest("refresh-raw", b"\x00" * 6), kind="refresh", **shared)
    assert issued == IssuedTokens("access-raw", 100, "refresh-raw", "s1 s2")


def test_an_app_token_has_the_apps_scopes_and_nothing_of_a_user() -> None:
    p = platform()
    app = App("app-3", "App", "https://app.example.com/", ACTIVE, ("a:read", "b:write"), ())
    issued, record = tokens.app_token(p, app)
    ttl = p.settings.access_token_ttl
    assert record == TokenRecord(
        digest=p.keyring.token_digest(issued.access_token), kind="access", app_id="app-3", scope="a:read b:write",
        expires_at=NOW + ttl, created_at=NOW,
    )  # fmt: skip
    assert issued == IssuedTokens(issued.access_token, ttl)
