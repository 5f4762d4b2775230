"""Rate limits on the token endpoints and lock-out after bad secrets (SPEC §3).

``OPENPLATFORM_RATE_LIMITS`` sets them; a limited request gets 42901 with
``Retry-After``. The limiter is rebuilt on the harness's FakeClock so a test can
let the window pass without sleeping.
"""

from __future__ import annotations

import httpx
import pytest

from openplatform.core.ratelimit import RateLimiter
from tests.conftest import Harness, World


def limit_on_fake_clock(harness: Harness) -> None:
    """The same limiter the server builds, reading the test's clock."""
    harness.platform.limiter = RateLimiter(harness.platform.settings.rate_limits, clock=harness.clock)


async def app_token(harness: Harness, world: World, ip: str, secret: str | None = None) -> httpx.Response:
    form = dict(app_id=world.app_id, secret=secret or world.secret, grant_type="client_credential")
    async with harness.client_from(ip) as client:
        return await client.post("/oauth/credit/token", data=form)


def assert_limited(response: httpx.Response, longest: int) -> None:
    body = response.json()
    assert (response.status_code, body["code"], body["error"]) == (429, 42901, "rate_limited"), body
    assert body["result"] is None
    assert 1 <= int(response.headers["retry-after"]) <= longest


@pytest.mark.parametrize("settings_overrides", [{"rate_limits": "ip=5/60"}])
async def test_sixth_request_from_one_ip_is_limited(harness: Harness) -> None:
    limit_on_fake_clock(harness)
    world = await harness.world()
    for _ in range(5):
        assert (await app_token(harness, world, "198.51.100.1")).json()["code"] == 0
    assert_limited(await app_token(harness, world, "198.51.100.1"), 60)
    assert (await app_token(harness, world, "198.51.100.2")).json()["code"] == 0  # per IP

    harness.clock.advance(12)  # 5 per 60 s: one request's worth refills every 12 s
    assert (await app_token(harness, world, "198.51.100.1")).json()["code"] == 0
    assert_limited(await app_token(harness, world, "198.51.100.1"), 60)


@pytest.mark.parametrize("settings_overrides", [{"rate_limits": "ip=5/60"}])
async def test_ip_limit_counts_every_token_endpoint(harness: Harness) -> None:
    limit_on_fake_clock(harness)
    world = await harness.world()
    tokens = await harness.user_tokens(world)  # 1: code exchange
    assert (await harness.refresh(world, tokens["refresh_token"])).json()["code"] == 0  # 2
    for _ in range(3):  # 3, 4, 5
        assert (await app_token(harness, world, "127.0.0.1")).json()["code"] == 0
    code = await harness.code(world)  # connect is the browser's, not limited here
    assert_limited(await harness.exchange(world, code), 60)
    # The limited request did not burn the code.
    harness.clock.advance(12)
    assert (await harness.exchange(world, code)).json()["code"] == 0


@pytest.mark.parametrize("settings_overrides", [{"rate_limits": "bad_secret=3/300"}])
async def test_bad_secrets_lock_out_the_app_from_that_ip(harness: Harness) -> None:
    limit_on_fake_clock(harness)
    world = await harness.world()
    other = await harness.world()
    for _ in range(3):
        wrong = await app_token(harness, world, "203.0.113.5", secret="0" * 64)
        assert (wrong.status_code, wrong.json()["code"]) == (401, 40101)
    assert_limited(await app_token(harness, world, "203.0.113.5"), 300)  # even the right secret
    assert_limited(await app_token(harness, world, "203.0.113.5", secret="0" * 64), 300)
    assert (await app_token(harness, world, "203.0.113.6")).json()["code"] == 0  # another IP
    assert (await app_token(harness, other, "203.0.113.5")).json()["code"] == 0  # another app

    harness.clock.advance(100)  # 3 per 300 s: one failure is forgiven every 100 s
    assert (await app_token(harness, world, "203.0.113.5")).json()["code"] == 0


@pytest.mark.parametrize("settings_overrides", [{"rate_limits": "bad_secret=3/300"}])
async def test_lock_out_covers_refresh_and_code_exchange(harness: Harness) -> None:
    limit_on_fake_clock(harness)
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    code = await harness.code(world)
    for _ in range(3):
        assert (await harness.exchange(world, code, secret="f" * 64)).json()["code"] == 40101
    assert_limited(await harness.exchange(world, code), 300)
    assert_limited(await harness.refresh(world, tokens["refresh_token"]), 300)


@pytest.mark.parametrize("settings_overrides", [{"rate_limits": "off"}])
async def test_off_never_limits(harness: Harness) -> None:
    limit_on_fake_clock(harness)
    world = await harness.world()
    for _ in range(20):
        assert (await app_token(harness, world, "198.51.100.1", secret="0" * 64)).json()["code"] == 40101
    for _ in range(40):
        assert (await app_token(harness, world, "198.51.100.1")).json()["code"] == 0


def test_bad_limit_settings_are_refused() -> None:
    for spec in ("ip=five/60", "nonsense=1/1", "ip"):
        with pytest.raises(ValueError, match="bad rate limit"):
            RateLimiter(spec)
