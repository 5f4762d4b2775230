"""The hot routes answer through plain ASGI endpoints (web/lean.py) exactly as the
Starlette routes around them would: same envelopes, same fall-backs."""

from __future__ import annotations

from typing import Any

from tests.conftest import Harness, World


async def call(harness: Harness, scope: dict[str, Any], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drive the app with raw ASGI messages; returns what it sent."""
    sent: list[dict[str, Any]] = []
    incoming = iter(messages)

    async def receive() -> dict[str, Any]:
        return next(incoming, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    base = {"type": "http", "http_version": "1.1", "scheme": "http", "query_string": b"", "root_path": "",
            "client": ("127.0.0.1", 40000), "server": ("testserver", 80), "headers": []}  # fmt: skip
    await harness.app({**base, **scope}, receive, send)
    return sent


FORM = b"application/x-www-form-urlencoded"


def form(world: World) -> bytes:
    return f"app_id={world.app_id}&secret={world.secret}&grant_type=client_credential".encode()


async def test_a_body_in_several_messages_is_joined(harness: Harness) -> None:
    world = await harness.world()
    body = form(world)
    parts = [body[:10], body[10:30], body[30:]]
    messages = [{"type": "http.request", "body": p, "more_body": i < 2} for i, p in enumerate(parts)]
    scope = {"method": "POST", "path": "/oauth/credit/token", "headers": [(b"content-type", FORM)]}
    sent = await call(harness, scope, messages)
    assert sent[0]["status"] == 200
    headers = dict(sent[0]["headers"])
    assert headers[b"cache-control"] == b"no-store" and headers[b"pragma"] == b"no-cache"
    assert int(headers[b"content-length"]) == len(sent[1]["body"])


async def test_a_client_leaving_mid_body_gets_an_envelope_not_a_crash(harness: Harness) -> None:
    world = await harness.world()
    messages = [{"type": "http.request", "body": form(world)[:20], "more_body": True}]  # then a disconnect
    sent = await call(harness, {"method": "POST", "path": "/oauth/credit/token"}, messages)
    assert sent[0]["status"] == 400 and b'"code":40001' in sent[1]["body"]


async def test_a_malformed_content_length_is_refused(harness: Harness) -> None:
    sent = await call(harness, {"method": "POST", "path": "/oauth/credit/token",
                                "headers": [(b"content-length", b"12abc")]}, [])  # fmt: skip
    assert sent[0]["status"] == 400 and b"Content-Length" in sent[1]["body"]


async def test_other_methods_slashes_and_root_paths_go_through_starlette(harness: Harness) -> None:
    world = await harness.world()
    token = await harness.app_token(world)
    bearer = {"Authorization": f"Bearer {token}"}
    customer = f"/api/spe/customer/{world.customer_id}"
    assert (await harness.client.get(customer, headers=bearer)).json()["code"] == 0
    head = await harness.client.head(customer, headers=bearer)
    assert head.status_code == 200 and head.headers["etag"]
    slash = await harness.client.get(customer + "/", headers=bearer)
    assert slash.status_code == 307 and slash.headers["location"].endswith(customer)  # Starlette's redirect_slashes
    mounted = await call(harness, {"method": "POST", "path": "/base/oauth/credit/token", "root_path": "/base",
                                   "headers": [(b"content-type", FORM)]},
                         [{"type": "http.request", "body": form(world), "more_body": False}])  # fmt: skip
    assert mounted[0]["status"] == 200, mounted
