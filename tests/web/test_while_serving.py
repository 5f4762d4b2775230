"""Changes made by the CLI in another process reach a running server at once (SPEC §3, issue 2 item 9).

Each test runs a real ``openplatform serve`` process and talks to it over HTTP.
The first test sets everything up through the CLI, as an operator would, and
walks the documented flow; the others seed in-process (a CLI process per step
costs a second or more) and make the change under test through the CLI. The
server sees other processes' changes through the invalidation log, so every
check polls for up to WITHIN seconds instead of sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from openplatform.config import Settings
from openplatform.runtime import build_admin
from tests.conftest import CALLBACK, run_cli, seed_world

# A live server and CLI processes sharing one database (the openplatform command refuses memory://).
pytestmark = pytest.mark.sql

WITHIN = 1.5  # seconds for a change to take effect (the server polls every 0.1 s here)


@dataclass
class Installed:
    xspe: str
    customer_id: str
    app_id: str
    secret: str


def cli_json(settings: Settings, *args: str) -> dict[str, Any]:
    return json.loads(run_cli(settings, *args).stdout)  # type: ignore[no-any-return]


def until(probe: Callable[[], int], expected: int, within: float = WITHIN) -> None:
    """Poll ``probe`` (returning an envelope code) until it gives ``expected``."""
    deadline = time.monotonic() + within
    while (got := probe()) != expected:
        assert time.monotonic() < deadline, f"still {got}, expected {expected} within {within} s"
        time.sleep(0.05)


@pytest.fixture
def http(live_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server, timeout=10) as client:
        yield client


# ------------------------------------------------------------- documented calls


def connect(http: httpx.Client, world: Installed) -> httpx.Response:
    params = dict(app_id=world.app_id, redirect_uri=CALLBACK, response_type="code", scope="install_login",
                  xspe=world.xspe, state="s1", customer_id=world.customer_id)  # fmt: skip
    return http.get("/oauth/connect", params=params)


def get_code(http: httpx.Client, world: Installed) -> str:
    response = connect(http, world)
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def exchange(http: httpx.Client, world: Installed, code: str) -> dict[str, Any]:
    form = dict(app_id=world.app_id, secret=world.secret, code=code, grant_type="authorization_code")
    return http.post("/oauth/access_token", data=form).json()  # type: ignore[no-any-return]


def refresh(http: httpx.Client, world: Installed, refresh_token: str) -> dict[str, Any]:
    form = dict(app_id=world.app_id, refresh_token=refresh_token, grant_type="refresh_code")
    return http.post("/oauth/refresh_token", data=form).json()  # type: ignore[no-any-return]


def app_token(http: httpx.Client, world: Installed, secret: str | None = None) -> dict[str, Any]:
    form = dict(app_id=world.app_id, secret=secret or world.secret, grant_type="client_credential")
    return http.post("/oauth/credit/token", data=form).json()  # type: ignore[no-any-return]


def customer(http: httpx.Client, world: Installed, token: str) -> dict[str, Any]:
    return http.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": token}).json()  # type: ignore[no-any-return]


# ------------------------------------------------------------------------ seeds


def seed_with_cli(settings: Settings) -> Installed:
    xspe = cli_json(settings, "spe", "create", "--name", "Live SPE")["xspe"]
    with ThreadPoolExecutor(2) as pool:  # independent commands, side by side
        made_customer = pool.submit(cli_json, settings, "customer", "create", "--xspe", xspe, "--name", "Live One")
        made_app = pool.submit(cli_json, settings, "app", "create", "--name", "Live App",
                               "--host-url", "https://app.example.com/", "--scope", "customer:read")  # fmt: skip
        customer_id, app = made_customer.result()["customer_id"], made_app.result()
    cli_json(settings, "install", "--app-id", app["app_id"], "--customer-id", customer_id)
    return Installed(xspe, customer_id, app["app_id"], app["secret"])


def seed_in_process(settings: Settings) -> Installed:
    world = seed_world(settings)
    return Installed(world.xspe, world.customer_id, world.app_id, world.secret)


# ------------------------------------------------------------------------ tests


def test_documented_flow_then_uninstall_on_a_live_server(settings: Settings, http: httpx.Client) -> None:
    world = seed_with_cli(settings)

    tokens = exchange(http, world, get_code(http, world))
    assert tokens["code"] == 0 and tokens["result"]["expires_in"] == 7200, tokens
    rotated = refresh(http, world, tokens["result"]["refresh_token"])
    assert rotated["code"] == 0, rotated
    user = rotated["result"]
    assert user["refresh_token"] != tokens["result"]["refresh_token"]
    app = app_token(http, world)
    assert app["code"] == 0, app
    for token in (user["access_token"], app["result"]["access_token"]):
        found = customer(http, world, token)
        assert found["code"] == 0 and found["result"]["customer_id"] == world.customer_id, found

    # Uninstall through the CLI: codes and tokens of the installation stop at once.
    unused_code = get_code(http, world)
    cli_json(settings, "uninstall", "--app-id", world.app_id, "--customer-id", world.customer_id)
    until(lambda: customer(http, world, user["access_token"])["code"], 40102)
    assert refresh(http, world, user["refresh_token"])["code"] == 40006
    assert exchange(http, world, unused_code)["code"] == 40006
    assert customer(http, world, app["result"]["access_token"])["code"] == 40401  # no longer visible
    denied = connect(http, world)
    assert denied.status_code == 302 and "error=access_denied" in denied.headers["location"]


def test_suspend_and_resume_on_a_live_server(settings: Settings, http: httpx.Client) -> None:
    world = seed_in_process(settings)
    user = exchange(http, world, get_code(http, world))["result"]
    app = app_token(http, world)["result"]
    pending_code = get_code(http, world)

    cli_json(settings, "app", "suspend", "--app-id", world.app_id)
    until(lambda: app_token(http, world)["code"], 40101)
    assert exchange(http, world, pending_code)["code"] == 40006  # SPEC §8: says the app is suspended
    assert refresh(http, world, user["refresh_token"])["code"] == 40006
    assert customer(http, world, user["access_token"])["code"] == 40102
    assert customer(http, world, app["access_token"])["code"] == 40102
    refused = connect(http, world)
    assert (refused.status_code, refused.json()["code"]) == (401, 40101)  # no redirect for a suspended app

    cli_json(settings, "app", "resume", "--app-id", world.app_id)
    until(lambda: app_token(http, world)["code"], 0)
    assert customer(http, world, user["access_token"])["code"] == 0
    assert customer(http, world, app["access_token"])["code"] == 0
    assert exchange(http, world, pending_code)["code"] == 0  # refused while suspended, not burnt
    assert refresh(http, world, user["refresh_token"])["code"] == 0


def grace_end(settings: Settings, app_id: str) -> float:
    """When the previous secret's grace period ends, as stored."""

    async def read() -> float:
        admin = build_admin(settings)
        try:
            app = await admin.db.get_app(app_id)
        finally:
            await admin.db.close()
        assert app is not None
        return min(s.expires_at for s in app.secrets if s.expires_at is not None)

    return asyncio.run(read())


