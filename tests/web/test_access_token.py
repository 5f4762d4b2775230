"""POST /oauth/access_token: code to tokens (SPEC §2.2, RFC 6749 §4.1.3, RFC 7636).

Codes are single use; a code presented twice fails and everything it produced
is revoked (RFC 6749 §4.1.2). App credentials come in the body or as HTTP Basic
(RFC 6749 §2.3.1), parameters as a form, JSON or the query string.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from openplatform.core.pkce import s256
from tests.conftest import Harness, World

VERIFIER = "Zx9-._~" * 7  # 49 unreserved characters (RFC 7636 §4.1)
PATH = "/oauth/access_token"


def basic(app_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{app_id}:{secret}".encode()).decode()}


def assert_error(response: httpx.Response, code: int, error: str) -> None:
    assert response.status_code == code // 100, response.text
    body = response.json()
    assert (body["code"], body["error"], body["result"]) == (code, error, None), body
    assert body["msg"]
    assert response.headers["cache-control"] == "no-store"


def assert_tokens(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"code", "msg", "result"} and (body["code"], body["msg"]) == (0, "success")
    return body["result"]  # type: ignore[no-any-return]


async def customer_call(harness: Harness, world: World, access_token: str) -> httpx.Response:
    return await harness.client.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": access_token})


async def test_result_has_exactly_the_documented_shape(harness: Harness) -> None:
    world = await harness.world()
    response = await harness.exchange(world, await harness.code(world))
    result = assert_tokens(response)
    assert set(result) == {"access_token", "expires_in", "refresh_token", "scope"}
    assert result["expires_in"] == 7200
    assert result["scope"] == "install_login"
    assert isinstance(result["access_token"], str) and len(result["access_token"]) >= 32
    assert isinstance(result["refresh_token"], str) and result["refresh_token"] != result["access_token"]
    assert response.headers["cache-control"] == "no-store" and response.headers["pragma"] == "no-cache"
    assert response.headers["content-type"].startswith("application/json")
    assert (await customer_call(harness, world, result["access_token"])).status_code == 200


async def test_wrong_or_missing_client_credentials(harness: Harness) -> None:
    world = await harness.world()
    code = await harness.code(world)
    assert_error(await harness.exchange(world, code, secret="0" * 64), 40101, "invalid_client")
    assert_error(await harness.exchange(world, code, secret=world.secret[:-1]), 40101, "invalid_client")
    assert_error(await harness.exchange(world, code, app_id="f" * 32), 40101, "invalid_client")
    assert_error(await harness.exchange(world, code, secret=""), 40101, "invalid_client")  # SPEC §9: one answer
    # None of these consumed the code.
    assert_tokens(await harness.exchange(world, code))


async def test_unknown_code(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    for value in ("unknown-code", "x" * 43, await harness.code(world) + "x"):
        with subtests.test(value):
            assert_error(await harness.exchange(world, value), 40006, "invalid_grant")
    for value in ("", "\x00"):
        with subtests.test(value):
            assert_error(await harness.exchange(world, value), 40001, "invalid_request")


async def test_code_of_another_app_is_invalid_grant_and_stays_usable(harness: Harness) -> None:
    world = await harness.world()
    other_app, other_secret = await harness.admin.create_app("Other", world.host_url)
    await harness.admin.install(other_app.app_id, customer_id=world.customer_id)
    other = World(world.xspe, world.customer_id, other_app.app_id, other_secret, world.host_url, "")
    code = await harness.code(other)
    assert_error(await harness.exchange(world, code), 40006, "invalid_grant")
    # The wrong app's attempt must not burn (or revoke) the rightful owner's code.
    tokens = assert_tokens(await harness.exchange(other, code))
    assert (await customer_call(harness, other, tokens["access_token"])).status_code == 200


async def test_expired_code(harness: Harness) -> None:
    world = await harness.world()
    fresh, stale = await harness.code(world), await harness.code(world)
    harness.clock.advance(299)
    assert_tokens(await harness.exchange(world, fresh))
    harness.clock.advance(2)  # 301 s: past the default 300 s lifetime
    assert_error(await harness.exchange(world, stale), 40006, "invalid_grant")


async def test_redirect_uri_must_match_when_sent(harness: Harness) -> None:
    world = await harness.world()
    code = await harness.code(world)
    for other in ("https://app.example.com/other", world.redirect_uri + "/", world.redirect_uri.upper()):
        assert_error(await harness.exchange(world, code, redirect_uri=other), 40006, "invalid_grant")
    assert_tokens(await harness.exchange(world, code, redirect_uri=world.redirect_uri))
    # Omitting it is allowed (the docs' exchange does not send it).
    assert_tokens(await harness.exchange(world, await harness.code(world)))


async def test_pkce_s256(harness: Harness) -> None:
    world = await harness.world()

    async def pkce_code() -> str:
        return await harness.code(world, code_challenge=s256(VERIFIER), code_challenge_method="S256")

    code = await pkce_code()
    for wrong in (None, "A" * 49, VERIFIER[:-1], VERIFIER + "A", s256(VERIFIER)):
        extra = {} if wrong is None else {"code_verifier": wrong}
        assert_error(await harness.exchange(world, code, **extra), 40006, "invalid_grant")
    assert_tokens(await harness.exchange(world, code, code_verifier=VERIFIER))
    # A verifier for a code issued without a challenge is refused too.
    plain = await harness.code(world)
    assert_error(await harness.exchange(world, plain, code_verifier=VERIFIER), 40006, "invalid_grant")


async def test_code_presented_twice_fails_and_revokes_its_tokens(harness: Harness) -> None:
    world = await harness.world()
    code = await harness.code(world)
    tokens = assert_tokens(await harness.exchange(world, code))
    assert (await customer_call(harness, world, tokens["access_token"])).status_code == 200
    bystander = assert_tokens(await harness.exchange(world, await harness.code(world)))

    assert_error(await harness.exchange(world, code), 40006, "invalid_grant")

    revoked = await customer_call(harness, world, tokens["access_token"])
    assert revoked.status_code == 401 and revoked.json()["code"] == 40102
    assert_error(await harness.refresh(world, tokens["refresh_token"]), 40006, "invalid_grant")
    # A third try still fails; tokens from another code are untouched.
    assert_error(await harness.exchange(world, code), 40006, "invalid_grant")
    assert (await customer_call(harness, world, bystander["access_token"])).status_code == 200


async def test_basic_auth_and_conflicting_credentials(harness: Harness) -> None:
    world = await harness.world()
    grant = {"grant_type": "authorization_code"}
    auth = basic(world.app_id, world.secret)
    response = await harness.client.post(PATH, data={**grant, "code": await harness.code(world)}, headers=auth)
    assert_tokens(response)
    # The same app_id in the body as well is not a conflict.
    same = {**grant, "code": await harness.code(world), "app_id": world.app_id}
    assert_tokens(await harness.client.post(PATH, data=same, headers=auth))

    wrong = await harness.client.post(
        PATH, data={**grant, "code": await harness.code(world)}, headers=basic(world.app_id, "0" * 64)
    )
    assert_error(wrong, 40101, "invalid_client")
    assert wrong.headers["www-authenticate"].lower().startswith("basic")

    # Conflicting credentials: Basic plus something else in the body.
    code = await harness.code(world)
    for extra in ({"app_id": "f" * 32}, {"secret": world.secret}, {"app_id": world.app_id, "secret": "0" * 64}):
        data = {**grant, "code": code, **extra}
        assert_error(await harness.client.post(PATH, data=data, headers=auth), 40001, "invalid_request")
    assert_tokens(await harness.exchange(world, code))


async def test_json_body_and_query_string_are_accepted(harness: Harness) -> None:
    world = await harness.world()
    params = dict(app_id=world.app_id, secret=world.secret, grant_type="authorization_code")
    as_json = await harness.client.post(PATH, json={**params, "code": await harness.code(world)})
    assert_tokens(as_json)
    in_query = await harness.client.post(PATH, params={**params, "code": await harness.code(world)})
    assert_tokens(in_query)
    # Split between the query string and the body.
    split = await harness.client.post(PATH, params={"code": await harness.code(world)}, data=params)
    assert_tokens(split)


async def test_repeated_parameter_is_invalid_request(harness: Harness) -> None:
    world = await harness.world()
    code = await harness.code(world)
    body = f"app_id={world.app_id}&secret={world.secret}&grant_type=authorization_code&code={code}"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for repeated_body, query in (
        (body + f"&code={code}", ""),
        (body + "&grant_type=authorization_code", ""),
        (body, f"?app_id={world.app_id}"),  # once in the query, once in the body
    ):
        response = await harness.client.post(PATH + query, content=repeated_body, headers=form)
        assert_error(response, 40001, "invalid_request")
    assert_tokens(await harness.exchange(world, code))


GRANT_TYPES = [  # the other grants of the metadata are accepted here: tests/web/test_hardening.py
    ("password", 40002, "unsupported_grant_type"),
    ("implicit", 40002, "unsupported_grant_type"),
    ("AUTHORIZATION_CODE", 40002, "unsupported_grant_type"),
    (None, 40001, "invalid_request"),
    ("", 40001, "invalid_request"),
]


async def test_grant_type(harness: Harness, subtests: pytest.Subtests) -> None:
    world = await harness.world()
    code = await harness.code(world)
    for grant_type, expected, error in GRANT_TYPES:
        with subtests.test(grant_type=grant_type):
            data = dict(app_id=world.app_id, secret=world.secret, code=code)
            if grant_type is not None:
                data["grant_type"] = grant_type
            assert_error(await harness.client.post(PATH, data=data), expected, error)
    assert_tokens(await harness.exchange(world, code))
