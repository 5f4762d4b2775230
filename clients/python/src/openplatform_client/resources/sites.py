"""Sites of a customer: with the app token under ``/api/spe/customer/{id}/sites``,
or with the customer's own user token under ``/api/specp/sites`` (SPEC §2.5)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

from openplatform_client.models import Page, Site
from openplatform_client.protocol import Call
from openplatform_client.resources.customers import customer_path
from openplatform_client.resources.pagination import AsyncCaller, Caller, aiterate, changes, iterate, query

PAGE = Page.parser(Site.from_api)
CUSTOMER_SIDE = "/api/specp/sites"


def _deleted(_result: Any) -> None:
    return None


def spe_side(customer_id: str) -> str:
    """The app-token side of a customer's sites; CustomerIdRequired for None or an empty id."""
    return f"{customer_path(customer_id)}/sites"


def _one(base: str, site_id: str) -> str:
    return f"{base}/{quote(site_id, safe='')}"


def list_call(base: str, token_of: str | None, status: str | None, page: int, page_size: int) -> Call[Page[Site]]:
    return Call("GET", base, PAGE, token_of, params=query(status=status, page=page, page_size=page_size))


def get_call(base: str, token_of: str | None, site_id: str) -> Call[Site]:
    return Call("GET", _one(base, site_id), Site.from_api, token_of)


def create_call(base: str, token_of: str | None, name: str, domain: str, status: str | None) -> Call[Site]:
    return Call("POST", base, Site.from_api, token_of, json=changes(name=name, domain=domain, status=status))


def update_call(base: str, token_of: str | None, site_id: str, version: int | None, **fields: str | None) -> Call[Site]:
    return Call("PUT", _one(base, site_id), Site.from_api, token_of, json=changes(**fields, version=version))


def delete_call(base: str, token_of: str | None, site_id: str) -> Call[None]:
    return Call("DELETE", _one(base, site_id), _deleted, token_of)


class Sites:
    """``client.sites``: any customer the app reaches, with the app token (``site:read|write``)."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    def list(self, customer_id: str, *, status: str | None = None, page: int = 1, page_size: int = 20) -> Page[Site]:
        return self._client.call(list_call(spe_side(customer_id), None, status, page, page_size))

    def iter(self, customer_id: str, *, status: str | None = None, page_size: int = 100) -> Iterator[Site]:
        spe_side(customer_id)  # refuse a missing customer now, not at the first page
        return iterate(lambda number: self.list(customer_id, status=status, page=number, page_size=page_size))

    def get(self, customer_id: str, site_id: str) -> Site:
        return self._client.call(get_call(spe_side(customer_id), None, site_id))

    def create(self, customer_id: str, name: str, domain: str, *, status: str | None = None) -> Site:
        return self._client.call(create_call(spe_side(customer_id), None, name, domain, status))

    def update(
        self, customer_id: str, site_id: str, *, name: str | None = None, domain: str | None = None,
        status: str | None = None, version: int | None = None,
    ) -> Site:  # fmt: skip
        call = update_call(spe_side(customer_id), None, site_id, version, name=name, domain=domain, status=status)
        return self._client.call(call)

    def delete(self, customer_id: str, site_id: str) -> None:
        self._client.call(delete_call(spe_side(customer_id), None, site_id))


class CustomerSites:
    """``client.as_customer(id).sites``: one customer's sites, with that customer's user token."""

    def __init__(self, client: Caller, customer_id: str) -> None:
        self._client = client
        self.customer_id = customer_id

    def list(self, *, status: str | None = None, page: int = 1, page_size: int = 20) -> Page[Site]:
        return self._client.call(list_call(CUSTOMER_SIDE, self.customer_id, status, page, page_size))

    def iter(self, *, status: str | None = None, page_size: int = 100) -> Iterator[Site]:
        return iterate(lambda number: self.list(status=status, page=number, page_size=page_size))

    def get(self, site_id: str) -> Site:
        return self._client.call(get_call(CUSTOMER_SIDE, self.customer_id, site_id))

    def create(self, name: str, domain: str, *, status: str | None = None) -> Site:
        return self._client.call(create_call(CUSTOMER_SIDE, self.customer_id, name, domain, status))

    def update(
        self, site_id: str, *, name: str | None = None, domain: str | None = None,
        status: str | None = None, version: int | None = None,
    ) -> Site:  # fmt: skip
        call = update_call(CUSTOMER_SIDE, self.customer_id, site_id, version, name=name, domain=domain, status=status)
        return self._client.call(call)

    def delete(self, site_id: str) -> None:
        self._client.call(delete_call(CUSTOMER_SIDE, self.customer_id, site_id))


class AsyncSites:
    """``AsyncAppClient.sites``: the same methods as ``Sites``, awaited."""

    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    async def list(
        self, customer_id: str, *, status: str | None = None, page: int = 1, page_size: int = 20
    ) -> Page[Site]:
        return await self._client.call(list_call(spe_side(customer_id), None, status, page, page_size))

    def iter(self, customer_id: str, *, status: str | None = None, page_size: int = 100) -> AsyncIterator[Site]:
        spe_side(customer_id)  # refuse a missing customer now, not at the first page
        return aiterate(lambda number: self.list(customer_id, status=status, page=number, page_size=page_size))

    async def get(self, customer_id: str, site_id: str) -> Site:
        return await self._client.call(get_call(spe_side(customer_id), None, site_id))

    async def create(self, customer_id: str, name: str, domain: str, *, status: str | None = None) -> Site:
        return await self._client.call(create_call(spe_side(customer_id), None, name, domain, status))

    async def update(
        self, customer_id: str, site_id: str, *, name: str | None = None, domain: str | None = None,
        status: str | None = None, version: int | None = None,
    ) -> Site:  # fmt: skip
        call = update_call(spe_side(customer_id), None, site_id, version, name=name, domain=domain, status=status)
        return await self._client.call(call)

    async def delete(self, customer_id: str, site_id: str) -> None:
        await self._client.call(delete_call(spe_side(customer_id), None, site_id))


class AsyncCustomerSites:
    """``AsyncAppClient.as_customer(id).sites``: the same methods as ``CustomerSites``, awaited."""

    def __init__(self, client: AsyncCaller, customer_id: str) -> None:
        self._client = client
        self.customer_id = customer_id

    async def list(self, *, status: str | None = None, page: int = 1, page_size: int = 20) -> Page[Site]:
        return await self._client.call(list_call(CUSTOMER_SIDE, self.customer_id, status, page, page_size))

    def iter(self, *, status: str | None = None, page_size: int = 100) -> AsyncIterator[Site]:
        return aiterate(lambda number: self.list(status=status, page=number, page_size=page_size))

    async def get(self, site_id: str) -> Site:
        return await self._client.call(get_call(CUSTOMER_SIDE, self.customer_id, site_id))

    async def create(self, name: str, domain: str, *, status: str | None = None) -> Site:
        return await self._client.call(create_call(CUSTOMER_SIDE, self.customer_id, name, domain, status))

    async def update(
        self, site_id: str, *, name: str | None = None, domain: str | None = None,
        status: str | None = None, version: int | None = None,
    ) -> Site:  # fmt: skip
        call = update_call(CUSTOMER_SIDE, self.customer_id, site_id, version, name=name, domain=domain, status=status)
        return await self._client.call(call)

    async def delete(self, site_id: str) -> None:
        await self._client.call(delete_call(CUSTOMER_SIDE, self.customer_id, site_id))
