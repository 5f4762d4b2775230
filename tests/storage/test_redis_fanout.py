"""With Redis, a revocation on one node reaches another node's cache at once,
long before that node's next poll of the invalidation log."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from openplatform.config import Settings
from openplatform.web.app import create_app
from tests.conftest import REDIS_URL, Harness, cli_env, need, port_open

# Two nodes (and the CLI) on one database: each memory:// node would have its own.
pytestmark = pytest.mark.sql


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    need(port_open("127.0.0.1", 6379), "Redis is not reachable on 127.0.0.1:6379")
    return {"redis_url": REDIS_URL, "invalidation_poll_seconds": 5.0}


@pytest.fixture
async def node_b(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            await asyncio.sleep(0.2)  # let its subscription start
            yield client


async def test_revocation_reaches_the_other_node_without_waiting_for_the_poll(
    harness: Harness, node_b: httpx.AsyncClient
) -> None:
    world = await harness.world()
    token = await harness.app_token(world)
    path = f"/api/spe/customer/{world.customer_id}"
    headers = {"Authorization": f"Bearer {token}"}
    assert (await node_b.get(path, headers=headers)).status_code == 200  # now cached on node B

    revoked = await harness.client.post(
        "/oauth/revoke", data={"app_id": world.app_id, "secret": world.secret, "token": token}
    )
    assert revoked.status_code == 200

    for _ in range(40):  # well under the 5 s poll interval
        response = await node_b.get(path, headers=headers)
        if response.status_code == 401:
            break
        await asyncio.sleep(0.05)
    assert response.status_code == 401
    assert response.json()["code"] == 40102


@pytest.mark.parametrize("command", ["uninstall", "suspend"])
async def test_a_cli_change_reaches_a_running_node_through_redis(
    harness: Harness, node_b: httpx.AsyncClient, command: str
) -> None:
    """SPEC §8: the CLI publishes what it changed, so nodes do not wait for their poll (5 s here)."""
    world = await harness.world()
    user_token = (await harness.user_tokens(world))["access_token"]
    path = f"/api/spe/customer/{world.customer_id}"
    headers = {"Authorization": f"Bearer {user_token}"}
    assert (await node_b.get(path, headers=headers)).status_code == 200  # cached on node B

    args = (
        ["uninstall", "--app-id", world.app_id, "--customer-id", world.customer_id]
        if command == "uninstall"
        else ["app", "suspend", "--app-id", world.app_id]
    )
    env = {**cli_env(harness.platform.settings), "OPENPLATFORM_REDIS_URL": REDIS_URL}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "openplatform.cli", *args], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    for _ in range(40):  # 2 s at most, well under the 5 s poll interval
        response = await node_b.get(path, headers=headers)
        if response.status_code == 401:
            break
        await asyncio.sleep(0.05)
    assert (response.status_code, response.json()["code"]) == (401, 40102)
