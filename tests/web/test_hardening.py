"""SPEC §9 and §2.2 on the token endpoints (issue 9, findings 3, 4, 5 and 10).

- Client authentication never tells what was wrong: unknown app_id, wrong or
  missing secret and a suspended app all answer 40101 with one sentence, and
  the whitelist and the app's budget come only after the secret is verified.
- Nobody without an app's secret can spend its request budget.
- No byte in a Basic header makes an endpoint answer 5xx.
- ``/oauth/access_token`` (the RFC 8414 token_endpoint) accepts every grant the
  metadata lists.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from openplatform.core.ratelimit import RateLimiter
from openplatform.records import AuditFilter
from tests.conftest import Harness

TOKEN_ENDPOINTS = ("/oauth/access_token", "/oauth/refresh_token", "/oauth/credit/token",
                   "/oauth/introspect", "/oauth/revoke")  # fmt: skip


def envelope(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    return response.status_code, body["code"], body["msg"]


async def app_token_answer(harness: Harness, client: httpx.AsyncClient, data: dict[str, str]) -> httpx.Response:
    return await client.post("/oauth/credit/token", data={"grant_type": "client_credential", **data})


# ------------------------------------------- finding 5: one answer for every failure


async def test_every_client_authentication_failure_answers_alike(harness: Harness) -> None:
    world = await harness.world(ip_whitelist=("203.0.113.0/24",))
    suspended = await harness.world()
    await harness.admin.set_status(suspended.app_id, "suspended")
    near = world.secret[:-1] + ("0" if world.secret[-1] != "0" else "1")
    client = harness.client_from("198.51.100.7")  # outside the whitelist
    cases = {
        "unknown app_id": {"app_id": "0" * 32, "secret": world.secret},
        "wrong secret, whitelist not met": {"app_id": world.app_id, "secret": near},
        "missing secret": {"app_id": world.app_id},
        "suspended app, right secret": {"app_id": suspended.app_id, "secret": suspended.secret},
        "suspended app, wrong secret": {"app_id": suspended.app_id, "secret": near},
    }
    answers = {name: envelope(await app_token_answer(harness, client, data)) for name, data in cases.items()}
    assert len(set(answers.values())) == 1, answers
    status, code, _msg = next(iter(answers.values()))
    assert (status, code) == (401, 40101)
    # The whitelist is told only to the app's own holder of the secret.
    answer = await app_token_answer(harness, client, {"app_id": world.app_id, "secret": world.secret})
    assert envelope(answer)[1] == 40302


async def test_a_suspended_apps_code_and_refresh_say_why(harness: Harness) -> None:
    """SPEC §8: with the right secret, the code and refresh token of a suspended app answer 40006."""
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    code = await harness.code(world)
    await harness.admin.set_status(world.app_id, "suspended")
    assert "suspended" in envelope(await harness.exchange(world, code))[2]
    assert envelope(await harness.exchange(world, code))[1] == 40006
    refreshed = envelope(await harness.refresh(world, tokens["refresh_token"]))
    assert refreshed[1] == 40006 and "suspended" in refreshed[2]


# --------------------------------------- finding 3: nobody spends another's budget


async def test_wrong_secrets_do_not_spend_the_apps_budget(harness: Harness) -> None:
    world = await harness.world()
    harness.platform.limiter = RateLimiter("app=5/60,ip=1000/60,bad_secret=1000/60")
    for i in range(20):  # from twenty addresses, each far under the per-IP limit
        attacker = harness.client_from(f"198.51.100.{i + 1}")
        answer = await app_token_answer(harness, attacker, {"app_id": world.app_id, "secret": "f" * 64})
        assert envelope(answer)[1] == 40101
    for _ in range(5):  # the app's own five requests still go through
        assert (await harness.app_token(world)) != ""
    limited = await app_token_answer(harness, harness.client, {"app_id": world.app_id, "secret": world.secret})
    assert envelope(limited)[1] == 42901 and "retry-after" in limited.headers


# ------------------------------------------- finding 4: any byte in a Basic header


BASIC_HEADERS = [
    b"Basic \xff\xfe\xfd",
    "Basic ÄÖÜ".encode("latin-1"),
    b"Basic " + base64.b64encode(b"\xff\xfe:secret"),  # not UTF-8 inside
    b"Basic " + base64.b64encode(b"app%FF:secret"),  # a percent-escape that is not UTF-8
    b"Basic " + base64.b64encode(b"app\x00:secret"),  # a control character
    b"Basic " + base64.b64encode(b"no-colon"),
    b"Basic " + base64.b64encode(b"a" * 600 + b":" + b"b" * 10),
    b"Basic =====",
]


@pytest.mark.parametrize("header", BASIC_HEADERS)
async def test_a_malformed_basic_header_is_a_clear_400_on_every_token_endpoint(harness: Harness, header: bytes) -> None:
    for path in TOKEN_ENDPOINTS:
        response = await harness.client.post(path, headers={"Authorization": header}, data={"token": "x"})
        assert (response.status_code, response.json()["code"]) == (400, 40001), (path, response.text)


# -------------------------------- finding 10: the token_endpoint takes every grant


async def test_the_metadata_token_endpoint_accepts_every_listed_grant(harness: Harness) -> None:
    world = await harness.world()
    metadata = (await harness.client.get("/.well-known/oauth-authorization-server")).json()
    path = metadata["token_endpoint"].removeprefix(metadata["issuer"])
    assert path == "/oauth/access_token"
    tokens = await harness.user_tokens(world)
    for grant_type in metadata["grant_types_supported"]:
        data = {"app_id": world.app_id, "secret": world.secret, "grant_type": grant_type}
        if grant_type == "authorization_code":
            data["code"] = await harness.code(world)
        if grant_type == "refresh_token":
            data["refresh_token"] = tokens["refresh_token"]
        answer = await harness.client.post(path, data=data)
        assert answer.status_code == 200, (grant_type, answer.text)
    for grant_type in ("client_credential", "refresh_code"):  # the documented spellings too
        data = {"app_id": world.app_id, "secret": world.secret, "grant_type": grant_type}
        if grant_type == "refresh_code":
            data["refresh_token"] = (await harness.user_tokens(world))["refresh_token"]
        assert (await harness.client.post(path, data=data)).status_code == 200, grant_type


# ---------------- review: a refresh without a secret tells nothing and spends nothing


async def test_a_refresh_without_secret_neither_spends_the_budget_nor_tells_about_the_app(harness: Harness) -> None:
    world = await harness.world()
    fenced = await harness.world(ip_whitelist=("203.0.113.0/24",))
    harness.platform.limiter = RateLimiter("app=5/60,ip=1000/60,bad_secret=1000/60")
    answers = set()
    for i in range(20):
        attacker = harness.client_from(f"198.51.100.{i + 1}")
        for app_id in (world.app_id, fenced.app_id, "0" * 32, "zz"):
            data = {"app_id": app_id, "refresh_token": "x" * 51, "grant_type": "refresh_code"}
            answers.add(envelope(await attacker.post("/oauth/refresh_token", data=data)))
    assert answers == {(400, 40006, "The refresh token is unknown or was issued to another app.")}
    for _ in range(5):  # none of that was charged to the apps
        assert (await harness.app_token(world)) != ""


# ------------------------- review: a standard OAuth client against the metadata


async def test_a_standard_oauth_client_works_against_the_token_endpoint(harness: Harness) -> None:
    """RFC 6749 names (client_id, client_secret: client_secret_post) and the §5.1 members at the top level;
    with Basic (client_secret_basic) a standard client asks for JSON. Documented clients see the envelope only."""
    world = await harness.world()
    standard = {"client_id": world.app_id, "client_secret": world.secret}
    answer = await harness.client.post("/oauth/access_token", data={**standard, "grant_type": "client_credentials"})
    body = answer.json()
    assert answer.status_code == 200 and body["code"] == 0, body
    assert body["token_type"] == "Bearer" and body["access_token"] == body["result"]["access_token"]
    assert body["expires_in"] == 7200

    pair = await harness.user_tokens(world)
    data = {**standard, "grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    rotated = (await harness.client.post("/oauth/access_token", data=data)).json()
    assert rotated["token_type"] == "Bearer" and rotated["refresh_token"] == rotated["result"]["refresh_token"]

    basic = httpx.BasicAuth(world.app_id, world.secret)
    answer = await harness.client.post("/oauth/access_token", data={"grant_type": "client_credentials"}, auth=basic,
                                       headers={"Accept": "application/json"})  # fmt: skip
    assert answer.json()["token_type"] == "Bearer"
    documented = {"app_id": world.app_id, "secret": world.secret, "grant_type": "client_credential"}
    assert set((await harness.client.post("/oauth/credit/token", data=documented)).json()) == {"code", "msg", "result"}

    clash = {"app_id": world.app_id, "client_id": "0" * 32, "secret": world.secret, "grant_type": "client_credential"}
    assert envelope(await harness.client.post("/oauth/credit/token", data=clash))[1] == 40001


async def test_made_up_app_ids_are_not_kept_in_the_audit_log(harness: Harness) -> None:
    """Refusals are audited, but an attacker's invented app_ids are not (review of issue 9): refusals
    from one address then coalesce instead of each leaving a row under a name of the attacker's choosing."""
    world = await harness.world()
    for app_id in ("0" * 32, "attacker-chosen", world.app_id):
        await app_token_answer(harness, harness.client, {"app_id": app_id, "secret": "f" * 64})
    await harness.flush()  # the queued audit rows
    app_ids: set[object] = set()
    for event in ("token.denied", "client.auth_failed"):
        rows, total = await harness.admin.db.audit_page(AuditFilter(event=event), 100, 0)
        assert len(rows) == total  # all of them, on one page
        app_ids |= {row["app_id"] for row in rows}
    assert app_ids == {None, world.app_id}
