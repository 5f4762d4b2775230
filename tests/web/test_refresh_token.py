"""POST /oauth/refresh_token: rotation with reuse detection (SPEC §2.3, RFC 6749 §6).

Every use rotates the refresh token. An already rotated token presented again is
theft and revokes the whole family — except the immediately previous token
within the 5 s leeway, which gets the same new pair again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from openplatform.core.tokens import user_pair
from openplatform.security import order_prefix
from tests.conftest import Harness, World

PATH = "/oauth/refresh_token"


def assert_error(response: httpx.Response, code: int, error: str) -> None:
    assert response.status_code == code // 100, response.text
    body = response.json()
    assert (body["code"], body["error"], body["result"]) == (code, error, None), body
    assert response.headers["cache-control"] == "no-store"


def pair(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["code"], body["msg"]) == (0, "success")
    result: dict[str, Any] = body["result"]
    assert set(result) == {"access_token", "expires_in", "refresh_token", "scope"}
    assert result["expires_in"] == 7200
    return result


async def works(harness: Harness, world: World, access_token: str) -> bool:
    response = await harness.client.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": access_token})
    if response.status_code == 200:
        return True
    assert (response.status_code, response.json()["code"]) == (401, 40102), response.text
    return False


@pytest.mark.parametrize("grant_type", ["refresh_code", "refresh_token"])
async def test_both_grant_type_spellings_rotate(harness: Harness, grant_type: str) -> None:
    world = await harness.world(scopes=("customer:read",))
    first = await harness.user_tokens(world)
    second = pair(await harness.refresh(world, first["refresh_token"], grant_type=grant_type))
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == first["scope"] == "install_login"
    assert await works(harness, world, second["access_token"])
    third = pair(await harness.refresh(world, second["refresh_token"], grant_type=grant_type))
    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3


async def test_retry_within_leeway_returns_the_same_pair(harness: Harness) -> None:
    world = await harness.world()
    first = await harness.user_tokens(world)
    second = pair(await harness.refresh(world, first["refresh_token"]))
    harness.clock.advance(4)
    again = pair(await harness.refresh(world, first["refresh_token"]))
    assert again == second
    # No fork, no revocation: the family goes on from that one pair.
    assert await works(harness, world, second["access_token"])
    third = pair(await harness.refresh(world, second["refresh_token"]))
    assert await works(harness, world, third["access_token"])


async def test_a_rotation_is_stamped_with_its_own_time(harness: Harness) -> None:
    """The new pair starts with the rotation's time, not the family's: its stored keys append to the
    tokens' index like every new token's instead of going back to the family's place in it."""
    world = await harness.world()
    first = await harness.user_tokens(world)
    await asyncio.sleep(0.003)  # a later millisecond than the family's first tokens
    second = pair(await harness.refresh(world, first["refresh_token"]))
    for kind in ("access_token", "refresh_token"):
        assert order_prefix(second[kind]) > order_prefix(first["refresh_token"])


async def test_retry_of_a_rotation_stamped_with_the_familys_time(harness: Harness) -> None:
    """A rotation made the earlier way (the pair stamped with the presented token's prefix: an earlier
    version, or a node not yet upgraded) gets that very pair on its retry here."""
    world = await harness.world()
    first = await harness.user_tokens(world)
    platform, raw = harness.platform, first["refresh_token"]
    record = await platform.store.get_token(platform.keyring.token_digest(raw))
    assert record is not None
    derive, stamp = platform.keyring.rotation_token, order_prefix(raw)
    issued, access, refresh = user_pair(
        platform, record, (), derive(raw, "access", stamp), derive(raw, "refresh", stamp)
    )
    assert await platform.store.rotate_refresh(record, access, refresh) is None
    harness.clock.advance(2)
    again = pair(await harness.refresh(world, raw))
    assert (again["access_token"], again["refresh_token"]) == (issued.access_token, issued.refresh_token)
    assert await works(harness, world, again["access_token"])


