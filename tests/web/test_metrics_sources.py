"""Where the metrics beyond requests are fed (``web/metrics.py`` lists them): cache lookups,
revocation lag by poll and by Redis fan-out, the webhook backlog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from openplatform.config import Settings
from openplatform.runtime import build_admin
from openplatform.services.webhooks import BACKLOG_SECONDS, MAX_ATTEMPTS, WebhookWorker
from openplatform.web.app import create_app
from tests.conftest import REDIS_URL, Harness, need, port_open


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def lookups(cache: str) -> tuple[float, float]:
    return (value("openplatform_cache_lookups_total", cache=cache, result="hit"),
            value("openplatform_cache_lookups_total", cache=cache, result="miss"))  # fmt: skip


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The poller, a task on the test's event loop, re-applies the invalidation records of a world's
    own creation (already applied here when they were announced) on its first round after them:
    every 0.1 s, that round could land between two lookups and drop the cached app, a miss instead
    of a hit (seen under load, alone or after tests/core/test_grants_memory.py). Here its rounds are
    as rare as the setting allows (none during a test as a rule), and the tests poll themselves."""
    return {"invalidation_poll_seconds": 5.0}


async def test_cache_hits_and_misses_are_counted(harness: Harness) -> None:
    world = await harness.world()
    store = harness.platform.store
    await harness.wait_for_invalidation()  # the world's records, applied once and for all: a round of
    # the poller finds nothing new then, and drops nothing (the catch-up the poller's timing gave or not)
    store.report_lookups()
    hits, misses = lookups("app")
    store.apps.clear()
    await harness.app_token(world)  # looks the app up: a miss, then it is cached
    await harness.wait_for_invalidation()  # a round that finds nothing new drops nothing
    await harness.app_token(world)  # a hit
    store.report_lookups()
    after_hits, after_misses = lookups("app")
    assert after_misses - misses >= 1 and after_hits - hits >= 1
    assert (store.apps.hits, store.apps.misses) == (0, 0)  # reported, so counted once


async def test_the_poller_observes_how_old_each_invalidation_is(harness: Harness) -> None:
    world = await harness.world()
    await harness.wait_for_invalidation()  # the world's own records, observed before counting
    before = value("openplatform_revocation_lag_seconds_count", path="poll")
    await harness.admin.set_status(world.app_id, "suspended")  # a record the poller has not seen
    await harness.wait_for_invalidation()
    assert value("openplatform_revocation_lag_seconds_count", path="poll") >= before + 1
    assert value("openplatform_revocation_lag_seconds_bucket", path="poll", le="+Inf") >= before + 1


@pytest.fixture
async def redis_settings(settings: Settings) -> Settings:
    need(port_open("127.0.0.1", 6379), "Redis is not reachable on 127.0.0.1:6379")
    return settings.model_copy(update={"redis_url": REDIS_URL, "invalidation_poll_seconds": 5.0})


@pytest.fixture
async def two_nodes(redis_settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    first, second = create_app(redis_settings), create_app(redis_settings)
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://t") for a in (first, second)
        ]
        async with clients[0], clients[1]:
            await asyncio.sleep(0.2)  # let the subscriptions start
            yield clients[0], clients[1]


@pytest.mark.sql  # two nodes and an admin on one database: each memory:// app has its own
async def test_a_fanned_out_invalidation_is_observed_by_the_other_node(
    redis_settings: Settings, two_nodes: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    first, _second = two_nodes
    admin = build_admin(redis_settings)
    try:
        spe = await admin.create_spe("Lag SPE")
        await admin.create_customer(spe.xspe, "Lag customer")
        app, secret = await admin.create_app("Lag App", "https://app.example.com/", ["customer:read"])
        await admin.install(app.app_id, xspe=spe.xspe)
    finally:
        await admin.db.close()
    issued = await first.post("/oauth/credit/token", data={"grant_type": "client_credentials", "app_id": app.app_id,
                                                           "secret": secret})  # fmt: skip
    token = issued.json()["result"]["access_token"]
    before = value("openplatform_revocation_lag_seconds_count", path="fanout")
    revoked = await first.post("/oauth/revoke", data={"app_id": app.app_id, "secret": secret, "token": token})
    assert revoked.json()["code"] == 0
    for _ in range(100):  # well under the 5 s poll: only Redis brings it this soon
        if value("openplatform_revocation_lag_seconds_count", path="fanout") > before:
            break
        await asyncio.sleep(0.02)
    assert value("openplatform_revocation_lag_seconds_count", path="fanout") == before + 1  # the other node only


async def test_the_webhook_backlog_counts_undelivered_rows_with_attempts_left(settings: Settings) -> None:
    admin = build_admin(settings)
    try:
        outbox = admin.stores.outbox
        spe = await admin.create_spe("Backlog SPE")
        app, _secret = await admin.create_app("Backlog", "https://app.example.com/",
                                              webhook_url="https://hooks.example.com/")  # fmt: skip
        customers = [await admin.create_customer(spe.xspe, f"Shop {n}") for n in range(3)]
        for customer in customers:  # an install notification each
            await admin.install(app.app_id, customer_id=customer.customer_id)
        delivered, abandoned, waiting = sorted(int(str(row["id"])) for row in await outbox.list(app.app_id))
        await outbox.delivered(delivered, time.time())
        await outbox.failed(waiting, "503", retry_at=time.time() + 3600)  # waits to retry: not due now
        now = time.time() + 60
        for _ in range(MAX_ATTEMPTS):  # every attempt of ``abandoned`` used up
            claimed = await outbox.claim(now, 0.0, MAX_ATTEMPTS)
            assert claimed is not None and claimed.id == abandoned
        assert await outbox.claim(now, 0.0, MAX_ATTEMPTS) is None
        worker = WebhookWorker(admin, 1.0)
        await worker.count_backlog(now=1000.0)
        assert value("openplatform_webhook_backlog") == 1
        await admin.uninstall(app.app_id, customer_id=customers[0].customer_id)  # an uninstall notification
        await worker.count_backlog(now=1000.0 + BACKLOG_SECONDS / 2)  # too soon: one COUNT per BACKLOG_SECONDS
        assert value("openplatform_webhook_backlog") == 1
        await worker.count_backlog(now=1000.0 + BACKLOG_SECONDS)
        assert value("openplatform_webhook_backlog") == 2
    finally:
        await admin.db.close()
