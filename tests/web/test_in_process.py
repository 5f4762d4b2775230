"""The in-process recipe of docs/architecture.md ("memory:// outside the tests"), as an app
developer's own test suite would follow it: ``create_app(Settings(database_url="memory://"))``,
seeded through ``app.state.admin``, called through httpx's ``ASGITransport`` without a server,
a database or a lifespan. The whole documented flow must work so, and nothing is written anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from openplatform.config import Settings
from openplatform.web.app import create_app

KEY = "an-app-developers-test-key-0123456789abcdef"
CALLBACK = "https://app.example.com/callback"


async def seeded(app: Starlette) -> dict[str, str]:
    """An SPE, a customer and an app installed for the whole SPE, made through the admin services."""
    admin = app.state.admin
    spe = await admin.create_spe("Acme")
    customer = await admin.create_customer(spe.xspe, "Customer One")
    made, secret = await admin.create_app("My app", "https://app.example.com/", scopes=["customer:read"])
    await admin.install(made.app_id, xspe=spe.xspe)
    return {"app_id": made.app_id, "secret": secret, "xspe": spe.xspe, "customer_id": customer.customer_id}


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def client_of(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_the_documented_flow_runs_in_process_on_memory() -> None:
    app = create_app(Settings(database_url="memory://", secret_key=KEY))
    world = await seeded(app)
    credentials = {"app_id": world["app_id"], "secret": world["secret"]}
    async with client_of(app) as client:
        got = await client.post("/oauth/credit/token", data={**credentials, "grant_type": "client_credential"})
        app_token = got.json()["result"]["access_token"]
        listed = await client.get("/api/spe/customers", headers={"Authorization": f"Bearer {app_token}"})
        assert [c["customer_id"] for c in listed.json()["result"]["items"]] == [world["customer_id"]]

        connect = {
            "app_id": world["app_id"], "redirect_uri": CALLBACK, "response_type": "code", "scope": "install_login",
            "xspe": world["xspe"], "customer_id": world["customer_id"], "state": "s1",
        }  # fmt: skip
        redirect = await client.get("/oauth/connect", params=connect)
        assert redirect.status_code == 302
        code = httpx.URL(redirect.headers["location"]).params["code"]
        pair = await client.post("/oauth/access_token", data={**credentials, "code": code,
                                                              "grant_type": "authorization_code"})  # fmt: skip
        refresh = pair.json()["result"]["refresh_token"]
        rotated = await client.post("/oauth/refresh_token", data={"app_id": world["app_id"], "refresh_token": refresh,
                                                                  "grant_type": "refresh_code"})  # fmt: skip
        user_token = rotated.json()["result"]["access_token"]
        own = await client.get(f"/api/spe/customer/{world['customer_id']}", params={"access_token": user_token})
        assert own.json()["result"]["name"] == "Customer One"


async def test_memory_without_a_server_key_writes_no_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No key configured: the key lives as long as the app (nothing it made outlives it), not in a
    ``.openplatform-secret-key`` file in the developer's working directory."""
    monkeypatch.chdir(tmp_path)
    for name in ("OPENPLATFORM_SECRET_KEY", "OPENPLATFORM_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(Settings(database_url="memory://"))
    world = await seeded(app)
    async with client_of(app) as client:
        got = await client.post("/oauth/credit/token", data={"app_id": world["app_id"], "secret": world["secret"],
                                                             "grant_type": "client_credential"})  # fmt: skip
        token = got.json()["result"]["access_token"]
        listed = await client.get("/api/spe/customers", params={"access_token": token})
    assert listed.json()["result"]["total"] == 1  # one key for the token side and the admin services
    assert files_in(tmp_path) == []


def recipe_of(guide: str) -> str:
    """The Python block of docs/sdk.md's "Testing your app in-process" section."""
    section = guide.split("## Testing your app in-process (Python)", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_sdk_recipe_of_the_guide_runs_as_written() -> None:
    """docs/sdk.md's "Testing your app in-process", run as an app developer would paste it."""
    guide = (Path(__file__).parents[2] / "docs" / "sdk.md").read_text()
    namespace: dict[str, Any] = {}
    exec(compile(recipe_of(guide), "docs/sdk.md", "exec"), namespace)  # noqa: S102 - the repository's own docs
    await namespace["test_my_app_lists_customers"]()
