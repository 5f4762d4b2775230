"""Rate limits in Redis hold across nodes; Redis down means 50301, not unlimited."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from openplatform.config import Settings
from openplatform.web.app import create_app
from tests.conftest import REDIS_URL, Harness, need, port_open


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    need(port_open("127.0.0.1", 6379), "Redis is not reachable on 127.0.0.1:6379")
    return {"redis_url": REDIS_URL, "rate_limits": "ip=3/60,app=1000/60,bad_secret=2/300"}


@pytest.fixture
async def second_node(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Another server process's worth of app on the same database and Redis."""
    app = create_app(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield app  # type: ignore[misc]


def random_ip() -> str:
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


async def post_token(client: httpx.AsyncClient, app_id: str, secret: str) -> httpx.Response:
    data = {"app_id": app_id, "secret": secret, "grant_type": "client_credential"}
    return await client.post("/oauth/credit/token", data=data)


@pytest.mark.sql  # two nodes on one database: each memory:// node would have its own
async def test_ip_limit_is_shared_by_two_nodes(harness: Harness, second_node: Any) -> None:
    world = await harness.world()
    ip = random_ip()
    node_b = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=second_node, client=(ip, 40000)), base_url="http://testserver"
    )
    async with harness.client_from(ip) as node_a, node_b:
        answers = [await post_token(c, world.app_id, world.secret) for c in (node_a, node_b, node_a)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        limited = await post_token(node_b, world.app_id, world.secret)
    assert limited.status_code == 429
    assert limited.json()["code"] == 42901
    assert int(limited.headers["retry-after"]) >= 1


@pytest.mark.sql  # two nodes on one database: each memory:// node would have its own
async def test_bad_secret_lockout_is_shared(harness: Harness, second_node: Any) -> None:
    world = await harness.world()
    ip = random_ip()
    node_b = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=second_node, client=(ip, 40000)), base_url="http://testserver"
    )
    async with harness.client_from(ip) as node_a, node_b:
        assert (await post_token(node_a, world.app_id, "wrong")).json()["code"] == 40101
        assert (await post_token(node_b, world.app_id, "wrong")).json()["code"] == 40101
        locked = await post_token(node_a, world.app_id, world.secret)
        assert locked.json()["code"] == 42901
    async with harness.client_from(random_ip()) as elsewhere:
        assert (await post_token(elsewhere, world.app_id, world.secret)).status_code == 200


REDIS_DOWN = {"redis_url": "redis://127.0.0.1:1/0", "rate_limits": "default"}


@pytest.mark.parametrize("settings_overrides", [REDIS_DOWN])
async def test_redis_down_answers_503(harness: Harness) -> None:
    world = await harness.world()
    response = await post_token(harness.client, world.app_id, world.secret)
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == 50301 and body["error"] == "temporarily_unavailable"
    assert "Traceback" not in response.text
