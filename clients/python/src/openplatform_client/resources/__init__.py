"""Open API resource groups (SPEC §2.5): customers and sites, sync and async."""

from openplatform_client.resources.customers import AsyncCustomers, Customers
from openplatform_client.resources.session import AsyncCustomerSession, CustomerSession
from openplatform_client.resources.sites import AsyncCustomerSites, AsyncSites, CustomerSites, Sites

__all__ = [
    "AsyncCustomerSession", "AsyncCustomerSites", "AsyncCustomers", "AsyncSites",
    "CustomerSession", "CustomerSites", "Customers", "Sites",
]  # fmt: skip
