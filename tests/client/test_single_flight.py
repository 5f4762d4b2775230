"""Single-flight renewal against a real server: 50 concurrent calls on an expired token
cause exactly one renewal request at the server, counted there (/metrics and the audit log).

"Expired" is tested both ways it reaches an app:
- ``client_clock``: time passed; the SDK's own clock says the token is past its
  ``expires_in`` (the server issues 60 s tokens here; the client clock jumps 61 s),
  so every caller finds it due before sending anything;
- ``server_rejects``: the SDK still believes the token valid but the server answers
  40102 (what an expiry looks like when the clocks disagree); every caller gets
  40102 and none may refresh again once one has.
In both, the server has really invalidated the old access token (RFC 7009
revocation), so a caller that kept using it would fail.
The app token is checked the same way: one fetch for 50 first callers, one after a 40102.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from openplatform.client import AppClient, AsyncAppClient
from openplatform.config import Settings
from openplatform.records import AuditFilter
from openplatform.runtime import build_admin
from tests.client.conftest import Partner, alogin, login, requests_at_server, revoke_at_server

# A live `openplatform serve` on the database this process seeds: memory:// cannot be shared by two processes.
pytestmark = pytest.mark.sql

T = TypeVar("T")
CALLERS = 50
MODES = ("client_clock", "server_rejects")


class SkewableClock:
    """The app's wall clock, which the test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def in_threads(call: Callable[[], T]) -> list[T]:
    """CALLERS threads released at once, each making the call."""
    barrier = threading.Barrier(CALLERS)

    def one(_: int) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(CALLERS) as pool:
        return list(pool.map(one, range(CALLERS)))


async def audited_refreshes(settings: Settings, app_id: str) -> int:
    admin = build_admin(settings)
    try:
        for _ in range(50):  # audit rows ride on the server's next group commit
            events, _total = await admin.db.audit_page(AuditFilter(app_id, event="token.refreshed"), 500, 0)
            refreshes = sum(int(e["occurrences"]) for e in events)  # one row may count several
            if refreshes >= len(MODES):
                break
            await asyncio.sleep(0.1)
        return refreshes
    finally:
        await admin.db.close()


def threads_scenarios(partner: Partner, client: AppClient, clock: SkewableClock) -> None:
    for mode, customer_id in zip(MODES, partner.customer_ids, strict=False):
        token = login(client, partner, customer_id)
        assert token.expires_in == 60
        revoke_at_server(partner, token.access_token)
        if mode == "client_clock":
            clock.offset += 61
        before = requests_at_server(partner, "refresh_token")
        results = in_threads(client.as_customer(customer_id).get)
        assert requests_at_server(partner, "refresh_token") - before == 1, mode
        assert {c.customer_id for c in results} == {customer_id}, mode
        assert client.user_token(customer_id).access_token != token.access_token, mode


def threads_app_token(partner: Partner, client: AppClient) -> None:
    before = requests_at_server(partner, "credit_token")
    totals = in_threads(lambda: client.customers.list().total)
    first = client.app_token()
    revoke_at_server(partner, first.access_token)
    totals += in_threads(lambda: client.customers.list().total)
    assert requests_at_server(partner, "credit_token") - before == 2
    assert set(totals) == {len(partner.customer_ids)}
    assert client.app_token().access_token != first.access_token


async def test_threads_share_one_renewal(partner: Partner, settings: Settings) -> None:
    clock = SkewableClock()
    with partner.sync_client(clock=clock) as client:
        await asyncio.to_thread(threads_scenarios, partner, client, clock)
        await asyncio.to_thread(threads_app_token, partner, client)
    assert await audited_refreshes(settings, partner.app_id) == len(MODES)


async def at_server(partner: Partner, endpoint: str) -> int:
    return await asyncio.to_thread(requests_at_server, partner, endpoint)


async def tasks_scenarios(partner: Partner, client: AsyncAppClient, clock: SkewableClock) -> None:
    for mode, customer_id in zip(MODES, partner.customer_ids, strict=False):
        token = await alogin(client, partner, customer_id)
        await asyncio.to_thread(revoke_at_server, partner, token.access_token)
        if mode == "client_clock":
            clock.offset += 61
        before = await at_server(partner, "refresh_token")
        me = client.as_customer(customer_id)
        results = await asyncio.gather(*(me.get() for _ in range(CALLERS)))
        assert await at_server(partner, "refresh_token") - before == 1, mode
        assert {c.customer_id for c in results} == {customer_id}, mode


async def tasks_app_token(partner: Partner, client: AsyncAppClient) -> None:
    before = await at_server(partner, "credit_token")
    pages = await asyncio.gather(*(client.customers.list(xspe=partner.xspe) for _ in range(CALLERS)))
    first = await client.app_token()
    await asyncio.to_thread(revoke_at_server, partner, first.access_token)
    pages += await asyncio.gather(*(client.customers.list(xspe=partner.xspe) for _ in range(CALLERS)))
    assert await at_server(partner, "credit_token") - before == 2
    assert {p.total for p in pages} == {len(partner.customer_ids)}
    assert (await client.app_token()).access_token != first.access_token


async def test_tasks_share_one_renewal(partner: Partner, settings: Settings) -> None:
    clock = SkewableClock()
    async with partner.async_client(clock=clock) as client:
        await tasks_scenarios(partner, client, clock)
        await tasks_app_token(partner, client)
    assert await audited_refreshes(settings, partner.app_id) == len(MODES)
