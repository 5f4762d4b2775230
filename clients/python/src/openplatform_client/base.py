"""What the sync and async clients share: configuration, connect, state checks, signatures."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from openplatform_client import protocol, signing
from openplatform_client.errors import StateMismatch, ValidationError
from openplatform_client.models import Launch, WebhookEvent

DEFAULT_TIMEOUT = 10.0
# Refresh this long before expiry (capped at a quarter of the token's lifetime, see Token.due).
DEFAULT_REFRESH_MARGIN = 60.0
USER_AGENT = "openplatform-python-sdk/1"
# Idle pooled connections are dropped after 2 s, before common server keep-alive timeouts
# (uvicorn: 5 s), so a request is not written to a connection the server is closing.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=2.0)
# Requests sent again after a network failure (RFC 9110 §9.2.2: safe to repeat). Connection
# failures (nothing was sent) are retried for every method by the transport.
RETRIED_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class CodeExchange:
    """A checked callback: what to send to ``/oauth/access_token`` and whom the token is for."""

    customer_id: str | None
    xspe: str | None
    redirect_uri: str | None
    verifier: str | None


def checked_base_url(base_url: str) -> str:
    """The server's address, such as ``https://open.example.com``, without a trailing slash.

    Checked when the client is made, so a typo is a configuration error at once (a
    ``ValidationError``, 40001, ``field`` "base_url") rather than a network failure at
    the first call: an absolute http(s) URL with a host, and no query or fragment.
    """
    try:
        parts = urlsplit(base_url.strip())
        usable = parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query and not parts.fragment
    except ValueError:  # an unbalanced IPv6 bracket, a bad port
        usable = False
    if not usable:
        raise ValidationError(
            f"base_url must be the server's absolute http(s) URL, such as https://open.example.com; got {base_url!r}.",
            field="base_url",
        )
    return base_url.strip().rstrip("/")


class ClientBase:
    def __init__(
        self,
        app_id: str,
        secret: str,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        pkce: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not app_id or not secret or not base_url:
            raise ValidationError("app_id, secret and base_url are required.")
        self.app_id = app_id
        self.secret = secret
        self.base_url = checked_base_url(base_url)
        self.timeout = timeout
        self.refresh_margin = refresh_margin
        self.pkce = pkce
        self.clock = clock
        self._pending = protocol.PendingStates(clock)

    def _http_options(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "headers": {"User-Agent": USER_AGENT}}

    def __repr__(self) -> str:  # the secret never shows up in logs or tracebacks
        return f"{type(self).__name__}(app_id={self.app_id!r}, base_url={self.base_url!r})"

    def connect_url(
        self,
        *,
        xspe: str,
        customer_id: str,
        redirect_uri: str,
        scope: str = "install_login",
        state: str | None = None,
    ) -> tuple[str, str]:
        """SPEC §2.1: the URL to send the customer's browser to, and the state to keep.

        Keep the state where the callback can check it (a signed cookie, the
        session); this client also remembers it, with the customer, for
        ``exchange_code`` in the same process. ``customer_id`` is required
        (``/oauth/connect`` issues a code for one customer): None or an empty id
        raises ``CustomerIdRequired`` — for an SPE-wide launch, pick one of
        ``customers.list(xspe=launch.xspe)``.
        """
        customer_id = protocol.required_customer_id(customer_id)
        state = state or protocol.new_state()
        verifier = protocol.pkce_verifier(self.secret, state) if self.pkce else None
        params = {"redirect_uri": redirect_uri, "scope": scope, "xspe": xspe, "customer_id": customer_id}
        self._pending.add(state, xspe, customer_id, redirect_uri)
        return protocol.connect_url(self.base_url, self.app_id, params, state, verifier), state

    def _check_callback(
        self,
        state: str | None,
        expected_state: str | None,
        customer_id: str | None,
        xspe: str | None,
        redirect_uri: str | None,
    ) -> CodeExchange:
        """RFC 6749 §10.12: the callback's state must be one this app issued."""
        pending = self._pending.pop(state) if state else None
        expected = expected_state if expected_state is not None else (state if pending else None)
        if not state or expected is None or not hmac.compare_digest(state.encode(), expected.encode()):
            raise StateMismatch("The state of the callback does not match the one issued.", field="state")
        return CodeExchange(
            customer_id=customer_id or (pending.customer_id if pending else None),
            xspe=xspe or (pending.xspe if pending else None),
            redirect_uri=redirect_uri or (pending.redirect_uri if pending else None),
            verifier=protocol.pkce_verifier(self.secret, state) if self.pkce else None,
        )

    def _credentials(self, token: str) -> dict[str, str]:
        return protocol.credentials_form(self.app_id, self.secret, token)

    def _app_form(self) -> dict[str, str]:
        return protocol.app_token_form(self.app_id, self.secret)

    def verify_launch(self, params: Mapping[str, str]) -> Launch:
        """Check a signed launch (the query of a request to the app's host_url)."""
        return signing.launch_from(self.app_id, self.secret, params, self.clock())

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Check an install/uninstall notification; answer ``{"code": 0}`` once handled."""
        return signing.webhook_from(self.app_id, self.secret, body, headers, self.clock())
