"""RFC 7662 introspection, RFC 7009 revocation and RFC 8414 metadata (SPEC §3).

An app sees only its own tokens: another app's token introspects as inactive and
revoking it does nothing, with the same 200 answer (RFC 7009 §2.2).
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Harness, World


async def introspect(harness: Harness, world: World, token: str, **extra: str) -> dict[str, Any]:
    response = await harness.client.post(
        "/oauth/introspect", data={"app_id": world.app_id, "secret": world.secret, "token": token, **extra}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["code"], body["msg"]) == (0, "success")
    # RFC 7662 §2.2 members at the top level, and the same in the envelope's result.
    members = {k: v for k, v in body.items() if k not in ("code", "msg", "result")}
    assert members == body["result"]
    return body["result"]  # type: ignore[no-any-return]


async def revoke(harness: Harness, world: World, token: str, **extra: str) -> httpx.Response:
    return await harness.client.post(
        "/oauth/revoke", data={"app_id": world.app_id, "secret": world.secret, "token": token, **extra}
    )


async def customer_code(harness: Harness, world: World, access_token: str) -> int:
    response = await harness.client.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": access_token})
    return int(response.json()["code"])


async def other_world(harness: Harness, world: World) -> World:
    app, secret = await harness.admin.create_app("Other", world.host_url, ["customer:read"])
    await harness.admin.install(app.app_id, customer_id=world.customer_id)
    return World(world.xspe, world.customer_id, app.app_id, secret, world.host_url, "")


# ------------------------------------------------------------------- RFC 7662


async def test_introspect_active_tokens(harness: Harness) -> None:
    world = await harness.world(scopes=("customer:read", "site:read"))
    before = int(time.time())
    tokens = await harness.user_tokens(world)
    access = await introspect(harness, world, tokens["access_token"])
    assert access["active"] is True
    assert access["token_type"] == "Bearer"
    assert access["scope"] == "install_login"
    assert access["client_id"] == world.app_id
    assert (access["sub"], access["customer_id"], access["xspe"]) == (world.customer_id,) * 2 + (world.xspe,)
    assert before - 1 <= access["iat"] <= time.time() + 1
    assert access["exp"] - access["iat"] in (7199, 7200, 7201)
    refresh = await introspect(harness, world, tokens["refresh_token"], token_type_hint="refresh_token")
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    assert refresh["exp"] > access["exp"]
    app_token = await introspect(harness, world, await harness.app_token(world))
    assert app_token["active"] is True and app_token["client_id"] == world.app_id
    assert set(app_token["scope"].split()) == {"customer:read", "site:read"}
    assert "sub" not in app_token and "customer_id" not in app_token


async def test_introspect_inactive_tokens(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    other = await other_world(harness, world)
    revoked = await harness.user_tokens(world)
    assert (await revoke(harness, world, revoked["access_token"])).status_code == 200
    rotated = await harness.user_tokens(world)
    assert (await harness.refresh(world, rotated["refresh_token"])).status_code == 200
    theirs = await harness.user_tokens(other)
    expiring = await harness.app_token(world)
    cases = {
        "revoked": revoked["access_token"],
        "rotated refresh token": rotated["refresh_token"],
        "another app's access token": theirs["access_token"],
        "another app's refresh token": theirs["refresh_token"],
        "another app's app token": await harness.app_token(other),
        "unknown": "no-such-token",
    }
    for why, token in cases.items():
        with subtests.test(why):
            assert await introspect(harness, world, token) == {"active": False}
    # The other app still sees its own token as active.
    assert (await introspect(harness, other, theirs["access_token"]))["active"] is True
    with subtests.test("expired"):
        harness.clock.advance(7201)
        assert await introspect(harness, world, expiring) == {"active": False}


async def test_introspection_and_revocation_need_client_authentication(harness: Harness) -> None:
    world = await harness.world()
    token = await harness.app_token(world)
    wrong = await harness.client.post(
        "/oauth/introspect", data={"app_id": world.app_id, "secret": "0" * 64, "token": token}
    )
    assert (wrong.status_code, wrong.json()["code"]) == (401, 40101)
    missing = await harness.client.post("/oauth/introspect", data={"app_id": world.app_id, "secret": world.secret})
    assert (missing.status_code, missing.json()["code"]) == (400, 40001)
    basic = base64.b64encode(f"{world.app_id}:{world.secret}".encode()).decode()
    by_basic = await harness.client.post(
        "/oauth/introspect", data={"token": token}, headers={"Authorization": f"Basic {basic}"}
    )
    assert by_basic.json()["active"] is True
    wrong = await harness.client.post(
        "/oauth/revoke", data={"app_id": world.app_id, "secret": "0" * 64, "token": token}
    )
    assert (wrong.status_code, wrong.json()["code"]) == (401, 40101)
    assert (await introspect(harness, world, token))["active"] is True


# ------------------------------------------------------------------- RFC 7009


async def test_revoke_an_access_token(harness: Harness) -> None:
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    response = await revoke(harness, world, tokens["access_token"], token_type_hint="access_token")
    assert response.status_code == 200 and response.json()["code"] == 0
    assert response.headers["cache-control"] == "no-store"
    assert await customer_code(harness, world, tokens["access_token"]) == 40102
    # Revoking an access token leaves its refresh token usable (RFC 7009 §2.1: "MAY").
    assert (await harness.refresh(world, tokens["refresh_token"])).status_code == 200
    # Revoking twice is still a 200.
    assert (await revoke(harness, world, tokens["access_token"])).status_code == 200
    # App tokens one by one: the app's other tokens keep working.
    first, second = await harness.app_token(world), await harness.app_token(world)
    assert (await revoke(harness, world, first)).status_code == 200
    assert (await introspect(harness, world, first)) == {"active": False}
    assert (await introspect(harness, world, second))["active"] is True


async def test_revoke_a_refresh_token_revokes_its_family(harness: Harness) -> None:
    world = await harness.world()
    first = await harness.user_tokens(world)
    second = (await harness.refresh(world, first["refresh_token"])).json()["result"]
    unrelated = await harness.user_tokens(world)
    assert (await revoke(harness, world, second["refresh_token"])).status_code == 200
    assert await customer_code(harness, world, second["access_token"]) == 40102
    assert await customer_code(harness, world, first["access_token"]) == 40102
    assert (await harness.refresh(world, second["refresh_token"])).json()["code"] == 40006
    assert await customer_code(harness, world, unrelated["access_token"]) == 0


async def test_revoke_unknown_or_foreign_token_is_200_and_changes_nothing(harness: Harness) -> None:
    world = await harness.world()
    other = await other_world(harness, world)
    theirs = await harness.user_tokens(other)
    for token in ("no-such-token", theirs["access_token"], theirs["refresh_token"]):
        response = await revoke(harness, world, token)
        assert response.status_code == 200 and response.json() == {"code": 0, "msg": "success", "result": {}}
    assert await customer_code(harness, other, theirs["access_token"]) == 0
    assert (await harness.refresh(other, theirs["refresh_token"])).status_code == 200


# ------------------------------------------------------------------- RFC 8414

REQUIRED_METADATA = {
    "issuer", "authorization_endpoint", "token_endpoint", "introspection_endpoint", "revocation_endpoint",
    "response_types_supported", "grant_types_supported", "token_endpoint_auth_methods_supported",
    "code_challenge_methods_supported", "scopes_supported",
}  # fmt: skip


async def metadata(harness: Harness) -> dict[str, Any]:
    response = await harness.client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return response.json()  # type: ignore[no-any-return]


async def test_metadata_document(harness: Harness) -> None:
    doc = await metadata(harness)
    assert REQUIRED_METADATA <= set(doc)
    assert doc["issuer"] == "http://testserver"
    assert doc["response_types_supported"] == ["code"]
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(doc["grant_types_supported"])
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert {"client_secret_post", "client_secret_basic"} <= set(doc["token_endpoint_auth_methods_supported"])
    assert {"install_login", "customer:read"} <= set(doc["scopes_supported"])
    paths = {name: urlsplit(doc[name]).path for name in REQUIRED_METADATA if name.endswith("_endpoint")}
    assert paths == {
        "authorization_endpoint": "/oauth/connect",
        "token_endpoint": "/oauth/access_token",
        "introspection_endpoint": "/oauth/introspect",
        "revocation_endpoint": "/oauth/revoke",
    }
    for name in paths:
        assert doc[name].startswith(doc["issuer"] + "/")
    # Every advertised endpoint exists (a GET on the POST ones is a 405, not a 404).
    for name, path in paths.items():
        response = await harness.client.get(path)
        assert response.status_code in (302, 400, 401, 405), (name, response.status_code)


@pytest.mark.parametrize("settings_overrides", [{"issuer": "https://auth.example.com/"}])
async def test_metadata_uses_the_configured_issuer(harness: Harness) -> None:
    doc = await metadata(harness)
    # RFC 8414 §3.3: the issuer must be identical to the one the client used; no trailing slash.
    assert doc["issuer"] == "https://auth.example.com"
    assert doc["token_endpoint"] == "https://auth.example.com/oauth/access_token"
    world = await harness.world()
    assert (await introspect(harness, world, await harness.app_token(world)))["iss"] == "https://auth.example.com"
