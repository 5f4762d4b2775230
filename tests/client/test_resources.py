"""The resource groups against a real server: pagination over 1,000 customers, CRUD of
customers and sites with the app token and the user token, and the typed errors."""

from __future__ import annotations

import asyncio

import pytest

from openplatform.client import (
    AppClient,
    AsyncAppClient,
    Conflict,
    InsufficientScope,
    NotFound,
    OpenPlatformError,
    ReauthorizationRequired,
    ValidationError,
)
from openplatform.security import new_id
from openplatform.services.admin import Admin
from tests.client.conftest import Partner, alogin, code_from, seed_partner

# A live `openplatform serve` on the database this process seeds: memory:// cannot be shared by two processes.
pytestmark = pytest.mark.sql

MANY = 1_000
BY_API = 200


async def create_many(client: AsyncAppClient, admin: Admin, xspe: str) -> set[str]:
    """BY_API customers through the Open API (POST /api/spe/customers, 50 in flight at a time),
    the rest in one transaction of the directory store, which is what the API writes to."""
    made: set[str] = set()
    for start in range(0, BY_API, 50):
        batch = range(start, min(start + 50, BY_API))
        created = await asyncio.gather(
            *(client.customers.create(f"Bulk {n:04d}", contact=f"b{n}@example.com", xspe=xspe) for n in batch)
        )
        made.update(c.customer_id for c in created)
    rest = [{"customer_id": new_id("cus_"), "name": f"Bulk {n:04d}", "contact": f"b{n}@example.com"}
            for n in range(BY_API, MANY)]  # fmt: skip
    made.update(c.customer_id for c in await admin.stores.directory.create_customers(xspe, rest))
    return made


def walk(client: AppClient, xspe: str) -> list[str]:
    return [c.customer_id for c in client.customers.iter(xspe=xspe, page_size=100)]


async def test_pagination_over_a_thousand_customers(partner: Partner, admin: Admin) -> None:
    async with partner.async_client() as client:
        made = await create_many(client, admin, partner.xspe)
        assert len(made) == MANY
        seen = [c.customer_id async for c in client.customers.iter(page_size=100)]
        first = await client.customers.list(page=1, page_size=100)
        last = await client.customers.list(page=11, page_size=100)
        bulk = await client.customers.list(name="bulk 09", page_size=100)  # name filter: case-insensitive substring
    assert len(seen) == len(set(seen)) == MANY + len(partner.customer_ids)
    assert made <= set(seen)
    assert (first.total, len(first.items), first.has_next) == (MANY + 3, 100, True)
    assert (len(last.items), last.has_next) == (3, False)
    assert bulk.total == 100 and all(c.name.startswith("Bulk 09") for c in bulk.items)
    with partner.sync_client() as sync:  # the sync iterator, in a thread (it blocks)
        assert await asyncio.to_thread(walk, sync, partner.xspe) == seen


async def test_customers_and_sites_crud(partner: Partner, admin: Admin) -> None:
    async with partner.async_client() as client:
        customer = await client.customers.create("Acme", contact="ops@acme.example")
        assert (customer.xspe, customer.version) == (partner.xspe, 1)
        renamed = await client.customers.update(customer.customer_id, name="Acme Ltd", version=1)
        assert (renamed.name, renamed.version) == ("Acme Ltd", 2)
        with pytest.raises(Conflict) as stale:  # optimistic concurrency: a stale version is refused
            await client.customers.update(customer.customer_id, name="Acme plc", version=1)
        assert (stale.value.code, stale.value.error, stale.value.status) == (40901, "conflict", 409)
        with pytest.raises(ValidationError) as invalid:
            await client.sites.create(customer.customer_id, "Shop", "not a hostname")
        assert (invalid.value.code, invalid.value.field) == (40001, "domain")

        site = await client.sites.create(customer.customer_id, "Shop", "shop.acme.example")
        assert (await client.sites.get(customer.customer_id, site.site_id)).domain == "shop.acme.example"
        paused = await client.sites.update(customer.customer_id, site.site_id, status="paused", version=site.version)
        assert paused.status == "paused"
        assert [s.site_id async for s in client.sites.iter(customer.customer_id)] == [site.site_id]
        await client.customers.delete(customer.customer_id)  # its sites go with it
        with pytest.raises(NotFound):
            await client.customers.get(customer.customer_id)
        with pytest.raises(NotFound):
            await client.sites.get(customer.customer_id, site.site_id)

        other = await seed_partner(admin, partner.base_url, customers=1)  # another SPE, another app
        with pytest.raises(NotFound) as hidden:  # outside the token's reach: 404, never 403
            await client.customers.get(other.customer_id)
        assert isinstance(hidden.value, OpenPlatformError) and hidden.value.code == 40401


async def test_user_tokens(partner: Partner) -> None:
    async with partner.async_client() as client:
        await alogin(client, partner)
        me = client.as_customer(partner.customer_id)
        assert (await me.get()).name == "Customer 1"
        site = await me.sites.create("Blog", "blog.one.example")
        assert [s.site_id for s in (await me.sites.list()).items] == [site.site_id]
        updated = await me.sites.update(site.site_id, name="Journal")
        assert (await client.sites.get(partner.customer_id, site.site_id)).name == updated.name == "Journal"
        await me.sites.delete(site.site_id)
        assert (await me.sites.list()).total == 0

    # The connect URL made by one process, the callback handled by another (state kept in a cookie):
    # the customer is learned from the server (RFC 7662); install_login alone cannot write sites.
    second = partner.customer_ids[1]
    async with partner.async_client() as one, partner.async_client() as other:
        url, kept = one.connect_url(xspe=partner.xspe, customer_id=second, redirect_uri=partner.redirect_uri)
        code, state = await asyncio.to_thread(code_from, url)
        token = await other.exchange_code(code, state=state, expected_state=kept)
        assert (token.customer_id, token.xspe, token.scope) == (second, partner.xspe, "install_login")
        assert (await other.as_customer(second).get()).customer_id == second
        with pytest.raises(InsufficientScope) as scope:
            await other.as_customer(second).sites.create("X", "x.example")
        assert (scope.value.code, scope.value.status) == (40303, 403)

        await other.revoke(second)  # RFC 7009: the whole family ends, and the SDK forgets it
        assert token.refresh_token is not None
        assert (await other.introspect(token.refresh_token)) == {"active": False}
        with pytest.raises(ReauthorizationRequired):
            await other.as_customer(second).get()