async def test_previous_token_after_the_leeway_is_theft(harness: Harness) -> None:
    """Rotation retires the old token: past the leeway, presenting it revokes the family."""
    world = await harness.world()
    first = await harness.user_tokens(world)
    second = pair(await harness.refresh(world, first["refresh_token"]))
    harness.clock.advance(6)
    assert_error(await harness.refresh(world, first["refresh_token"]), 40006, "invalid_grant")
    assert not await works(harness, world, second["access_token"])
    assert not await works(harness, world, first["access_token"])
    assert_error(await harness.refresh(world, second["refresh_token"]), 40006, "invalid_grant")


async def test_reuse_of_an_older_generation_revokes_the_family(harness: Harness) -> None:
    world = await harness.world()
    other_family = await harness.user_tokens(world)
    first = await harness.user_tokens(world)
    second = pair(await harness.refresh(world, first["refresh_token"]))
    third = pair(await harness.refresh(world, second["refresh_token"]))
    assert await works(harness, world, third["access_token"])
    # Within the leeway in time, but two generations back: no leeway for it.
    assert_error(await harness.refresh(world, first["refresh_token"]), 40006, "invalid_grant")
    for tokens in (first, second, third):
        assert not await works(harness, world, tokens["access_token"])
    for refresh_token in (second["refresh_token"], third["refresh_token"]):
        assert_error(await harness.refresh(world, refresh_token), 40006, "invalid_grant")
    # Another family of the same customer is not touched.
    assert await works(harness, world, other_family["access_token"])
    assert pair(await harness.refresh(world, other_family["refresh_token"]))


async def test_secret_is_optional_but_verified_when_present(harness: Harness) -> None:
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    assert_error(await harness.refresh(world, tokens["refresh_token"], secret="0" * 64), 40101, "invalid_client")
    # Without a secret nothing tells whether an app exists (SPEC §9): the token just is not that app's.
    assert_error(await harness.refresh(world, tokens["refresh_token"], app_id="f" * 32), 40006, "invalid_grant")
    # The failed attempts did not consume the token.
    tokens = pair(await harness.refresh(world, tokens["refresh_token"], secret=world.secret))
    pair(await harness.refresh(world, tokens["refresh_token"]))


@pytest.mark.parametrize("settings_overrides", [{"refresh_requires_secret": True}])
async def test_secret_can_be_required(harness: Harness) -> None:
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    assert_error(await harness.refresh(world, tokens["refresh_token"]), 40101, "invalid_client")  # SPEC §9
    assert_error(await harness.refresh(world, tokens["refresh_token"], secret="0" * 64), 40101, "invalid_client")
    pair(await harness.refresh(world, tokens["refresh_token"], secret=world.secret))


async def test_refresh_token_of_another_app(harness: Harness) -> None:
    world = await harness.world()
    other_app, other_secret = await harness.admin.create_app("Other", world.host_url)
    await harness.admin.install(other_app.app_id, customer_id=world.customer_id)
    other = World(world.xspe, world.customer_id, other_app.app_id, other_secret, world.host_url, "")
    theirs = await harness.user_tokens(other)
    assert_error(await harness.refresh(world, theirs["refresh_token"]), 40006, "invalid_grant")
    assert_error(await harness.refresh(world, theirs["refresh_token"], secret=world.secret), 40006, "invalid_grant")
    # The rightful app can still rotate it: the attempt neither consumed nor revoked it.
    assert pair(await harness.refresh(other, theirs["refresh_token"]))


async def test_not_a_refresh_token(harness: Harness) -> None:
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    app_token = await harness.app_token(world)
    for value in (tokens["access_token"], app_token, "unknown", tokens["refresh_token"] + "x"):
        assert_error(await harness.refresh(world, value), 40006, "invalid_grant")
    assert_error(await harness.refresh(world, ""), 40001, "invalid_request")
    assert_error(
        await harness.client.post(PATH, data={"app_id": world.app_id, "grant_type": "refresh_code"}),
        40001,
        "invalid_request",
    )
    assert_error(await harness.refresh(world, tokens["refresh_token"], grant_type="authorization_code"), 40002,
                 "unsupported_grant_type")  # fmt: skip
    assert pair(await harness.refresh(world, tokens["refresh_token"]))
    expiring = await harness.user_tokens(world)
    harness.clock.advance(harness.platform.settings.refresh_token_ttl + 1)
    assert_error(await harness.refresh(world, expiring["refresh_token"]), 40006, "invalid_grant")
