"""SPEC §9 headers on every kind of answer (issue 9 finding 6).

Every HTML page (the ``/oauth/connect`` error page included) carries a CSP with
``frame-ancestors 'none'``, ``X-Frame-Options: DENY`` and ``Referrer-Policy:
no-referrer``; every answer of connect (its 302s too) has that Referrer-Policy;
every Open API answer, lean or Starlette, token in the header or in
``?access_token=``, success or error, has ``Cache-Control: no-store``; under an
https ISSUER every answer, whatever produced it, carries HSTS.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Harness, World
from tests.web.open_api_support import bearer, user_token
from tests.web.test_openapi_document import run_every_api_operation

HSTS = "max-age=63072000; includeSubDomains"
HTML = {"Accept": "text/html"}


def assert_page_headers(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} {response.status_code}"
    policy = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in policy, where
    assert response.headers.get("x-frame-options") == "DENY", where
    assert response.headers.get("referrer-policy") == "no-referrer", where


def assert_no_store(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url} {response.status_code}"
    assert response.headers.get("cache-control") == "no-store", where


async def test_the_connect_error_page_cannot_be_framed_or_leak_its_url(harness: Harness) -> None:
    world = await harness.world()
    for overrides in ({"app_id": "nope"}, {"redirect_uri": "https://evil.example/cb"}):
        page = await harness.client.get("/oauth/connect", params=harness.connect_params(world, **overrides),
                                        headers=HTML)  # fmt: skip
        assert page.status_code in (400, 401) and page.headers["content-type"].startswith("text/html")
        assert_page_headers(page)
        assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_every_connect_answer_has_no_referrer(harness: Harness) -> None:
    world = await harness.world()
    answers = [
        await harness.connect(world),  # 302 with the code
        await harness.connect(world, scope="customer:delete"),  # 302 with the error, to the trusted redirect_uri
        await harness.connect(world, app_id="nope"),  # the JSON envelope
        await harness.connect(world, redirect_uri="https://evil.example/cb"),
    ]
    assert [a.status_code for a in answers] == [302, 302, 401, 400]
    for answer in answers:
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["cache-control"] == "no-store"


async def test_open_api_answers_are_never_stored(harness: Harness) -> None:
    world = await harness.world(scopes=("customer:read", "customer:write", "site:read", "site:write"))
    app_token = await harness.app_token(world)
    user = await user_token(harness, world, "install_login site:read site:write")
    c, one = harness.client, f"/api/spe/customer/{world.customer_id}"
    answers = [
        await c.get(one, headers=bearer(app_token)),  # dispatched before Starlette (web/kernel.py)
        await c.get(one, params={"access_token": app_token}),  # the documented form
        await c.head(one, headers=bearer(app_token)),  # the same endpoint through Starlette's router
        await c.get(one, params={"access_token": "unknown"}),  # its errors too
        await c.get(one),
        await c.get("/api/spe/customers", params={"access_token": app_token}),
        await c.get("/api/spe/customers", headers=bearer(app_token)),
        await c.put(one, headers=bearer(app_token), json={"contact": "x@example.com"}),
        await c.get(f"{one}/sites", params={"access_token": app_token}),
        await c.get("/api/specp/sites", params={"access_token": user}),
        await c.post("/api/specp/sites", headers=bearer(user), json={"name": "S", "domain": "s.example"}),
        await c.get("/api/specp/sites", headers=bearer(app_token)),  # 403
        await c.get("/api/spe/nothing-here", headers=bearer(app_token)),  # 404 from the router
        await c.patch(one, headers=bearer(app_token)),  # 405
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 401, 401, 200, 200, 200, 200, 200, 200, 403, 404, 405]
    for answer in answers:
        assert_no_store(answer)
    assert "allow" in answers[-1].headers  # the 405 says what is allowed (RFC 9110 §15.5.6)


async def test_every_answer_of_every_operation_has_its_headers(harness: Harness) -> None:
    """The kind, not the examples: each answer the OpenAPI document's walk-through produces."""
    seen: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        seen.append(response)

    harness.client.event_hooks["response"].append(keep)
    await run_every_api_operation(harness)
    await harness.client.get("/oauth/connect", params={"app_id": "nope"}, headers=HTML)
    await harness.client.get("/login")
    await harness.client.get("/portal")
    assert len(seen) > 40
    for response in seen:
        if response.headers.get("content-type", "").startswith("text/html"):
            assert_page_headers(response)
        if response.request.url.path.startswith("/api/"):
            assert_no_store(response)
        assert "strict-transport-security" not in response.headers  # not without an https ISSUER


async def _answers_of_every_kind(harness: Harness, world: World) -> list[httpx.Response]:
    c = harness.client
    token = await harness.app_token(world)
    one = f"/api/spe/customer/{world.customer_id}"
    form = {"app_id": world.app_id, "secret": world.secret, "grant_type": "client_credential"}
    return [
        await c.post("/oauth/credit/token", data=form),  # lean, success
        await c.post("/oauth/credit/token", data={**form, "secret": "wrong"}),  # lean, error
        await c.get(one, headers=bearer(token)),  # lean Open API
        await c.head(one, headers=bearer(token)),  # a fast-dispatched endpoint, through Starlette
        await c.get(one + "/", headers=bearer(token)),  # Starlette's slash redirect
        await c.get("/api/spe/customers", headers=bearer(token)),  # a Starlette endpoint
        await c.get("/nowhere"),  # 404
        await c.put("/oauth/credit/token"),  # 405
        await harness.connect(world),  # connect's 302
        await c.get("/oauth/connect", params={"app_id": "nope"}, headers=HTML),  # connect's HTML page
        await c.get("/login"),  # a management page
        await c.get("/portal"),  # its redirect to /login
        await c.get("/static/style.css"),
        await c.get("/docs"),
        await c.get("/healthz"),
        await c.get("/.well-known/oauth-authorization-server"),
    ]


@pytest.mark.parametrize("settings_overrides", [{"issuer": "https://auth.example.com"}])
async def test_under_an_https_issuer_every_answer_has_hsts(harness: Harness) -> None:
    world = await harness.world()
    answers = await _answers_of_every_kind(harness, world)
    statuses = [a.status_code for a in answers]
    assert statuses == [200, 401, 200, 200, 307, 200, 404, 405, 302, 401, 200, 303, 200, 200, 200, 200]
    for answer in answers:
        assert answer.headers.get_list("strict-transport-security") == [HSTS], answer.request.url


async def test_without_an_https_issuer_there_is_no_hsts(harness: Harness) -> None:
    world = await harness.world()
    for answer in await _answers_of_every_kind(harness, world):
        assert "strict-transport-security" not in answer.headers, answer.request.url


@pytest.mark.parametrize("settings_overrides", [{"issuer": "https://auth.example.com"}])
async def test_hsts_on_the_lean_path_is_sent_once(harness: Harness) -> None:
    """Through the exact-path dispatch and through Starlette's router (a root_path): one header each."""
    world = await harness.world()
    token = await harness.app_token(world)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for root in ("", "/base"):
        scope = {
            "type": "http", "http_version": "1.1", "scheme": "https", "method": "GET", "root_path": root,
            "path": f"{root}/api/spe/customer/{world.customer_id}", "query_string": f"access_token={token}".encode(),
            "headers": [], "client": ("127.0.0.1", 40000), "server": ("testserver", 443),
        }  # fmt: skip
        sent.clear()
        await harness.app(scope, receive, send)
        assert sent[0]["status"] == 200
        names = [name for name, _ in sent[0]["headers"]]
        assert names.count(b"strict-transport-security") == 1 and names.count(b"cache-control") == 1
