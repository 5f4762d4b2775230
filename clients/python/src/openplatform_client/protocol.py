"""The wire side of the SDK without I/O: request bodies, envelopes, the connect URL.

Shared by the sync and async clients, which only add sending and locking.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

import httpx

from openplatform_client.errors import (
    CustomerIdRequired,
    OpenPlatformError,
    ReauthorizationRequired,
    ServerError,
    from_envelope,
)
from openplatform_client.models import Token
from openplatform_client.signing import derived_key

T = TypeVar("T")

INVALID_TOKEN = 40102
PENDING_TTL = 600.0  # the longest code lifetime the server allows (SPEC §2.1)
PENDING_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One Open API call: what to send, with whose token, and how to read the result.

    ``customer_id`` None means the app token; a customer id means that customer's user token.
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    customer_id: str | None = None
    params: dict[str, str | int] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def required_customer_id(customer_id: object, parameter: str = "customer_id") -> str:
    """``customer_id`` itself when it is a non-blank string, else ``CustomerIdRequired``.

    Guards every place a customer id goes into a URL path, a connect URL or a
    token-store key: None would otherwise travel as ``/api/spe/customer/None``, or
    silently stand for the app token.
    """
    if isinstance(customer_id, str) and customer_id.strip():
        return customer_id
    raise CustomerIdRequired(
        f"{parameter} is required (got {customer_id!r}). An app opened for a whole SPE has no customer "
        "(launch.customer_id is None): list the SPE's customers with client.customers.list(xspe=launch.xspe) "
        "and pick one, or call the SPE-level APIs with the app token.",
        field=parameter,
    )


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The decoded envelope; a non-envelope answer (a proxy's 502 page) becomes ServerError."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("code"), int):
        raise ServerError(f"HTTP {response.status_code} without an openplatform envelope.", status=response.status_code)
    return body


def is_invalid_token(body: Mapping[str, Any]) -> bool:
    return body.get("code") == INVALID_TOKEN


def result_of(response: httpx.Response, body: Mapping[str, Any] | None = None) -> Any:
    """The ``result`` of a success envelope, or the typed error (only ``code`` decides, SPEC §2)."""
    body = envelope(response) if body is None else body
    if body["code"] != 0:
        raise from_envelope(body, response.status_code, response.headers)
    return body.get("result")


def token_from(result: Mapping[str, Any], sent_at: float, customer_id: str | None, xspe: str | None) -> Token:
    expires_in = int(result.get("expires_in", 0))
    return Token(
        access_token=str(result["access_token"]), expires_in=expires_in, expires_at=sent_at + expires_in,
        refresh_token=result.get("refresh_token"), scope=result.get("scope"),
        customer_id=customer_id, xspe=xspe,
    )  # fmt: skip


# ------------------------------------------------------------ token requests


def app_token_form(app_id: str, secret: str) -> dict[str, str]:
    return {"app_id": app_id, "secret": secret, "grant_type": "client_credential"}


def refresh_form(app_id: str, secret: str, refresh_token: str) -> dict[str, str]:
    # The secret is optional on this endpoint (SPEC §2.3) but verified when sent;
    # sending it keeps working on servers that require it.
    return {"app_id": app_id, "secret": secret, "refresh_token": refresh_token, "grant_type": "refresh_code"}


def exchange_form(
    app_id: str, secret: str, code: str, redirect_uri: str | None, verifier: str | None
) -> dict[str, str]:
    form = {"app_id": app_id, "secret": secret, "code": code, "grant_type": "authorization_code"}
    if redirect_uri:
        form["redirect_uri"] = redirect_uri
    if verifier:
        form["code_verifier"] = verifier
    return form


def credentials_form(app_id: str, secret: str, token: str) -> dict[str, str]:
    """Body of RFC 7662 introspection and RFC 7009 revocation."""
    return {"app_id": app_id, "secret": secret, "token": token}


# ------------------------------------------------------------ connect


@dataclass(frozen=True, slots=True)
class Pending:
    """What the SDK remembers between ``connect_url`` and ``exchange_code``."""

    xspe: str
    customer_id: str
    redirect_uri: str
    created_at: float


def new_state() -> str:
    return secrets.token_urlsafe(24)


def pkce_verifier(secret: str, state: str) -> str:
    """RFC 7636 §4.1 code_verifier, derived from the state with a key only this app has.

    Deriving it (instead of storing it) keeps the flow stateless: any process of
    the app that sees the callback's state can recompute the verifier, and a code
    injected into another browser's callback fails, as PKCE intends (RFC 9700 §2.1.1).
    """
    mac = hmac.new(derived_key(secret, "pkce"), state.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2, S256."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def connect_url(base_url: str, app_id: str, params: Mapping[str, str], state: str, verifier: str | None) -> str:
    """SPEC §2.1: ``/oauth/connect`` with the documented parameters (and PKCE when enabled)."""
    query = {"app_id": app_id, "response_type": "code", **params, "state": state}
    if verifier:
        query.update(code_challenge=pkce_challenge(verifier), code_challenge_method="S256")
    return f"{base_url.rstrip('/')}/oauth/connect?{urlencode(query)}"


class PendingStates:
    """States handed out by ``connect_url``, bounded in number and age, safe across threads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._items: OrderedDict[str, Pending] = OrderedDict()
        self._lock = threading.Lock()
        self._clock = clock

    def add(self, state: str, xspe: str, customer_id: str, redirect_uri: str) -> None:
        now = self._clock()
        with self._lock:
            self._items[state] = Pending(xspe, customer_id, redirect_uri, now)
            while self._items and (
                len(self._items) > PENDING_MAX or next(iter(self._items.values())).created_at < now - PENDING_TTL
            ):
                self._items.popitem(last=False)

    def pop(self, state: str) -> Pending | None:
        with self._lock:
            pending = self._items.pop(state, None)
        if pending is None or pending.created_at < self._clock() - PENDING_TTL:
            return None
        return pending


def reauthorization(customer_id: str, refused: OpenPlatformError) -> ReauthorizationRequired:
    """The refresh was refused (revoked family, uninstall, theft detected): connect again."""
    return ReauthorizationRequired(
        f"The refresh token of customer {customer_id} was refused ({refused.msg}); "
        "send the customer through connect_url again.",
        customer_id=customer_id, code=refused.code, error=refused.error, status=refused.status,
    )  # fmt: skip
