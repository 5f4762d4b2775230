"""The documented calls against one node of a cluster, over real HTTP (httpx)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.conftest import World
from tests.multinode.cluster import Node


@dataclass
class Calls:
    """One app (``world``) talking to any node through one connection pool."""

    http: httpx.AsyncClient
    world: World

    def _creds(self, **extra: str) -> dict[str, str]:
        return {"app_id": self.world.app_id, "secret": self.world.secret, **extra}

    async def code(self, node: Node) -> str:
        params = {
            "app_id": self.world.app_id, "redirect_uri": self.world.redirect_uri, "response_type": "code",
            "scope": "install_login", "xspe": self.world.xspe, "customer_id": self.world.customer_id, "state": "s",
        }  # fmt: skip
        response = await self.http.get(f"{node.url}/oauth/connect", params=params)
        assert response.status_code == 302, response.text
        return parse_qs(urlsplit(response.headers["location"]).query)["code"][0]

    async def exchange(self, node: Node, code: str) -> httpx.Response:
        data = self._creds(code=code, grant_type="authorization_code")
        return await self.http.post(f"{node.url}/oauth/access_token", data=data)

    async def user_pair(self, node: Node) -> dict[str, Any]:
        response = await self.exchange(node, await self.code(node))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["result"]
        return result

    async def refresh(self, node: Node, refresh_token: str) -> httpx.Response:
        data = self._creds(refresh_token=refresh_token, grant_type="refresh_code")
        return await self.http.post(f"{node.url}/oauth/refresh_token", data=data)

    async def app_token_answer(self, node: Node) -> httpx.Response:
        return await self.http.post(f"{node.url}/oauth/credit/token", data=self._creds(grant_type="client_credential"))

    async def app_token(self, node: Node) -> str:
        response = await self.app_token_answer(node)
        assert response.status_code == 200, response.text
        return str(response.json()["result"]["access_token"])

    async def customer(self, node: Node, token: str) -> httpx.Response:
        """The token-checked Open API call: ``GET /api/spe/customer/{id}``."""
        headers = {"Authorization": f"Bearer {token}"}
        return await self.http.get(f"{node.url}/api/spe/customer/{self.world.customer_id}", headers=headers)

    async def introspect(self, node: Node, token: str) -> dict[str, Any]:
        response = await self.http.post(f"{node.url}/oauth/introspect", data=self._creds(token=token))
        body: dict[str, Any] = response.json()
        return body

    async def revoke(self, node: Node, token: str) -> httpx.Response:
        return await self.http.post(f"{node.url}/oauth/revoke", data=self._creds(token=token))

    # ------------------------------------------------------------- verdicts

    async def works(self, node: Node, token: str) -> bool:
        response = await self.customer(node, token)
        return response.status_code == 200

    async def api_refused(self, node: Node, token: str) -> bool:
        """The token-checked Open API answers 401 (40102)."""
        return (await self.customer(node, token)).status_code == 401

    async def introspect_refused(self, node: Node, token: str, *, suspended: bool = False) -> bool:
        """Introspection answers ``active: false`` (or 40101 when the app itself, suspended, asks)."""
        body = await self.introspect(node, token)
        return body.get("active") is False or (suspended and body.get("code") == 40101)

    async def refused(self, node: Node, token: str, *, suspended: bool = False) -> bool:
        """Both doors refuse the token."""
        api = await self.api_refused(node, token)
        return api and await self.introspect_refused(node, token, suspended=suspended)
