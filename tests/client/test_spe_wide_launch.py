"""An app opened for a whole SPE (issue 13, item 3): ``launch.customer_id`` is None.

Every SDK method that puts a customer id into a URL path, a connect URL or a
token-store key refuses None, "" and blanks with ``CustomerIdRequired`` (a
``ValidationError`` and a ``ValueError``, ``field`` "customer_id") before sending
anything — before, ``client.customers.get(None)`` asked the server for
``/api/spe/customer/None``. What docs/sdk.md says to do instead works against a
real server: list the SPE's customers with the app token, then connect one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from openplatform.client import (
    AppClient,
    CustomerIdRequired,
    OpenPlatformError,
    ValidationError,
)
from openplatform.client.signing import sign_launch
from tests.client.conftest import USER_SCOPE, Partner, code_from

# A live `openplatform serve` on the database this process seeds: memory:// cannot be shared by two processes.
pytestmark = pytest.mark.sql

MISSING: list[Any] = [None, "", "   "]

Call = Callable[[Any, Any], Any]  # (client, customer id) -> what the call gives (the async client's: awaitables)

# The calls that send a request, on both clients (the async client's are awaited).
REQUEST_CALLS: dict[str, Call] = {
    "customers.get": lambda c, cid: c.customers.get(cid),
    "customers.update": lambda c, cid: c.customers.update(cid, name="x"),
    "customers.delete": lambda c, cid: c.customers.delete(cid),
    "sites.list": lambda c, cid: c.sites.list(cid),
    "sites.get": lambda c, cid: c.sites.get(cid, "site_1"),
    "sites.create": lambda c, cid: c.sites.create(cid, "Shop", "shop.example.com"),
    "sites.update": lambda c, cid: c.sites.update(cid, "site_1", name="x"),
    "sites.delete": lambda c, cid: c.sites.delete(cid, "site_1"),
    "user_token": lambda c, cid: c.user_token(cid),
    "refresh": lambda c, cid: c.refresh(cid),
    "forget": lambda c, cid: c.forget(cid),
    "revoke": lambda c, cid: c.revoke(cid),
}
# The calls without I/O: both clients refuse at once, the async one without an await.
LOCAL_CALLS: dict[str, Call] = {
    "sites.iter": lambda c, cid: c.sites.iter(cid),
    "as_customer": lambda c, cid: c.as_customer(cid),
    "connect_url": lambda c, cid: c.connect_url(xspe="spe_1", customer_id=cid, redirect_uri="http://localhost:9000/cb"),
}


class Counted:
    """A real httpx client that counts the requests it sends (for "before any request")."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def hook(self, request: httpx.Request) -> None:
        self.sent.append(f"{request.method} {request.url.path}")

    async def ahook(self, request: httpx.Request) -> None:
        self.hook(request)


def spe_wide_launch(partner: Partner) -> dict[str, str]:
    """The query the portal sends to the app's host_url when opened for the whole SPE."""
    return sign_launch(partner.secret, partner.app_id, partner.xspe, None)


def refused(error: CustomerIdRequired, given: object) -> None:
    assert isinstance(error, ValidationError) and isinstance(error, ValueError)
    assert isinstance(error, OpenPlatformError)
    assert (error.code, error.error, error.field, error.status) == (40001, "invalid_request", "customer_id", None)
    assert f"customer_id is required (got {given!r})" in error.msg
    assert "client.customers.list(xspe=launch.xspe)" in error.msg  # says what to do instead


@pytest.fixture
def counted_sync(partner: Partner) -> Iterator[tuple[AppClient, Counted]]:
    counted = Counted()
    with httpx.Client(event_hooks={"request": [counted.hook]}) as http:
        with partner.sync_client(http_client=http) as client:
            yield client, counted


def test_sync_client_refuses_a_missing_customer_before_any_request(counted_sync: tuple[AppClient, Counted]) -> None:
    client, counted = counted_sync
    for call in [*REQUEST_CALLS.values(), *LOCAL_CALLS.values()]:
        for given in MISSING:
            with pytest.raises(CustomerIdRequired) as caught:
                call(client, given)
            refused(caught.value, given)
    assert counted.sent == []


async def test_async_client_refuses_a_missing_customer_before_any_request(partner: Partner) -> None:
    counted = Counted()
    async with httpx.AsyncClient(event_hooks={"request": [counted.ahook]}) as http:
        async with partner.async_client(http_client=http) as client:
            for given in MISSING:
                for call in REQUEST_CALLS.values():
                    with pytest.raises(CustomerIdRequired) as caught:
                        await call(client, given)
                    refused(caught.value, given)
                for call in LOCAL_CALLS.values():
                    with pytest.raises(CustomerIdRequired) as caught:
                        call(client, given)
                    refused(caught.value, given)
    assert counted.sent == []


def test_request_with_an_empty_customer_is_refused_and_none_means_the_app_token(
    counted_sync: tuple[AppClient, Counted], partner: Partner
) -> None:
    client, counted = counted_sync
    with pytest.raises(CustomerIdRequired):
        client.request("GET", "/api/specp/sites", customer_id="")
    assert counted.sent == []
    page = client.request("GET", "/api/spe/customers", customer_id=None, params={"xspe": partner.xspe})
    assert page["total"] == len(partner.customer_ids)


def test_spe_wide_launch_lists_the_customers_then_connects_one(
    counted_sync: tuple[AppClient, Counted], partner: Partner
) -> None:
    """docs/sdk.md §3: an SPE-wide launch has no customer; list the SPE's, pick one, connect it."""
    client, counted = counted_sync
    launch = client.verify_launch(spe_wide_launch(partner))
    assert (launch.xspe, launch.customer_id) == (partner.xspe, None)
    with pytest.raises(CustomerIdRequired):
        client.customers.get(launch.customer_id)  # type: ignore[arg-type]
    assert counted.sent == []

    customers = client.customers.list(xspe=launch.xspe)  # the app token reaches the whole SPE
    assert sorted(c.customer_id for c in customers.items) == sorted(partner.customer_ids)
    picked = customers.items[0].customer_id
    url, _state = client.connect_url(
        xspe=launch.xspe, customer_id=picked, redirect_uri=partner.redirect_uri, scope=USER_SCOPE
    )
    code, state = code_from(url)
    token = client.exchange_code(code, state=state)
    assert token.customer_id == picked
    assert client.as_customer(picked).get().customer_id == picked


async def test_async_spe_wide_launch_lists_the_customers(partner: Partner) -> None:
    async with partner.async_client() as client:
        launch = client.verify_launch(spe_wide_launch(partner))
        assert launch.customer_id is None
        names = [c.customer_id async for c in client.customers.iter(xspe=launch.xspe)]
        assert sorted(names) == sorted(partner.customer_ids)
        customer = await client.customers.get(names[0])
        assert customer.xspe == partner.xspe


def test_the_guides_say_what_to_do_with_an_spe_wide_launch() -> None:
    """docs/sdk.md and docs/launch.md show the calls the tests above make, and name the refusal."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    guide, launch = (docs / "sdk.md").read_text(), (docs / "launch.md").read_text()
    for text in (guide, launch):
        assert "client.customers.list(xspe=launch.xspe)" in text and "CustomerIdRequired" in text
    assert "client.customers.list({ xspe: launch.xspe })" in guide
    assert "### A launch for the whole SPE" in launch and "GET /api/spe/customers?xspe=" in launch
