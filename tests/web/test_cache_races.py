"""A read in flight across a change never puts the state from before it back in a cache (SPEC §8).

Found by a review of migration 0010 (an uninstall and a customer's deletion no longer mark the
tokens revoked; their backing alone refuses them): a backing read that began before the change
committed and answered after the change's drop put "installed" back into this process's cache, and
every old token of that installation worked again here, until the next drop or the cache's maximum
age (30 s), past SPEC §8's bound. Every cached read now keeps what it found only if no drop came
while it awaited the database (``CachedStore.generation``). The database here is real; the read is
held between its answer and its return, which is where the event loop runs other requests.
Runs on memory, SQLite and PostgreSQL (the ``harness`` fixture).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Harness, World, run_cli


async def across(
    harness: Harness,
    method: str,
    request: Awaitable[httpx.Response],
    change: Callable[[], Awaitable[None]],
    holds: Callable[[Any], bool] = lambda found: True,
) -> httpx.Response:
    """``request``, with the first read of ``store.inner.<method>`` whose answer ``holds`` held from
    that answer until ``change`` has run: a read begun before a change and returned after it. Later
    reads (the change's own) go straight through."""
    inner = harness.platform.store.inner
    original = getattr(inner, method)
    answered, release = asyncio.Event(), asyncio.Event()

    async def held(*args: Any) -> Any:
        found = await original(*args)
        if not answered.is_set() and holds(found):
            answered.set()
            await release.wait()
        return found

    setattr(inner, method, held)
    try:
        task = asyncio.ensure_future(request)
        await answered.wait()
        await change()
        release.set()
        return await task
    finally:
        setattr(inner, method, original)


async def held_backing_read(harness: Harness, world: World, token: str, change: Callable[[], Awaitable[None]]) -> None:
    """A token-checked GET whose backing read is answered before ``change`` and returns after it."""
    harness.platform.store.backings.clear()
    get = harness.client.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": token})
    await across(harness, "backing", get, change)  # checked before the change: whatever it answers


async def refused(harness: Harness, world: World, token: str) -> None:
    api = await harness.client.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": token})
    assert api.json()["code"] == 40102, api.text
    found = await harness.client.post(
        "/oauth/introspect", data={"app_id": world.app_id, "secret": world.secret, "token": token}
    )
    assert found.json()["result"] == {"active": False}, found.text


async def test_an_uninstall_during_a_backing_read_ends_the_tokens_here(harness: Harness) -> None:
    world = await harness.world()
    token = (await harness.user_tokens(world))["access_token"]

    async def uninstall() -> None:
        await harness.admin.uninstall(world.app_id, customer_id=world.customer_id)

    await held_backing_read(harness, world, token, uninstall)
    await refused(harness, world, token)


async def test_a_customers_deletion_during_a_backing_read_ends_its_tokens_here(harness: Harness) -> None:
    world = await harness.world(spe_wide=True)
    token = (await harness.user_tokens(world))["access_token"]
    app_token = await harness.app_token(world)

    async def delete() -> None:
        response = await harness.client.delete(
            f"/api/spe/customer/{world.customer_id}", headers={"Authorization": f"Bearer {app_token}"}
        )
        assert response.status_code == 200, response.text

    await held_backing_read(harness, world, token, delete)
    await refused(harness, world, token)


@pytest.mark.sql  # the CLI is another process (no Redis): this one hears of it by polling only
async def test_an_uninstall_by_another_process_during_a_backing_read_ends_the_tokens_here(harness: Harness) -> None:
    world = await harness.world()
    token = (await harness.user_tokens(world))["access_token"]
    settings = harness.platform.settings

    async def uninstall_elsewhere() -> None:
        await asyncio.to_thread(
            run_cli, settings, "uninstall", "--app-id", world.app_id, "--customer-id", world.customer_id
        )
        await harness.wait_for_invalidation()  # this process's poll applies it: its drop

    await held_backing_read(harness, world, token, uninstall_elsewhere)
    await refused(harness, world, token)


async def test_a_refresh_racing_an_uninstall_hands_out_nothing_that_works(harness: Harness) -> None:
    """A rotation checked just before an uninstall commits may still answer a pair (SPEC §8: what
    slips between a check and a write is refused at its next use); neither that pair nor the old
    tokens work afterwards, here or anywhere."""
    world = await harness.world()
    tokens = await harness.user_tokens(world)

    async def uninstall() -> None:
        await harness.admin.uninstall(world.app_id, customer_id=world.customer_id)

    refresh = harness.refresh(world, tokens["refresh_token"])
    rotated = (await across(harness, "get_token_backed", refresh, uninstall, lambda found: found is not None)).json()
    assert rotated["code"] in (0, 40006), rotated
    access_tokens = [tokens["access_token"]] + ([rotated["result"]["access_token"]] if rotated["code"] == 0 else [])
    for token in access_tokens:
        await refused(harness, world, token)
    for raw in [tokens["refresh_token"]] + ([rotated["result"]["refresh_token"]] if rotated["code"] == 0 else []):
        assert (await harness.refresh(world, raw)).json()["code"] == 40006


async def test_a_revocation_during_a_token_read_ends_the_token_here(harness: Harness) -> None:
    """The same for the token cache (before migration 0010 too): a token read answered before an
    RFC 7009 revocation and returned after it kept the token as it was, working, in this process."""
    world = await harness.world()
    token = (await harness.user_tokens(world))["access_token"]

    async def revoke() -> None:
        revoked = await harness.client.post(
            "/oauth/revoke", data={"app_id": world.app_id, "secret": world.secret, "token": token}
        )
        assert revoked.status_code == 200, revoked.text

    harness.platform.store.tokens.clear()
    get = harness.client.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": token})
    await across(harness, "get_token", get, revoke)
    await refused(harness, world, token)
