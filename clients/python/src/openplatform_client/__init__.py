"""``openplatform_client``: the Python SDK for apps on an openplatform server (SPEC §6, §11).

The distribution is ``openplatform-client`` (clients/python); it depends on httpx only.

    from openplatform_client import AppClient

    client = AppClient(APP_ID, SECRET, "https://open.example.com")
    url, state = client.connect_url(xspe=xspe, customer_id=customer_id, redirect_uri=CALLBACK)
    # ... the browser comes back to CALLBACK?code=…&state=…
    token = client.exchange_code(code, state=state_from_query, expected_state=state)
    sites = client.as_customer(token.customer_id).sites.list()
    customers = client.customers.list()          # with the app token

The guide is docs/sdk.md.
"""

from openplatform_client.async_client import AsyncAppClient
from openplatform_client.errors import (
    AccessDenied,
    Conflict,
    CustomerIdRequired,
    InsufficientScope,
    InvalidClientError,
    InvalidGrantError,
    InvalidRedirectUriError,
    InvalidScopeError,
    InvalidSignature,
    InvalidTokenError,
    IpNotAllowed,
    MethodNotAllowed,
    NotFound,
    OpenPlatformError,
    RateLimited,
    ReauthorizationRequired,
    RequestHeadersTooLarge,
    RequestTimeout,
    ServerError,
    ServiceUnavailable,
    StateMismatch,
    TransportError,
    UnsupportedGrantType,
    UnsupportedResponseType,
    ValidationError,
)
from openplatform_client.models import Customer, Launch, Page, Site, Token, WebhookEvent
from openplatform_client.sync_client import AppClient
from openplatform_client.tokens import AsyncTokenStore, InMemoryTokenStore, TokenStore

__version__ = "0.1.0"
WEBHOOK_ACK = {"code": 0}  # what a webhook receiver answers once it has handled the event

__all__ = [
    "AccessDenied", "AppClient", "AsyncAppClient", "AsyncTokenStore", "Conflict", "Customer", "CustomerIdRequired",
    "InMemoryTokenStore", "InsufficientScope", "InvalidClientError", "InvalidGrantError",
    "InvalidRedirectUriError", "InvalidScopeError", "InvalidSignature", "InvalidTokenError", "IpNotAllowed",
    "Launch", "MethodNotAllowed", "NotFound", "OpenPlatformError", "Page", "RateLimited",
    "ReauthorizationRequired", "RequestHeadersTooLarge", "RequestTimeout", "ServerError", "ServiceUnavailable",
    "Site", "StateMismatch", "Token", "TokenStore", "TransportError", "UnsupportedGrantType", "UnsupportedResponseType",
    "ValidationError", "WEBHOOK_ACK", "WebhookEvent",
]  # fmt: skip
