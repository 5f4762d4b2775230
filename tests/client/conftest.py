"""Fixtures of the SDK tests: a real ``openplatform serve`` (``live_server``) with short-lived
tokens, partner apps seeded through the management services, logins over real HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from openplatform.client import AppClient, AsyncAppClient, Token
from openplatform.config import Settings
from openplatform.runtime import build_admin
from openplatform.services.admin import Admin
from openplatform.services.admin_keys import AdminKeys

ALL_SCOPES = ("customer:read", "customer:write", "site:read", "site:write")
USER_SCOPE = "install_login site:read site:write"
REFRESH_LEEWAY = 0.5


@pytest.fixture(autouse=True)
def short_lived_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server under test (it inherits the environment): the shortest access-token
    lifetime allowed, a short refresh leeway so theft is detectable within a test, and
    quick webhook delivery."""
    monkeypatch.setenv("OPENPLATFORM_ACCESS_TOKEN_TTL", "60")
    monkeypatch.setenv("OPENPLATFORM_REFRESH_LEEWAY", str(REFRESH_LEEWAY))
    monkeypatch.setenv("OPENPLATFORM_WEBHOOK_POLL_SECONDS", "0.2")


@dataclass(frozen=True)
class Partner:
    """A partner app registered and installed for a whole SPE, plus one customer of that SPE."""

    base_url: str
    app_id: str
    secret: str
    xspe: str
    customer_ids: tuple[str, ...]
    redirect_uri: str
    metrics_key: str  # an admin key: /metrics answers only with one (SPEC §9)

    @property
    def customer_id(self) -> str:
        return self.customer_ids[0]

    def sync_client(self, **options: object) -> AppClient:
        return AppClient(self.app_id, self.secret, self.base_url, **options)  # type: ignore[arg-type]

    def async_client(self, **options: object) -> AsyncAppClient:
        return AsyncAppClient(self.app_id, self.secret, self.base_url, **options)  # type: ignore[arg-type]


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[Admin]:
    """The management services on the live server's database (what the CLI runs)."""
    service = build_admin(settings)
    try:
        yield service
    finally:
        await service.db.close()


async def seed_partner(
    admin: Admin, base_url: str, host_url: str = "http://localhost:9000/", customers: int = 3
) -> Partner:
    spe = await admin.create_spe("Partner SPE")
    ids = [(await admin.create_customer(spe.xspe, f"Customer {n}", f"c{n}@example.com")).customer_id
           for n in range(1, customers + 1)]  # fmt: skip
    app, secret = await admin.create_app("Partner", host_url, list(ALL_SCOPES), [])
    await admin.install(app.app_id, xspe=spe.xspe)
    _key, metrics_key = await AdminKeys(admin.stores, admin.keyring).create("tests: read /metrics")
    return Partner(base_url, app.app_id, secret, spe.xspe, tuple(ids), host_url + "callback", metrics_key)


@pytest.fixture
async def partner(admin: Admin, live_server: str) -> Partner:
    return await seed_partner(admin, live_server)


def code_from(connect_url: str) -> tuple[str, str]:
    """Follow /oauth/connect like a browser would (one real HTTP hop) and read code and state."""
    response = httpx.get(connect_url, timeout=10)
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert "code" in query, response.headers["location"]
    return query["code"][0], query["state"][0]


def login(client: AppClient, partner: Partner, customer_id: str | None = None) -> Token:
    customer = customer_id or partner.customer_id
    url, _state = client.connect_url(
        xspe=partner.xspe, customer_id=customer, redirect_uri=partner.redirect_uri, scope=USER_SCOPE
    )
    code, state = code_from(url)
    return client.exchange_code(code, state=state)


async def alogin(client: AsyncAppClient, partner: Partner, customer_id: str | None = None) -> Token:
    customer = customer_id or partner.customer_id
    url, _state = client.connect_url(
        xspe=partner.xspe, customer_id=customer, redirect_uri=partner.redirect_uri, scope=USER_SCOPE
    )
    async with httpx.AsyncClient(timeout=10) as browser:
        response = await browser.get(url)
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    return await client.exchange_code(query["code"][0], state=query["state"][0])


METRIC = re.compile(r"^openplatform_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)


def requests_at_server(partner: Partner, endpoint: str) -> int:
    """How many requests the server answered on ``endpoint`` (any code), from its /metrics."""
    headers = {"Authorization": f"Bearer {partner.metrics_key}"}
    response = httpx.get(f"{partner.base_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    text = response.text
    return sum(int(float(value)) for labels, value in METRIC.findall(text) if f'endpoint="{endpoint}"' in labels)


def revoke_at_server(partner: Partner, token: str) -> None:
    """RFC 7009 revocation, straight at the server (not through the SDK under test)."""
    response = httpx.post(
        f"{partner.base_url}/oauth/revoke",
        data={"app_id": partner.app_id, "secret": partner.secret, "token": token},
        timeout=10,
    )
    assert response.json()["code"] == 0, response.text


def refresh_at_server(partner: Partner, refresh_token: str) -> dict[str, object]:
    """What a thief holding ``refresh_token`` gets from /oauth/refresh_token (the documented call)."""
    response = httpx.post(
        f"{partner.base_url}/oauth/refresh_token",
        data={"app_id": partner.app_id, "refresh_token": refresh_token, "grant_type": "refresh_code"},
        timeout=10,
    )
    body: dict[str, object] = response.json()
    return body


@pytest.fixture
def sync_client(partner: Partner) -> Iterator[AppClient]:
    with partner.sync_client() as client:
        yield client


@pytest.fixture
async def async_client(partner: Partner) -> AsyncIterator[AsyncAppClient]:
    async with partner.async_client() as client:
        yield client
