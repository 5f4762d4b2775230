"""Customers of the SPE(s) that installed the app (``/api/spe/customers``, app token)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

from openplatform_client.models import Customer, Page
from openplatform_client.protocol import Call, required_customer_id
from openplatform_client.resources.pagination import AsyncCaller, Caller, aiterate, changes, iterate, query

PAGE = Page.parser(Customer.from_api)


def _deleted(_result: Any) -> None:
    return None


def list_call(
    xspe: str | None, status: str | None, name: str | None, page: int, page_size: int
) -> Call[Page[Customer]]:
    params = query(xspe=xspe, status=status, name=name, page=page, page_size=page_size)
    return Call("GET", "/api/spe/customers", PAGE, params=params)


def customer_path(customer_id: str) -> str:
    """``/api/spe/customer/{id}``; CustomerIdRequired for None or an empty id."""
    return f"/api/spe/customer/{quote(required_customer_id(customer_id), safe='')}"


def get_call(customer_id: str, token_of: str | None = None) -> Call[Customer]:
    return Call("GET", customer_path(customer_id), Customer.from_api, token_of)


def create_call(name: str, contact: str | None, status: str | None, xspe: str | None) -> Call[Customer]:
    body = changes(name=name, contact=contact, status=status, xspe=xspe)
    return Call("POST", "/api/spe/customers", Customer.from_api, json=body)


def update_call(customer_id: str, version: int | None, **fields: str | None) -> Call[Customer]:
    # Optimistic concurrency: with a version, a stale write gets Conflict (40901)
    # instead of silently overwriting someone else's change.
    body = changes(**fields, version=version)
    return Call("PUT", customer_path(customer_id), Customer.from_api, json=body)


def delete_call(customer_id: str) -> Call[None]:
    return Call("DELETE", customer_path(customer_id), _deleted)


class Customers:
    """``client.customers``: scopes ``customer:read`` / ``customer:write``."""

    def __init__(self, client: Caller) -> None:
        self._client = client

    def list(
        self, *, xspe: str | None = None, status: str | None = None, name: str | None = None,
        page: int = 1, page_size: int = 20,
    ) -> Page[Customer]:  # fmt: skip
        return self._client.call(list_call(xspe, status, name, page, page_size))

    def iter(
        self,
        *,
        xspe: str | None = None,
        status: str | None = None,
        name: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Customer]:
        """Every customer, page after page."""
        return iterate(lambda number: self.list(xspe=xspe, status=status, name=name, page=number, page_size=page_size))

    def get(self, customer_id: str) -> Customer:
        return self._client.call(get_call(customer_id))

    def create(
        self, name: str, *, contact: str | None = None, status: str | None = None, xspe: str | None = None
    ) -> Customer:
        return self._client.call(create_call(name, contact, status, xspe))

    def update(
        self, customer_id: str, *, name: str | None = None, contact: str | None = None,
        status: str | None = None, version: int | None = None,
    ) -> Customer:  # fmt: skip
        return self._client.call(update_call(customer_id, version, name=name, contact=contact, status=status))

    def delete(self, customer_id: str) -> None:
        """Deletes the customer and its sites."""
        self._client.call(delete_call(customer_id))


class AsyncCustomers:
    """``AsyncAppClient.customers``: the same methods, awaited."""

    def __init__(self, client: AsyncCaller) -> None:
        self._client = client

    async def list(
        self, *, xspe: str | None = None, status: str | None = None, name: str | None = None,
        page: int = 1, page_size: int = 20,
    ) -> Page[Customer]:  # fmt: skip
        return await self._client.call(list_call(xspe, status, name, page, page_size))

    def iter(
        self,
        *,
        xspe: str | None = None,
        status: str | None = None,
        name: str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Customer]:
        """Every customer, page after page (``async for``)."""
        return aiterate(lambda number: self.list(xspe=xspe, status=status, name=name, page=number, page_size=page_size))

    async def get(self, customer_id: str) -> Customer:
        return await self._client.call(get_call(customer_id))

    async def create(
        self, name: str, *, contact: str | None = None, status: str | None = None, xspe: str | None = None
    ) -> Customer:
        return await self._client.call(create_call(name, contact, status, xspe))

    async def update(
        self, customer_id: str, *, name: str | None = None, contact: str | None = None,
        status: str | None = None, version: int | None = None,
    ) -> Customer:  # fmt: skip
        return await self._client.call(update_call(customer_id, version, name=name, contact=contact, status=status))

    async def delete(self, customer_id: str) -> None:
        """Deletes the customer and its sites."""
        await self._client.call(delete_call(customer_id))
