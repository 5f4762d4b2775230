"""When the platform refuses a customer's refresh token, the SDK says "re-authorise"
(ReauthorizationRequired) instead of a raw invalid_grant, and forgets the dead tokens.

Theft is the main case (SPEC §2.3): a refresh token presented again after it was
rotated, outside the server's leeway, revokes the whole family — the thief's tokens
and the app's alike.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from openplatform.client import AppClient, ReauthorizationRequired, Token
from openplatform.client.tokens import user_key
from openplatform.services.admin import Admin
from tests.client.conftest import REFRESH_LEEWAY, Partner, alogin, login, refresh_at_server, requests_at_server

# A live `openplatform serve` on the database this process seeds: memory:// cannot be shared by two processes.
pytestmark = pytest.mark.sql


def stored(client: AppClient, partner: Partner, customer_id: str) -> Token | None:
    return client.tokens.get(user_key(partner.app_id, customer_id))


def assert_reauthorization(exc: ReauthorizationRequired, customer_id: str) -> None:
    assert exc.customer_id == customer_id
    assert (exc.code, exc.error) == (40006, "invalid_grant")
    assert "connect_url" in exc.msg


def test_refresh_token_stolen(partner: Partner, sync_client: AppClient) -> None:
    customer_id = partner.customer_ids[0]
    stolen = login(sync_client, partner, customer_id).refresh_token
    assert stolen is not None
    sync_client.refresh(customer_id)  # the app rotates: the stolen token is now the previous one
    time.sleep(REFRESH_LEEWAY + 0.2)
    assert refresh_at_server(partner, stolen)["error"] == "invalid_grant"  # the thief is refused...

    with pytest.raises(ReauthorizationRequired) as caught:  # ...and the family is revoked for the app too
        sync_client.as_customer(customer_id).get()
    assert_reauthorization(caught.value, customer_id)
    assert stored(sync_client, partner, customer_id) is None

    before = requests_at_server(partner, "refresh_token")
    with pytest.raises(ReauthorizationRequired) as again:  # known locally now: no more requests
        sync_client.as_customer(customer_id).sites.list()
    assert (again.value.code, again.value.error) == (40102, "invalid_token")
    assert requests_at_server(partner, "refresh_token") == before

    # The other order: the thief rotates first, the app presents the stolen token afterwards.
    customer_id = partner.customer_ids[1]
    token = login(sync_client, partner, customer_id)
    assert token.refresh_token is not None
    theirs = refresh_at_server(partner, token.refresh_token)
    assert theirs["code"] == 0
    time.sleep(REFRESH_LEEWAY + 0.2)

    with pytest.raises(ReauthorizationRequired) as caught:
        sync_client.refresh(customer_id)
    assert_reauthorization(caught.value, customer_id)
    result = theirs["result"]
    assert isinstance(result, dict)
    assert refresh_at_server(partner, result["refresh_token"])["error"] == "invalid_grant"
    # Another customer's tokens are a different family and keep working.
    login(sync_client, partner, partner.customer_ids[2])
    assert sync_client.as_customer(partner.customer_ids[2]).get().customer_id == partner.customer_ids[2]


async def test_async_theft_and_uninstall(partner: Partner, admin: Admin) -> None:
    async with partner.async_client() as client:
        first, second = partner.customer_ids[:2]
        stolen = (await alogin(client, partner, first)).refresh_token
        assert stolen is not None
        await client.refresh(first)
        await asyncio.sleep(REFRESH_LEEWAY + 0.2)
        await asyncio.to_thread(refresh_at_server, partner, stolen)
        with pytest.raises(ReauthorizationRequired) as caught:
            await client.as_customer(first).sites.list()
        assert_reauthorization(caught.value, first)

        await alogin(client, partner, second)
        await admin.uninstall(partner.app_id, xspe=partner.xspe)  # revokes every token of the installation
        await asyncio.sleep(0.5)  # the server's caches follow the invalidation log
        with pytest.raises(ReauthorizationRequired) as gone:
            await client.as_customer(second).get()
        assert_reauthorization(gone.value, second)
