"""The core's rules on the in-memory backend: no database, no HTTP, milliseconds per test.

The grants decide (SPEC §2.2, §2.3, §8; RFC 6749 §4.1.2): a code exchanged twice
revokes what it gave; the previous refresh token presented again within the
leeway gets the very same pair; presented after it, or after its successor was
used, it is theft and the family is revoked; a code or refresh token works only
while its app, installation, customer and SPE do. ``storage/memory/`` gives
the same guarantees as the SQL backend (tests/storage/test_contract.py), so these
tests exercise the rules themselves through ``core.authorize`` and ``core.server``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest

from openplatform import events
from openplatform.config import Settings
from openplatform.core import authorize, server
from openplatform.core.context import Platform
from openplatform.core.ratelimit import RateLimiter
from openplatform.core.requests import TokenRequest
from openplatform.errors import OAuthError
from openplatform.models import ACTIVE, SUSPENDED, App, AppSecret, Customer, Installation, IssuedTokens, Spe
from openplatform.security import Keyring
from openplatform.storage.memory import MemoryStore
from tests.conftest import TEST_SECRET_KEY, FakeClock

CALLBACK = "https://app.example.com/callback"
IP = "192.0.2.10"


@dataclass
class World:
    platform: Platform
    store: MemoryStore
    clock: FakeClock
    app: App
    secret: str
    customer: Customer
    installation: Installation

    async def code(self) -> str:
        """A code from ``GET /oauth/connect``'s decision (core.authorize.connect)."""
        params = dict(app_id=self.app.app_id, redirect_uri=CALLBACK, response_type="code", scope="install_login",
                      xspe=self.customer.xspe, customer_id=self.customer.customer_id, state="st")  # fmt: skip
        location = await authorize.connect(self.platform, params)
        return parse_qs(urlsplit(location).query)["code"][0]

    async def token(self, endpoint: str, **params: str) -> IssuedTokens:
        request = TokenRequest({"app_id": self.app.app_id, **params}, IP)
        return await server.token_response(self.platform, endpoint, request)

    async def exchange(self, code: str) -> IssuedTokens:
        return await self.token("access_token", secret=self.secret, code=code, grant_type="authorization_code")

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        return await self.token("refresh_token", refresh_token=refresh_token, grant_type="refresh_code")

    def revoked(self, *raw_tokens: str | None) -> list[bool]:
        """Whether each token's record is revoked (only digests are stored)."""
        found = []
        for raw in raw_tokens:
            assert raw is not None
            record = self.store.tokens[self.platform.keyring.token_digest(raw)]
            found.append(record.revoked_at is not None)
        return found

    def audited(self, event: str) -> list[dict[str, object]]:
        return [e.fields for e in self.store.audit_events if e.event == event]


@pytest.fixture
def world() -> World:
    clock = FakeClock()
    settings = Settings(secret_key=TEST_SECRET_KEY, rate_limits="off")
    keyring = Keyring(settings.resolved_secret_key(), settings.old_secret_key_list)
    store = MemoryStore(clock=clock)
    platform: Platform = Platform(settings, store, keyring, RateLimiter("off"), clock=clock)
    app_id, secret = "a" * 32, "5" * 64
    app = App(app_id, "Test App", "https://app.example.com/", ACTIVE, ("customer:read",), (),
              secrets=(AppSecret(keyring.secret_hash(app_id, secret), None),))  # fmt: skip
    spe = Spe("spe_1", "Acme SPE")
    customer = Customer("cus_1", spe.xspe, "Customer One")
    installation = Installation("ins_1", app_id, spe.xspe, customer.customer_id, clock())
    store.put_spe(spe)
    store.put_customer(customer)
    store.put_app(app)
    store.put_installation(installation)
    return World(platform, store, clock, app, secret, customer, installation)


async def refused(call: object) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        await call  # type: ignore[misc]
    return caught.value


# ----------------------------------------------------------------- code exchange


async def test_a_code_exchanged_twice_revokes_the_tokens_it_gave(world: World) -> None:
    code = await world.code()
    first = await world.exchange(code)
    assert world.revoked(first.access_token, first.refresh_token) == [False, False]

    replay = await refused(world.exchange(code))
    assert (replay.error, replay.message) == ("invalid_grant", "The code was already used; its tokens are revoked.")
    assert world.revoked(first.access_token, first.refresh_token) == [True, True]
    assert len(world.audited(events.CODE_REPLAYED)) == 1
    assert ("family", world.platform.keyring.token_digest(code)) in [
        (k, v) for _i, k, v, _a in world.store.invalidations
    ]