def rotate_with_grace(settings: Settings, http: httpx.Client, world: Installed) -> tuple[str, str, float]:
    """Rotate with a grace period that outlasts the CLI's own start-up on this machine.

    Returns (old secret, new secret, end of grace). A busy machine can take
    seconds to start a CLI process; then the grace is doubled and tried again.
    """
    for grace in (3, 6, 12):
        old = world.secret
        world.secret = cli_json(settings, "app", "rotate-secret", "--app-id", world.app_id,
                                "--grace-seconds", str(grace))["secret"]  # fmt: skip
        ends = grace_end(settings, world.app_id)
        until(lambda: app_token(http, world)["code"], 0)
        if time.time() < ends - 1:
            return old, world.secret, ends
    raise AssertionError("the CLI never returned within the grace period")


def test_rotated_secret_keeps_working_only_for_its_grace(settings: Settings, http: httpx.Client) -> None:
    world = seed_in_process(settings)
    first_secret = world.secret
    issued_before = app_token(http, world)["result"]["access_token"]

    old_secret, new_secret, ends = rotate_with_grace(settings, http, world)
    assert app_token(http, world, old_secret)["code"] == 0  # within its grace period
    until(lambda: app_token(http, world, old_secret)["code"], 40101, within=ends - time.time() + WITHIN)
    assert time.time() >= ends - 0.2, "the old secret stopped before its grace ended"
    assert app_token(http, world, new_secret)["code"] == 0

    # Without grace the previous secret stops at once; tokens already issued stay valid.
    newest = cli_json(settings, "app", "rotate-secret", "--app-id", world.app_id)["secret"]
    until(lambda: app_token(http, world, new_secret)["code"], 40101)
    assert app_token(http, world, newest)["code"] == 0
    assert app_token(http, world, first_secret)["code"] == 40101
    assert customer(http, world, issued_before)["code"] == 0


def test_forwarded_headers_do_not_move_a_caller_on_a_live_server(settings: Settings, http: httpx.Client) -> None:
    """uvicorn would, by default, believe X-Forwarded-For from 127.0.0.1; only
    OPENPLATFORM_TRUSTED_PROXIES may make the server believe it (none here)."""

    async def seed() -> Installed:
        admin = build_admin(settings)
        try:
            spe = await admin.create_spe("Live SPE")
            app, secret = await admin.create_app(
                "Whitelisted", "https://app.example.com/", ["customer:read"], ip_whitelist=["203.0.113.7"]
            )
        finally:
            await admin.db.close()
        return Installed(spe.xspe, "", app.app_id, secret)

    world = asyncio.run(seed())
    spoofed = {"X-Forwarded-For": "203.0.113.7", "Forwarded": "for=203.0.113.7", "X-Real-IP": "203.0.113.7"}
    form = dict(app_id=world.app_id, secret=world.secret, grant_type="client_credential")
    answer = http.post("/oauth/credit/token", data=form, headers=spoofed)
    assert answer.status_code == 403 and answer.json()["code"] == 40302, answer.text
