"""POST /oauth/credit/token: app tokens (SPEC §2.4, RFC 6749 §4.4).

Every call issues a new token and earlier ones stay valid, so an app running on
several machines never has its token pulled from under it. Public client code
for the original platform also posts ``authorization_code`` here.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.conftest import Harness

PATH = "/oauth/credit/token"


def app_token_result(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"code", "msg", "result"} and (body["code"], body["msg"]) == (0, "success")
    assert set(body["result"]) == {"access_token", "expires_in"}
    assert body["result"]["expires_in"] == 7200
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    return body["result"]  # type: ignore[no-any-return]


async def list_customers(harness: Harness, access_token: str) -> httpx.Response:
    return await harness.client.get("/api/spe/customers", headers={"Authorization": f"Bearer {access_token}"})


@pytest.mark.parametrize("grant_type", ["client_credential", "client_credentials"])
async def test_both_spellings_issue_an_app_token(harness: Harness, grant_type: str) -> None:
    world = await harness.world(scopes=("customer:read",))
    response = await harness.client.post(
        PATH, data={"app_id": world.app_id, "secret": world.secret, "grant_type": grant_type}
    )
    result = app_token_result(response)
    listed = await list_customers(harness, result["access_token"])
    assert listed.status_code == 200, listed.text
    assert [c["customer_id"] for c in listed.json()["result"]["items"]] == [world.customer_id]


async def test_every_call_is_a_new_token_and_earlier_ones_stay_valid(harness: Harness) -> None:
    world = await harness.world(scopes=("customer:read",))
    tokens = [await harness.app_token(world) for _ in range(5)]
    assert len(set(tokens)) == 5
    for token in tokens:
        assert (await list_customers(harness, token)).status_code == 200
    harness.clock.advance(7199)
    assert (await list_customers(harness, tokens[0])).status_code == 200
    harness.clock.advance(2)
    expired = await list_customers(harness, tokens[0])
    assert (expired.status_code, expired.json()["code"]) == (401, 40102)


async def test_json_query_and_basic_auth(harness: Harness) -> None:
    world = await harness.world()
    params = {"app_id": world.app_id, "secret": world.secret, "grant_type": "client_credential"}
    app_token_result(await harness.client.post(PATH, json=params))
    app_token_result(await harness.client.post(PATH, params=params))
    basic = base64.b64encode(f"{world.app_id}:{world.secret}".encode()).decode()
    app_token_result(
        await harness.client.post(
            PATH, data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
        )
    )


async def test_authorization_code_is_accepted_on_this_path(harness: Harness) -> None:
    world = await harness.world()
    code = await harness.code(world)
    response = await harness.client.post(
        PATH, data={"app_id": world.app_id, "secret": world.secret, "grant_type": "authorization_code", "code": code}
    )
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert set(result) == {"access_token", "expires_in", "refresh_token", "scope"}
    customer = await harness.client.get(
        f"/api/spe/customer/{world.customer_id}", params={"access_token": result["access_token"]}
    )
    assert customer.status_code == 200
    # Still single use, whichever path redeems it.
    again = await harness.exchange(world, code)
    assert (again.status_code, again.json()["code"]) == (400, 40006)


async def test_credit_token_errors(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    cases: list[tuple[dict[str, str], int, str]] = [
        ({"secret": "0" * 64}, 40101, "invalid_client"),
        ({"app_id": "f" * 32}, 40101, "invalid_client"),
        ({"secret": ""}, 40101, "invalid_client"),  # a missing secret is a failed authentication (SPEC §9)
        ({"grant_type": ""}, 40001, "invalid_request"),
        ({"grant_type": "refresh_code"}, 40002, "unsupported_grant_type"),
        ({"grant_type": "password"}, 40002, "unsupported_grant_type"),
        ({"grant_type": "Client_Credential"}, 40002, "unsupported_grant_type"),
    ]
    for overrides, code, error in cases:
        with subtests.test(**overrides):
            data = {"app_id": world.app_id, "secret": world.secret, "grant_type": "client_credential", **overrides}
            response = await harness.client.post(PATH, data={k: v for k, v in data.items() if v})
            assert response.status_code == code // 100, response.text
            body = response.json()
            assert (body["code"], body["error"], body["result"]) == (code, error, None), body
    with subtests.test("an app token is not a refresh token"):
        response = await harness.refresh(world, await harness.app_token(world))
        assert (response.status_code, response.json()["code"]) == (400, 40006)


async def test_suspended_app_gets_no_token_and_its_tokens_stop(harness: Harness) -> None:
    world = await harness.world(scopes=("customer:read",))
    token = await harness.app_token(world)
    await harness.admin.set_status(world.app_id, "suspended")
    await harness.wait_for_invalidation()
    response = await harness.client.post(
        PATH, data={"app_id": world.app_id, "secret": world.secret, "grant_type": "client_credential"}
    )
    assert (response.status_code, response.json()["code"]) == (401, 40101)
    assert (await list_customers(harness, token)).json()["code"] == 40102
