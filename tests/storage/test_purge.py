"""Expired codes, tokens and grace secrets are deleted, so storage stays bounded (SPEC §3).

``purge_expired(keep_seconds)`` deletes what expired more than ``keep_seconds``
ago and nothing that can still be used. Time moves through the harness's
FakeClock, which the store and the management path both read.
"""

from __future__ import annotations

from tests.conftest import Harness

HOUR = 3600.0
DAY = 86400.0


async def count(harness: Harness, sql: str, *args: object) -> int:
    row = await harness.platform.store.inner.driver.fetchrow(f"SELECT COUNT(*) AS n {sql}", *args)
    return int(row["n"])


async def counts(harness: Harness) -> dict[str, int]:
    return {
        "codes": await count(harness, "FROM auth_codes"),
        "access": await count(harness, "FROM tokens WHERE kind = 'access'"),
        "refresh": await count(harness, "FROM tokens WHERE kind = 'refresh'"),
    }


async def test_purge_deletes_expired_and_keeps_live_rows(harness: Harness) -> None:
    world = await harness.world()
    unused_code = await harness.code(world)  # expires at +300 s
    tokens = await harness.user_tokens(world)  # one used code, an access and a refresh token
    await harness.app_token(world)
    assert await counts(harness) == {"codes": 2, "access": 2, "refresh": 1}

    await harness.platform.store.purge_expired()
    assert await counts(harness) == {"codes": 2, "access": 2, "refresh": 1}

    harness.clock.advance(300 + HOUR - 10)  # codes expired, but within the keep window
    await harness.platform.store.purge_expired()
    assert await counts(harness) == {"codes": 2, "access": 2, "refresh": 1}

    harness.clock.advance(20)
    fresh_code = await harness.code(world)
    await harness.platform.store.purge_expired()
    assert await counts(harness) == {"codes": 1, "access": 2, "refresh": 1}
    assert (await harness.exchange(world, unused_code)).json()["code"] == 40006  # gone, cleanly refused

    harness.clock.advance(7200 + HOUR)  # access tokens are long expired; the refresh token is not
    await harness.platform.store.purge_expired()
    assert await counts(harness) == {"codes": 0, "access": 0, "refresh": 1}
    rotated = await harness.refresh(world, tokens["refresh_token"])
    assert rotated.json()["code"] == 0, rotated.text
    assert (await harness.exchange(world, fresh_code)).json()["code"] == 40006  # expired by now

    harness.clock.advance(30 * DAY + HOUR + 1)
    await harness.platform.store.purge_expired()
    assert await counts(harness) == {"codes": 0, "access": 0, "refresh": 0}


async def test_purge_with_no_keep_window(harness: Harness) -> None:
    world = await harness.world()
    await harness.code(world)
    await harness.app_token(world)
    harness.clock.advance(301)
    live = await harness.app_token(world)
    await harness.platform.store.purge_expired(keep_seconds=0)
    assert (await counts(harness))["codes"] == 0
    assert (await counts(harness))["access"] == 2  # both app tokens still live
    harness.clock.advance(7200)
    await harness.platform.store.purge_expired(keep_seconds=0)
    assert (await counts(harness))["access"] == 0
    response = await harness.client.get("/api/spe/customers", params={"access_token": live})
    assert response.json()["code"] == 40102


async def test_purge_drops_old_secrets_after_their_grace_and_old_invalidations(harness: Harness) -> None:
    world = await harness.world()
    new_secret = await harness.admin.rotate_secret(world.app_id, grace_seconds=600)
    assert await count(harness, "FROM app_secrets WHERE app_id = ?", world.app_id) == 2
    assert await count(harness, "FROM invalidations") > 0

    harness.clock.advance(599)
    await harness.platform.store.purge_expired()
    assert await count(harness, "FROM app_secrets WHERE app_id = ?", world.app_id) == 2

    harness.clock.advance(HOUR + 2)
    await harness.platform.store.purge_expired()
    assert await count(harness, "FROM app_secrets WHERE app_id = ?", world.app_id) == 1
    assert await count(harness, "FROM invalidations") == 0
    world.secret = new_secret
    assert await harness.app_token(world)
