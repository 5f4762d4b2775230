"""The flow of the documentation page, end to end over HTTP (SPEC §2.1–2.5)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.conftest import Harness


async def test_connect_redirects_with_code_and_state(harness: Harness) -> None:
    world = await harness.world()
    response = await harness.connect(world, state="a b/ü&x=1")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == world.redirect_uri
    query = parse_qs(location.query)
    assert query["state"] == ["a b/ü&x=1"]
    assert len(query["code"][0]) >= 43


async def test_code_exchange_refresh_and_app_token(harness: Harness) -> None:
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    assert set(tokens) == {"access_token", "expires_in", "refresh_token", "scope"}
    assert tokens["expires_in"] == 7200
    assert tokens["scope"] == "install_login"

    rotated = await harness.refresh(world, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["code"] == 0 and body["msg"] == "success"
    assert body["result"]["refresh_token"] != tokens["refresh_token"]
    assert rotated.headers["cache-control"] == "no-store"
    assert rotated.headers["pragma"] == "no-cache"

    customer = await harness.client.get(
        f"/api/spe/customer/{world.customer_id}", params={"access_token": body["result"]["access_token"]}
    )
    assert customer.status_code == 200, customer.text
    assert customer.json()["result"]["customer_id"] == world.customer_id

    app_token = await harness.app_token(world)
    listed = await harness.client.get("/api/spe/customers", headers={"Authorization": f"Bearer {app_token}"})
    assert listed.status_code == 200
    assert [c["customer_id"] for c in listed.json()["result"]["items"]] == [world.customer_id]
