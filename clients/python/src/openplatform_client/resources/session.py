"""``client.as_customer(customer_id)``: calls made with that customer's user token."""

from __future__ import annotations

from openplatform_client.models import Customer
from openplatform_client.protocol import required_customer_id
from openplatform_client.resources import customers
from openplatform_client.resources.pagination import AsyncCaller, Caller
from openplatform_client.resources.sites import AsyncCustomerSites, CustomerSites


class CustomerSession:
    """One customer's view: its own record and its sites, through its user token.

    The token comes from ``exchange_code`` and is refreshed by the client as
    needed; without one, calls raise ``ReauthorizationRequired``.
    """

    def __init__(self, client: Caller, customer_id: str) -> None:
        self._client = client
        self.customer_id = required_customer_id(customer_id)
        self.sites = CustomerSites(client, customer_id)

    def get(self) -> Customer:
        """The customer itself (``install_login`` is enough)."""
        return self._client.call(customers.get_call(self.customer_id, self.customer_id))


class AsyncCustomerSession:
    def __init__(self, client: AsyncCaller, customer_id: str) -> None:
        self._client = client
        self.customer_id = required_customer_id(customer_id)
        self.sites = AsyncCustomerSites(client, customer_id)

    async def get(self) -> Customer:
        return await self._client.call(customers.get_call(self.customer_id, self.customer_id))
