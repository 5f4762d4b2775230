"""Shared helpers of the Open API tests: tokens of each kind, and calls that check the envelope."""

from __future__ import annotations

from typing import Any

import httpx

from openplatform.services.stores import DirectoryStore
from tests.conftest import Harness, World

ALL_SCOPES = ("customer:read", "customer:write", "site:read", "site:write")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def user_token(harness: Harness, world: World, scope: str = "install_login") -> str:
    code = await harness.code(world, scope=scope)
    response = await harness.exchange(world, code)
    assert response.status_code == 200, response.text
    return response.json()["result"]["access_token"]  # type: ignore[no-any-return]


async def call(
    harness: Harness, method: str, path: str, token: str, status: int = 200, **kwargs: Any
) -> httpx.Response:
    """One request; asserts the HTTP status and that the envelope code agrees with it."""
    response = await harness.client.request(
        method, path, headers={**bearer(token), **kwargs.pop("headers", {})}, **kwargs
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == 0 if status == 200 else body["code"] // 100 == status, body
    return response


async def result(harness: Harness, method: str, path: str, token: str, **kwargs: Any) -> Any:
    return (await call(harness, method, path, token, **kwargs)).json()["result"]


async def error(harness: Harness, method: str, path: str, token: str, status: int, **kwargs: Any) -> dict[str, Any]:
    body: dict[str, Any] = (await call(harness, method, path, token, status, **kwargs)).json()
    assert body["result"] is None and body["msg"]
    return body


def directory(harness: Harness) -> DirectoryStore:
    """The directory store itself, for seeding many rows in one transaction."""
    return harness.admin.stores.directory
