"""A revoked family stays revoked as long as any of its tokens lives (SPEC §2.3, §8; migration 0009).

A revocation is one row of ``revoked_families``, which the cleanup deletes after the family's end.
Found by a review of that change: the end was estimated from today's ``refresh_family_max_age`` where
no token gave it (a replayed code; a family from before migration 0004), so a lowered setting, or a
setting below the refresh token's lifetime, let the cleanup forget the revocation while a refresh
token of the family still lived, and it rotated again. Such a revocation is now kept for ever.
"""

from __future__ import annotations

import secrets

from openplatform.models import TokenRecord
from tests.conftest import Harness

DAY = 86400.0
KEEP = 3600.0  # the cleanup's keep_seconds


async def test_a_replayed_codes_family_stays_revoked_after_the_max_age_is_lowered(harness: Harness) -> None:
    world = await harness.world(scopes=("customer:read",))
    code = await harness.code(world)
    first = (await harness.exchange(world, code)).json()["result"]  # the family ends 90 days from now
    platform = harness.platform
    # the operator lowers the family's lifetime to 7 days within the code's lifetime (a restart with
    # the new setting, or a node configured so), then the code comes back: theft
    platform.settings = platform.settings.model_copy(update={"refresh_family_max_age": int(7 * DAY)})
    assert (await harness.exchange(world, code)).status_code == 400
    assert (await harness.refresh(world, first["refresh_token"])).status_code == 400
    harness.clock.advance(7 * DAY + KEEP + 1)  # before the refresh token's own expiry (30 days)
    await platform.store.cleanup(keep_seconds=KEEP, rest=0)
    again = await harness.refresh(world, first["refresh_token"])
    assert again.status_code == 400, again.text


async def test_a_legacy_familys_revocation_outlives_its_tokens(harness: Harness) -> None:
    """Refresh tokens from before migration 0004 carry no family end; the family's max age (7 days)
    may be below their lifetime (30 days). The reuse of the rotated one revokes the family; the live
    one must stay refused after the cleanup."""
    platform = harness.platform
    platform.settings = platform.settings.model_copy(update={"refresh_family_max_age": int(7 * DAY)})
    world = await harness.world(scopes=("customer:read",))
    now = harness.clock()
    family = secrets.token_hex(32)
    rotated_raw, rotated_key = platform.keyring.mint()
    live_raw, live_key = platform.keyring.mint()

    def legacy(key: str, rotated_at: float | None, successor: str | None) -> TokenRecord:
        return TokenRecord(
            key, "refresh", world.app_id, "install_login", now + 30 * DAY - 60, world.installation_id,
            world.customer_id, world.xspe, family, None, rotated_at, successor, now - 60, None,
        )  # fmt: skip

    await platform.store.save_tokens(legacy(rotated_key, now - 30, live_key), legacy(live_key, None, None))
    assert (await harness.refresh(world, rotated_raw)).status_code == 400  # reused: the family is revoked
    assert (await harness.refresh(world, live_raw)).status_code == 400
    harness.clock.advance(7 * DAY + KEEP + 1)
    await platform.store.cleanup(keep_seconds=KEEP, rest=0)
    again = await harness.refresh(world, live_raw)
    assert again.status_code == 400, again.text
