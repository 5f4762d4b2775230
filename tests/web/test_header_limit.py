"""Request headers over 16 KiB in total get 431 with the envelope (SPEC §9; issue 9 finding 7).

In-process, through the raw ASGI entry, on the lean path and the Starlette path;
then against ``openplatform serve``, where uvicorn reads the request first: one
8 MB header and 20,000 small ones must both be refused, and the server must go on
answering.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Harness, LiveServer, World, seed_world
from tests.web.test_kernel import FORM, call, form

MAX_HEADER_BYTES = 16 * 1024  # SPEC §9's number, not the code's
ENVELOPE = {"code": 43101, "msg": "The request headers are larger than 16 KiB in total.",
            "error": "request_headers_too_large", "result": None}  # fmt: skip


def padding(total: int, taken: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    """One header that brings the request's headers to exactly ``total`` bytes on the wire."""
    used = sum(len(n) + len(v) + 4 for n, v in taken)
    return b"x-padding", b"a" * (total - used - len(b"x-padding") - 4)


def body_of(sent: list[dict[str, Any]]) -> Any:
    return orjson.loads(b"".join(m.get("body", b"") for m in sent[1:]))


async def token_call(harness: Harness, world: World, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    messages = [{"type": "http.request", "body": form(world), "more_body": False}]
    return await call(harness, {"method": "POST", "path": "/oauth/credit/token", "headers": headers}, messages)


async def test_the_lean_path_refuses_oversized_headers(harness: Harness) -> None:
    world = await harness.world()
    base = [(b"content-type", FORM)]
    at_limit = await token_call(harness, world, [*base, padding(MAX_HEADER_BYTES, base)])
    assert at_limit[0]["status"] == 200
    over = await token_call(harness, world, [*base, padding(MAX_HEADER_BYTES + 1, base)])
    assert over[0]["status"] == 431 and body_of(over) == ENVELOPE
    headers = dict(over[0]["headers"])
    assert headers[b"content-type"] == b"application/json" and headers[b"cache-control"] == b"no-store"


@pytest.mark.parametrize("path", ["/api/spe/customers", "/login", "/nowhere", "/base/oauth/credit/token"])
async def test_every_other_path_refuses_them_too(harness: Harness, path: str) -> None:
    many = [(b"x-h%d" % i, b"v") for i in range(20_000)]
    sent = await call(harness, {"method": "GET", "path": path, "headers": many}, [])
    assert sent[0]["status"] == 431 and body_of(sent) == ENVELOPE


@pytest.mark.parametrize("settings_overrides", [{"error_status": "always-200"}])
async def test_always_200_keeps_the_envelope(harness: Harness) -> None:
    sent = await call(harness, {"method": "GET", "path": "/healthz", "headers": [(b"x-big", b"a" * 20_000)]}, [])
    assert sent[0]["status"] == 200 and body_of(sent) == ENVELOPE


# ------------------------------------------------------------- a real server


def raw_request(base: str, head: bytes) -> bytes:
    """Send a raw request head and read the whole answer (the server closes the connection)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def assert_refused(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), head[:200]
    assert b"content-type: application/json" in head.lower()
    assert orjson.loads(body) == ENVELOPE


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the limit does not depend on the database
def test_a_real_server_refuses_oversized_headers(live_server: LiveServer, settings: Any) -> None:
    world = seed_world(settings)
    start = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    assert_refused(raw_request(live_server, start + b"x-big: " + b"a" * 8 * 1024 * 1024 + b"\r\n\r\n"))
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(20_000))
    assert_refused(raw_request(live_server, start + many + b"\r\n"))
    # Over 16 KiB but within what the server reads of a head: the app's own answer, on a kept-alive connection.
    with httpx.Client(base_url=live_server) as client:
        over = client.get("/healthz", headers={"x-big": "a" * (MAX_HEADER_BYTES + 1)})
        assert over.status_code == 431 and over.json() == ENVELOPE
        form = {"app_id": world.app_id, "secret": world.secret, "grant_type": "client_credential"}
        assert client.post("/oauth/credit/token", data=form).json()["code"] == 0  # still serving
        assert client.post("/oauth/credit/token", data=form, headers={"x-big": "a" * 17_000}).status_code == 431
