"""``WWW-Authenticate`` challenges (RFC 6750 §3, RFC 7235 §4.1; SPEC §9; issue 9 finding 11).

An Open API request without any token gets the Bearer challenge *without* an
``error`` (RFC 6750 §3.1: the client may simply not know it needs one); a bad
token gets ``error="invalid_token"``. Every 401 of a token endpoint carries
``WWW-Authenticate: Basic realm="openplatform"``, however the client sent its
credentials; /oauth/connect, which browsers open, never asks for Basic.
"""

from __future__ import annotations

import base64

import pytest

from tests.conftest import Harness
from tests.web.open_api_support import bearer

BEARER = 'Bearer realm="openplatform"'
BASIC = 'Basic realm="openplatform"'


async def test_no_token_gets_a_bearer_challenge_without_an_error(harness: Harness) -> None:
    world = await harness.world()
    basic = "Basic " + base64.b64encode(f"{world.app_id}:{world.secret}".encode()).decode()
    for path in (f"/api/spe/customer/{world.customer_id}", "/api/spe/customers", "/api/specp/sites"):
        for headers in ({}, {"Authorization": basic}, {"Authorization": "Bearer "}):
            answer = await harness.client.get(path, headers=headers)
            assert (answer.status_code, answer.json()["code"]) == (401, 40102), (path, headers)
            assert answer.headers.get_list("www-authenticate") == [BEARER], (path, headers)


async def test_a_bad_token_gets_the_invalid_token_error(harness: Harness) -> None:
    world = await harness.world()
    for path in (f"/api/spe/customer/{world.customer_id}", "/api/spe/customers"):
        for request in ({"headers": bearer("nope")}, {"params": {"access_token": "nope"}}):
            answer = await harness.client.get(path, **request)  # type: ignore[arg-type]
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"] == f'{BEARER}, error="invalid_token"'


@pytest.mark.parametrize(
    "path, grant",
    [
        ("/oauth/credit/token", {"grant_type": "client_credential"}),
        ("/oauth/access_token", {"grant_type": "authorization_code", "code": "x"}),
        ("/oauth/refresh_token", {"grant_type": "refresh_code", "refresh_token": "x"}),
        ("/oauth/introspect", {"token": "x"}),
        ("/oauth/revoke", {"token": "x"}),
    ],
)
async def test_every_401_of_a_token_endpoint_names_basic(harness: Harness, path: str, grant: dict[str, str]) -> None:
    world = await harness.world()
    wrong = {"app_id": world.app_id, "secret": "0" * 64}
    basic = "Basic " + base64.b64encode(f"{world.app_id}:{'0' * 64}".encode()).decode()
    for request in (
        {"data": {**grant, **wrong}},  # credentials in the form
        {"data": {**grant, "app_id": "f" * 32, "secret": "0" * 64}},  # an unknown app
        {"data": grant, "headers": {"Authorization": basic}},  # HTTP Basic
    ):
        answer = await harness.client.post(path, **request)  # type: ignore[arg-type]
        assert (answer.status_code, answer.json()["code"]) == (401, 40101), (path, request, answer.text)
        assert answer.headers.get_list("www-authenticate") == [BASIC], (path, request)


@pytest.mark.parametrize("settings_overrides", [{"error_status": "always-200"}])
async def test_the_challenge_stays_under_always_200(harness: Harness) -> None:
    world = await harness.world()
    answer = await harness.client.post("/oauth/credit/token", data={"app_id": world.app_id, "secret": "0" * 64,
                                                                    "grant_type": "client_credential"})  # fmt: skip
    assert (answer.status_code, answer.json()["code"]) == (200, 40101)
    assert answer.headers["www-authenticate"] == BASIC


async def test_connect_never_asks_a_browser_for_basic(harness: Harness) -> None:
    world = await harness.world()
    answer = await harness.connect(world, app_id="f" * 32)
    assert answer.status_code == 401 and "www-authenticate" not in answer.headers
