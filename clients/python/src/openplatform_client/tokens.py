"""Where the SDK keeps tokens: one user token per customer, one app token per app.

The default store is in memory, per process. Apps running on several machines
can plug in a shared store (Redis, a database table) by implementing
``TokenStore`` (or ``AsyncTokenStore`` for ``AsyncAppClient``); ``Token.to_dict``
and ``Token.from_dict`` give a JSON form. Single-flight refreshing happens in the
client, per process: two processes sharing a store may each refresh once, which
the server tolerates (a refresh retried within its leeway gets the same pair).
"""

from __future__ import annotations

import threading
from typing import Protocol

from openplatform_client.models import Token


class TokenStore(Protocol):
    def get(self, key: str) -> Token | None: ...

    def set(self, key: str, token: Token) -> None: ...

    def delete(self, key: str) -> None: ...


class AsyncTokenStore(Protocol):
    async def get(self, key: str) -> Token | None: ...

    async def set(self, key: str, token: Token) -> None: ...

    async def delete(self, key: str) -> None: ...


class InMemoryTokenStore:
    """The default store: a dict guarded by a lock (safe across threads)."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Token | None:
        with self._lock:
            return self._tokens.get(key)

    def set(self, key: str, token: Token) -> None:
        with self._lock:
            self._tokens[key] = token

    def delete(self, key: str) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def __len__(self) -> int:
        return len(self._tokens)


class SyncStoreAdapter:
    """Lets ``AsyncAppClient`` use a plain ``TokenStore`` (fine when it does not block, like memory)."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    async def get(self, key: str) -> Token | None:
        return self.store.get(key)

    async def set(self, key: str, token: Token) -> None:
        self.store.set(key, token)

    async def delete(self, key: str) -> None:
        self.store.delete(key)


def app_key(app_id: str) -> str:
    return f"{app_id}:app"


def user_key(app_id: str, customer_id: str) -> str:
    return f"{app_id}:customer:{customer_id}"


def token_key(app_id: str, customer_id: str | None) -> str:
    """The store key of the token used for ``customer_id`` (None: the app token)."""
    return app_key(app_id) if customer_id is None else user_key(app_id, customer_id)
