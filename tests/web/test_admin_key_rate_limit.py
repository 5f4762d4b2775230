"""Each admin key has a rate limit on the admin API and ``/metrics`` (issue 10's attacker review).

``OPENPLATFORM_RATE_LIMITS``' ``admin`` entry (default ``admin=100/2``: 50 a second, bursts of
100), charged per key through the same limiter as the token endpoints, in Redis when one is
configured; past it 429 / 42901 with ``Retry-After``, answered before any database work but the
key's own lookup (no audit row, nothing else). On memory, SQLite and PostgreSQL; Redis shared by
two nodes on one database (SQLite and PostgreSQL only).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest

from openplatform.config import Settings
from openplatform.core.ratelimit import DEFAULTS
from openplatform.records import AuditFilter
from openplatform.services.admin_keys import AdminKeys
from openplatform.web.app import create_app
from tests.conftest import REDIS_URL, Harness, need, port_open
from tests.web.manage_support import M, admin_key, manage


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limits": "admin=3/60"}


async def audited_and_made(harness: Harness) -> tuple[int, int]:
    """How many audit events there are, and how many SPEs."""
    _page, audited = await harness.admin.db.audit_page(AuditFilter(), 1, 0)
    return audited, len(await harness.admin.db.list_spes())


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert (body["code"], body["error"], body["result"]) == (42901, "rate_limited", None)
    assert 1 <= int(response.headers["retry-after"]) <= 60


def test_the_default_is_fifty_a_second_in_bursts_of_a_hundred() -> None:
    assert DEFAULTS["admin"] == (100, 2.0)


async def test_a_key_past_its_budget_gets_429_and_nothing_is_done(harness: Harness) -> None:
    _key_id, key = await admin_key(harness, "busy")
    _other_id, other = await admin_key(harness, "calm")
    for name in ("One", "Two", "Three"):
        await manage(harness, key, "POST", "/spes", json={"name": name})
    audited, made = await audited_and_made(harness)

    for method in ("POST", "GET"):
        assert_limited(await harness.client.request(method, M + "/spes", headers=key, json={"name": "Four"}))
    assert_limited(await harness.client.get("/metrics", headers=key))  # one budget for both doors
    assert await audited_and_made(harness) == (audited, made)

    await manage(harness, other, "GET", "/spes")  # another key's budget is its own


async def test_metrics_scrapes_are_limited_per_key(harness: Harness) -> None:
    _key_id, scraper = await admin_key(harness, "prometheus")
    answers = [(await harness.client.get("/metrics", headers=scraper)).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


@pytest.mark.sql  # two nodes on one database: each memory:// app has its own
async def test_the_budget_is_shared_by_nodes_through_redis(settings: Settings) -> None:
    need(port_open("127.0.0.1", 6379), "Redis is not reachable on 127.0.0.1:6379")
    shared = settings.model_copy(update={"redis_url": REDIS_URL})
    nodes = [create_app(shared), create_app(shared)]
    async with AsyncExitStack() as stack:
        clients = []
        for node in nodes:
            await stack.enter_async_context(node.router.lifespan_context(node))
            transport = httpx.ASGITransport(app=node, client=("127.0.0.1", 40000))
            clients.append(await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url="http://n")))
        admin = nodes[0].state.admin
        created, value = await AdminKeys(admin.stores, admin.keyring).create("shared")
        key = {"Authorization": f"Bearer {value}"}
        answers = [(await clients[n % 2].get(M + "/spes", headers=key)).status_code for n in range(3)]
        assert answers == [200, 200, 200]
        assert_limited(await clients[1].get(M + "/spes", headers=key))
        assert_limited(await clients[0].get("/metrics", headers=key))
        bucket = await nodes[0].state.platform.limiter.client.exists(f"openplatform:rl:admin:{created.key_id}")
        assert bucket == 1  # the bucket lives in Redis, keyed by the key id (never the key)
