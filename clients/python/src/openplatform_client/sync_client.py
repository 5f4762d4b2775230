"""``AppClient``: the SDK over a blocking ``httpx.Client``, safe to share between threads.

Token renewal is single-flight per token: a lock per store key, and every
caller re-reads the store once it holds the lock, so however many threads find
the token due (or rejected with 40102) at once, one request renews it and the
others use its result.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx

from openplatform_client import protocol
from openplatform_client.base import LIMITS, RETRIED_METHODS, ClientBase
from openplatform_client.errors import (
    InvalidGrantError,
    ReauthorizationRequired,
    RequestTimeout,
    TransportError,
)
from openplatform_client.models import Token
from openplatform_client.protocol import Call
from openplatform_client.resources import Customers, CustomerSession, Sites
from openplatform_client.tokens import InMemoryTokenStore, TokenStore, token_key

T = TypeVar("T")


class KeyedLocks:
    """One lock per key, created on first use."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def __call__(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


class AppClient(ClientBase):
    """``AppClient(app_id, secret, base_url)`` — see docs/sdk.md."""

    def __init__(
        self,
        app_id: str,
        secret: str,
        base_url: str,
        *,
        token_store: TokenStore | None = None,
        http_client: httpx.Client | None = None,
        **options: Any,
    ) -> None:
        super().__init__(app_id, secret, base_url, **options)
        self.tokens: TokenStore = token_store if token_store is not None else InMemoryTokenStore()
        self._http = http_client or httpx.Client(
            transport=httpx.HTTPTransport(retries=1, limits=LIMITS), **self._http_options()
        )
        self._locks = KeyedLocks()
        self.customers = Customers(self)
        self.sites = Sites(self)

    def __enter__(self) -> AppClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def as_customer(self, customer_id: str) -> CustomerSession:
        return CustomerSession(self, customer_id)

    # ------------------------------------------------------------------ HTTP

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; a GET that failed on the network (not on time) is sent once more."""
        try:
            return self._send_once(method, path, **kwargs)
        except RequestTimeout:
            raise
        except TransportError:
            if method not in RETRIED_METHODS:
                raise
        return self._send_once(method, path, **kwargs)

    def _send_once(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, self.base_url + path, **kwargs)
        except httpx.TimeoutException as exc:
            raise RequestTimeout(f"{method} {path} timed out: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransportError(f"{method} {path} failed: {exc}") from exc

    def _form(self, path: str, form: Mapping[str, str], retry: bool = False) -> tuple[Any, float]:
        """POST a token endpoint form; the result and when it was sent (for expires_at).

        ``retry``: one more try after a network failure, for requests the server
        answers idempotently (a refresh retried within its leeway gets the same pair).
        """
        try:
            return self._post_once(path, form)
        except TransportError:
            if not retry:
                raise
        return self._post_once(path, form)

    def _post_once(self, path: str, form: Mapping[str, str]) -> tuple[Any, float]:
        sent_at = self.clock()
        return protocol.result_of(self._send("POST", path, data=form)), sent_at

    # ---------------------------------------------------------------- tokens

    def exchange_code(
        self,
        code: str,
        *,
        state: str | None,
        expected_state: str | None = None,
        customer_id: str | None = None,
        xspe: str | None = None,
        redirect_uri: str | None = None,
    ) -> Token:
        """SPEC §2.2: check the callback's state, trade the code for the customer's tokens, keep them.

        ``expected_state`` is the state you kept (cookie, session); it may be left
        out when this client made the connect URL. The customer is the one of
        that connect URL, or ``customer_id``, or else asked from the server (RFC 7662).
        Never retried: a code presented twice revokes its tokens.
        """
        checked = self._check_callback(state, expected_state, customer_id, xspe, redirect_uri)
        form = protocol.exchange_form(self.app_id, self.secret, code, checked.redirect_uri, checked.verifier)
        result, sent_at = self._form("/oauth/access_token", form)
        customer, spe = checked.customer_id, checked.xspe
        if customer is None:
            facts = self.introspect(str(result["access_token"]))
            customer, spe = facts.get("customer_id"), facts.get("xspe")
        token = protocol.token_from(result, sent_at, customer, spe)
        if customer:
            key = token_key(self.app_id, customer)
            with self._locks(key):  # not in the middle of a refresh of the customer's previous tokens
                self.tokens.set(key, token)
        return token

    def app_token(self) -> Token:
        """SPEC §2.4: the cached app token, fetched or renewed when due."""
        return self._current(None)

    def user_token(self, customer_id: str) -> Token:
        """The customer's access token, refreshed when due."""
        customer_id = protocol.required_customer_id(customer_id)  # None would stand for the app token
        return self._current(customer_id)

    def refresh(self, customer_id: str) -> Token:
        """Refresh the customer's tokens now (SPEC §2.3), whatever their age."""
        customer_id = protocol.required_customer_id(customer_id)  # None would stand for the app token
        key = token_key(self.app_id, customer_id)
        with self._locks(key):
            return self._renew_locked(customer_id, self.tokens.get(key))

    def forget(self, customer_id: str) -> None:
        """Drop the customer's tokens from the store (the server still knows them)."""
        customer_id = protocol.required_customer_id(customer_id)  # None would stand for the app token
        self.tokens.delete(token_key(self.app_id, customer_id))

    def revoke(self, customer_id: str) -> None:
        """RFC 7009: revoke the customer's refresh token (and with it the whole family), then forget it."""
        customer_id = protocol.required_customer_id(customer_id)  # None would stand for the app token
        token = self.tokens.get(token_key(self.app_id, customer_id))
        if token is not None and token.refresh_token:
            self._form("/oauth/revoke", self._credentials(token.refresh_token))
        self.forget(customer_id)

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: what the server knows about one of this app's tokens."""
        result, _ = self._form("/oauth/introspect", self._credentials(token))
        return dict(result)

    def _current(self, customer_id: str | None) -> Token:
        key = token_key(self.app_id, customer_id)
        token = self.tokens.get(key)
        if token is not None and not token.due(self.clock(), self.refresh_margin):
            return token
        with self._locks(key):
            token = self.tokens.get(key)  # renewed by another thread while this one waited?
            if token is not None and not token.due(self.clock(), self.refresh_margin):
                return token
            return self._renew_locked(customer_id, token)

    def _after_rejection(self, customer_id: str | None, rejected: Token) -> Token:
        """The server said 40102 for ``rejected``: renew it, unless someone already did."""
        key = token_key(self.app_id, customer_id)
        with self._locks(key):
            token = self.tokens.get(key)
            if token is not None and token.access_token != rejected.access_token:
                return token
            return self._renew_locked(customer_id, token)

    def _renew_locked(self, customer_id: str | None, token: Token | None) -> Token:
        """Fetch a new app token, or rotate the user's refresh token; the caller holds the key's lock."""
        key = token_key(self.app_id, customer_id)
        if customer_id is None:
            result, sent_at = self._form("/oauth/credit/token", self._app_form(), True)
            fresh = protocol.token_from(result, sent_at, None, None)
        else:
            if token is None or not token.refresh_token:
                raise ReauthorizationRequired(
                    f"No tokens are stored for customer {customer_id}; send them through connect_url.",
                    customer_id=customer_id, code=40102, error="invalid_token",
                )  # fmt: skip
            form = protocol.refresh_form(self.app_id, self.secret, token.refresh_token)
            try:
                result, sent_at = self._form("/oauth/refresh_token", form, True)
            except InvalidGrantError as exc:
                self.tokens.delete(key)
                raise protocol.reauthorization(customer_id, exc) from exc
            fresh = protocol.token_from(result, sent_at, customer_id, token.xspe)
        self.tokens.set(key, fresh)
        return fresh

    # -------------------------------------------------------------- Open APIs

    def call(self, call: Call[T]) -> T:
        """Run one Open API call; on 40102 renew the token once and retry once."""
        token = self._current(call.customer_id)
        response = self._request(call, token)
        body = protocol.envelope(response)
        if protocol.is_invalid_token(body):
            token = self._after_rejection(call.customer_id, token)
            response = self._request(call, token)
            body = protocol.envelope(response)
        return call.parse(protocol.result_of(response, body))

    def request(
        self, method: str, path: str, *, customer_id: str | None = None,
        params: dict[str, str | int] | None = None, json: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        """Any Open API not wrapped above; returns the envelope's ``result``.

        ``customer_id`` None: with the app token; else with that customer's user token
        (an empty id raises ``CustomerIdRequired``).
        """
        customer = None if customer_id is None else protocol.required_customer_id(customer_id)
        return self.call(Call(method, path, lambda result: result, customer, params or {}, json))

    def _request(self, call: Call[Any], token: Token) -> httpx.Response:
        headers = {**call.headers, "Authorization": f"Bearer {token.access_token}"}
        return self._send(call.method, call.path, params=call.params, json=call.json, headers=headers)
