"""Helpers of the management-screen tests: accounts, signed-in HTTP clients, form tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape

import httpx

from openplatform.records import User
from openplatform.services.accounts import build_accounts
from tests.conftest import Harness

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def errors_in(html: str) -> dict[str, str]:
    """Field name → the error shown next to it."""
    found = re.findall(r'<p class="error" id="f-([a-z_]+)-error">([^<]+)</p>', html)
    return {name: unescape(text) for name, text in found}


@dataclass(eq=False)
class Person:
    """Someone signed in to the management screens, with their own cookie jar."""

    user: User
    client: httpx.AsyncClient
    csrf: str

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.client.get(path, params=params or None)

    async def post(
        self, path: str, data: dict[str, str | list[str]] | None = None, csrf: bool = True
    ) -> httpx.Response:
        body: dict[str, str | list[str]] = {"csrf_token": self.csrf} if csrf else {}
        body.update(data or {})
        return await self.client.post(path, data=body)


async def make_user(harness: Harness, email: str, role: str, xspe: str | None = None) -> User:
    return await build_accounts(harness.admin.stores, harness.admin.keyring).create_user(email, role, PASSWORD, xspe)


async def sign_in(
    harness: Harness,
    email: str,
    password: str = PASSWORD,
    base_url: str = "http://testserver",
    next_path: str = "",
    ip: str = "127.0.0.1",
) -> httpx.Response:
    """A sign-in from a fresh client at ``ip``; the answer of the POST (the client is closed)."""
    transport = httpx.ASGITransport(app=harness.app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        form = await client.get("/login", params={"next": next_path} if next_path else None)
        data = {"csrf_token": csrf_in(form.text), "email": email, "password": password, "next": next_path}
        return await client.post("/login", data=data)


async def person(harness: Harness, email: str, role: str, xspe: str | None = None) -> Person:
    user = await make_user(harness, email, role, xspe)
    client = harness.client_from("127.0.0.1")
    form = await client.get("/login")
    answer = await client.post("/login", data={"csrf_token": csrf_in(form.text), "email": email, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    home = await client.get(answer.headers["location"])
    assert home.status_code == 200, home.text
    return Person(user, client, csrf_in(home.text))