async def test_racing_exchanges_of_one_code_one_wins_and_its_tokens_are_revoked(world: World) -> None:
    code = await world.code()
    outcomes = await asyncio.gather(world.exchange(code), world.exchange(code), return_exceptions=True)
    won = [o for o in outcomes if isinstance(o, IssuedTokens)]
    lost = [o for o in outcomes if isinstance(o, OAuthError)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].error == "invalid_grant"
    assert world.revoked(won[0].access_token, won[0].refresh_token) == [True, True]  # RFC 6749 §4.1.2


# ----------------------------------------------------------------------- refresh


async def test_a_refresh_retried_within_the_leeway_gets_the_same_pair(world: World) -> None:
    first = await world.exchange(await world.code())
    assert first.refresh_token is not None
    rotated = await world.refresh(first.refresh_token)
    world.clock.advance(world.platform.settings.refresh_leeway - 1)
    again = await world.refresh(first.refresh_token)  # a network retry, or a second worker
    assert (again.access_token, again.refresh_token) == (rotated.access_token, rotated.refresh_token)
    assert world.revoked(rotated.access_token, rotated.refresh_token) == [False, False]
    # One rotation issued the pair; the retry issued nothing and is audited as what it is.
    assert len(world.audited(events.TOKEN_REFRESHED)) == len(world.audited(events.TOKEN_REFRESH_RETRIED)) == 1
    assert world.audited(events.REFRESH_REUSED) == []


async def test_a_refresh_token_reused_after_the_leeway_is_theft_and_ends_the_family(world: World) -> None:
    first = await world.exchange(await world.code())
    assert first.refresh_token is not None
    rotated = await world.refresh(first.refresh_token)
    world.clock.advance(world.platform.settings.refresh_leeway + 1)

    theft = await refused(world.refresh(first.refresh_token))
    assert theft.message == "The refresh token was already used; its family is revoked."
    assert world.revoked(first.access_token, rotated.access_token, rotated.refresh_token) == [True, True, True]
    assert len(world.audited(events.REFRESH_REUSED)) == 1
    assert rotated.refresh_token is not None
    assert (await refused(world.refresh(rotated.refresh_token))).message == "The refresh token was revoked."


async def test_the_previous_token_after_its_successor_was_used_is_theft_even_within_the_leeway(world: World) -> None:
    first = await world.exchange(await world.code())
    assert first.refresh_token is not None
    rotated = await world.refresh(first.refresh_token)
    assert rotated.refresh_token is not None
    await world.refresh(rotated.refresh_token)  # the successor was used: the old one has no business here
    theft = await refused(world.refresh(first.refresh_token))
    assert theft.message == "The refresh token was already used; its family is revoked."
    assert world.revoked(rotated.access_token) == [True]


# --------------------------------------------------------------- lifecycle (§8)


async def test_a_code_of_a_suspended_app_no_longer_works_and_is_not_a_replay(world: World) -> None:
    code = await world.code()
    world.store.put_app(dataclasses.replace(world.app, status=SUSPENDED))
    refusal = await refused(world.exchange(code))
    assert refusal.message == "The code can no longer be used: the app is suspended."
    world.store.put_app(world.app)  # resumed: the code was never consumed, so it still works
    assert (await world.exchange(code)).refresh_token is not None
    assert world.audited(events.CODE_REPLAYED) == []


async def test_a_refresh_token_stops_with_its_installation_or_customer(world: World) -> None:
    first = await world.exchange(await world.code())
    assert first.refresh_token is not None
    world.store.put_customer(dataclasses.replace(world.customer, status="disabled"))
    disabled = await refused(world.refresh(first.refresh_token))
    assert disabled.message == "The refresh token can no longer be used: the customer is disabled."
    world.store.put_customer(world.customer)
    world.store.put_installation(dataclasses.replace(world.installation, uninstalled_at=world.clock()))
    gone = await refused(world.refresh(first.refresh_token))
    assert gone.message == "The refresh token can no longer be used: the app is no longer installed for this customer."
    assert world.revoked(first.access_token, first.refresh_token) == [False, False]  # refused, not theft
    try:  # and no new code is issued
        await world.code()
    except authorize.RedirectError as err:  # back to the app's redirect_uri (RFC 6749 §4.1.2.1)
        assert err.error.error == "access_denied"
    else:
        pytest.fail("a code was issued for an uninstalled app")
