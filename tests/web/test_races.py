"""Races on single-use grants (SPEC §2.2, §2.3, §7): on memory, and through the real group-commit writer.

RFC 6749 §4.1.2: a code is used once. RFC 6749 §10.4 / SPEC §2.3: a refresh token
rotates once; concurrent presentations of it (within the leeway) all get the same
new pair, so the family never forks. Every request here is a real HTTP request
through the ASGI app; ``asyncio.gather`` makes them reach the writer together.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from openplatform.config import Settings
from openplatform.storage.memory import MemoryStore
from openplatform.web.app import create_app
from tests.conftest import Harness, World

RACERS = 20
LIVE_REFRESH = (  # a revoked family is a row of its own (schema.py, revoked_families)
    "SELECT digest FROM tokens WHERE family_id = ? AND kind = 'refresh' AND revoked_at IS NULL AND rotated_at IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM revoked_families AS f WHERE f.family_id = tokens.family_id)"
)


def codes(responses: list[httpx.Response]) -> list[int]:
    return sorted(r.json()["code"] for r in responses)


async def live_refresh_digests(harness: Harness, family_id: str) -> list[str]:
    """The family's refresh tokens neither revoked nor rotated, as the backend holds them (the token
    protocol lists no family: a fork would hide from it)."""
    store = harness.platform.store.inner
    if isinstance(store, MemoryStore):
        family = (t for t in store.tokens.values() if t.family_id == family_id and t.kind == "refresh")
        return [t.digest for t in family if t.revoked_at is None and t.rotated_at is None]
    rows = await store.driver.fetch(LIVE_REFRESH, family_id)
    return [row["digest"] for row in rows]


async def family_of(harness: Harness, refresh_token: str) -> str:
    record = await harness.platform.store.get_token(harness.platform.keyring.token_digest(refresh_token))
    assert record is not None and record.family_id
    return str(record.family_id)


async def customer_status(harness: Harness, world: World, access_token: str) -> int:
    response = await harness.client.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": access_token})
    return response.json()["code"]  # type: ignore[no-any-return]


async def test_parallel_exchanges_of_one_code_give_exactly_one_success(harness: Harness) -> None:
    world = await harness.world()
    code = await harness.code(world)
    responses = await asyncio.gather(*(harness.exchange(world, code) for _ in range(RACERS)))
    assert codes(responses) == [0] + [40006] * (RACERS - 1)
    assert all(r.status_code in (200, 400) for r in responses)
    winner = next(r for r in responses if r.json()["code"] == 0).json()["result"]
    # The losers are replays (RFC 6749 §4.1.2): what the code produced is revoked.
    assert await customer_status(harness, world, winner["access_token"]) == 40102
    assert (await harness.refresh(world, winner["refresh_token"])).json()["code"] == 40006


async def test_sequential_codes_after_a_race_still_work(harness: Harness) -> None:
    """A race on one code must not poison the installation for the next code."""
    world = await harness.world()
    first = await harness.code(world)
    await asyncio.gather(*(harness.exchange(world, first) for _ in range(5)))
    tokens = await harness.user_tokens(world)
    assert await customer_status(harness, world, tokens["access_token"]) == 0


async def refresh_race(harness: Harness, world: World, refresh_token: str) -> dict[str, Any]:
    """Present one refresh token RACERS times at once; all must get the same pair."""
    responses = await asyncio.gather(*(harness.refresh(world, refresh_token) for _ in range(RACERS)))
    bodies = [r.json() for r in responses]
    assert [b["code"] for b in bodies] == [0] * RACERS, bodies
    pairs = {(b["result"]["access_token"], b["result"]["refresh_token"]) for b in bodies}
    assert len(pairs) == 1, "the family forked"
    result: dict[str, Any] = bodies[0]["result"]
    assert result["refresh_token"] != refresh_token
    return result


async def test_parallel_refreshes_never_fork_the_family(harness: Harness) -> None:
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    family = await family_of(harness, tokens["refresh_token"])

    first = await refresh_race(harness, world, tokens["refresh_token"])
    digest = harness.platform.keyring.token_digest
    assert await live_refresh_digests(harness, family) == [digest(first["refresh_token"])]
    assert await customer_status(harness, world, first["access_token"]) == 0

    # A second round on the new token behaves the same and moves the family on.
    second = await refresh_race(harness, world, first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"]
    assert await live_refresh_digests(harness, family) == [digest(second["refresh_token"])]
    assert await customer_status(harness, world, second["access_token"]) == 0


async def test_race_of_an_older_generation_revokes_the_family(harness: Harness) -> None:
    """The original token is two generations old: no leeway, theft, family revoked."""
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    family = await family_of(harness, tokens["refresh_token"])
    first = await refresh_race(harness, world, tokens["refresh_token"])
    second = await refresh_race(harness, world, first["refresh_token"])

    responses = await asyncio.gather(*(harness.refresh(world, tokens["refresh_token"]) for _ in range(RACERS)))
    assert codes(responses) == [40006] * RACERS
    assert await live_refresh_digests(harness, family) == []
    assert await customer_status(harness, world, second["access_token"]) == 40102
    assert (await harness.refresh(world, second["refresh_token"])).json()["code"] == 40006


# ----------------------------------------------------- two nodes, one database


@pytest.fixture
async def second_node(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another server process's worth of state (own caches, own writer) on the same database."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.mark.sql  # two nodes on one database: each memory:// app has its own
async def test_code_and_refresh_races_across_two_nodes(harness: Harness, second_node: httpx.AsyncClient) -> None:
    """SPEC §7: a code is redeemable once on any node; a refresh token rotates once."""
    world = await harness.world()
    code = await harness.code(world)
    form = dict(app_id=world.app_id, secret=world.secret, code=code, grant_type="authorization_code")
    nodes = [harness.client, second_node] * (RACERS // 2)
    responses = await asyncio.gather(*(node.post("/oauth/access_token", data=form) for node in nodes))
    assert codes(responses) == [0] + [40006] * (RACERS - 1)

    tokens = await harness.user_tokens(world)
    family = await family_of(harness, tokens["refresh_token"])
    form = dict(app_id=world.app_id, refresh_token=tokens["refresh_token"], grant_type="refresh_code")
    responses = await asyncio.gather(*(node.post("/oauth/refresh_token", data=form) for node in nodes))
    bodies = [r.json() for r in responses]
    assert [b["code"] for b in bodies] == [0] * RACERS, bodies
    assert len({b["result"]["refresh_token"] for b in bodies}) == 1
    assert len(await live_refresh_digests(harness, family)) == 1
