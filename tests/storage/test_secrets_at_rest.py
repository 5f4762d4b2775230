"""No token, code or app secret is ever stored or logged in the clear (SPEC §1, §3).

After a flow that touches every kind of row (codes used and unused, rotated
refresh tokens, app tokens, a rotated secret in its grace period, audit events,
a failed webhook attempt), every column of every table is dumped and searched
for every raw value; on SQLite the database file and its WAL are searched byte
by byte too. App secrets must decrypt under the server key and nothing else.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.exceptions import InvalidTag

from openplatform.config import Settings
from openplatform.security import Keyring
from openplatform.services.webhooks import WebhookWorker
from tests.conftest import TEST_SECRET_KEY, Harness, LiveServer, World, seed_world

# Secrets at rest: every column of every SQL table (and the SQLite files) searched; a live server's log.
pytestmark = pytest.mark.sql


def forms(raw: str) -> list[bytes]:
    """The value as stored by someone careless: as is, or base64 of it."""
    return [raw.encode(), base64.b64encode(raw.encode()), base64.urlsafe_b64encode(raw.encode())]


async def webhook_world(harness: Harness) -> World:
    """An installed app whose webhook_url never resolves (a failed attempt gets stored)."""
    spe = await harness.admin.create_spe("Acme SPE")
    customer = await harness.admin.create_customer(spe.xspe, "Customer One")
    hook = "https://hooks.example.invalid/hook"
    app, secret = await harness.admin.create_app("App", "https://app.example.com/", ["customer:read"], [], hook)
    install = await harness.admin.install(app.app_id, customer_id=customer.customer_id)
    return World(spe.xspe, customer.customer_id, app.app_id, secret, app.host_url, install.installation_id)


async def full_flow(harness: Harness) -> tuple[World, list[str]]:
    """Run every grant and failure once; returns the world and every raw value handed out."""
    await harness.world()  # another app, so two apps' secrets are on file
    world = await webhook_world(harness)
    raws = [world.secret]
    unused_code, used_code = await harness.code(world), await harness.code(world)
    raws += [unused_code, used_code]
    tokens = (await harness.exchange(world, used_code)).json()["result"]
    rotated = (await harness.refresh(world, tokens["refresh_token"])).json()["result"]
    app_token = await harness.app_token(world)
    replayed_code = await harness.code(world)
    replayed = (await harness.exchange(world, replayed_code)).json()["result"]
    assert (await harness.exchange(world, replayed_code)).json()["code"] == 40006  # a replay, audited
    raws += [tokens["access_token"], tokens["refresh_token"], rotated["access_token"], rotated["refresh_token"]]
    raws += [app_token, replayed_code, replayed["access_token"], replayed["refresh_token"]]
    bad = dict(app_id=world.app_id, secret=world.secret[::-1], grant_type="client_credential")
    assert (await harness.client.post("/oauth/credit/token", data=bad)).json()["code"] == 40101
    auth = (world.app_id, world.secret)
    await harness.client.post("/oauth/introspect", data={"token": rotated["access_token"]}, auth=auth)
    await harness.client.post("/oauth/revoke", data={"token": tokens["access_token"]}, auth=auth)

    new_secret = await harness.admin.rotate_secret(world.app_id, grace_seconds=600)
    raws.append(new_secret)
    await failed_webhook_attempt(harness)
    await harness.platform.store.inner.driver.write(noop)  # flush queued audit rows
    return world, raws


async def failed_webhook_attempt(harness: Harness) -> None:
    """Deliver the install notification once (the receiver refuses): its error is stored."""
    worker = WebhookWorker(harness.admin, poll_seconds=60)
    worker.start()
    try:
        # The harness's own worker may have taken the row first; then wait for its outcome.
        for _ in range(100):
            await worker.run_once()
            if await count_rows(harness, "webhook_deliveries WHERE last_error IS NOT NULL"):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the install notification was never attempted")
    finally:
        await worker.stop()


async def count_rows(harness: Harness, where: str) -> int:
    row = await harness.platform.store.inner.driver.fetchrow(f"SELECT COUNT(*) AS n FROM {where}")
    return int(row["n"])


async def noop(_tx: Any) -> None:
    return None


async def table_names(harness: Harness) -> list[str]:
    driver = harness.platform.store.inner.driver
    if harness.platform.settings.is_sqlite:
        rows = await driver.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = await driver.fetch(
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    return [row["name"] for row in rows]


async def dump(harness: Harness) -> dict[str, list[bytes]]:
    """Every value of every column of every table, as bytes."""
    driver = harness.platform.store.inner.driver
    out: dict[str, list[bytes]] = {}
    for name in await table_names(harness):
        cells: list[bytes] = []
        for row in await driver.fetch(f'SELECT * FROM "{name}"'):
            for value in tuple(row):
                cells.append(bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode())
        out[name] = cells
    return out


async def test_no_raw_secret_in_any_column(harness: Harness) -> None:
    _world, raws = await full_flow(harness)
    tables = await dump(harness)
    for required in ("auth_codes", "tokens", "app_secrets", "audit_events", "webhook_deliveries"):
        assert tables.get(required), f"{required} is empty: the flow did not exercise it"
    leaks = [
        (table, raw[:8])
        for table, cells in tables.items()
        for raw in raws
        for form in forms(raw)
        for cell in cells
        if form in cell
    ]
    assert leaks == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # only SQLite has a file to read
async def test_no_raw_secret_in_the_sqlite_files(harness: Harness, settings: Settings) -> None:
    _world, raws = await full_flow(harness)
    path = Path(settings.sqlite_path)
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    assert Path(f"{path}-wal") in files
    data = {p.name: p.read_bytes() for p in files}
    assert [(name, raw[:8]) for name, blob in data.items() for raw in raws if raw.encode() in blob] == []


async def test_secrets_decrypt_under_the_server_key_only(harness: Harness) -> None:
    world, raws = await full_flow(harness)
    new_secret = raws[-1]
    assert await harness.admin.app_secret(world.app_id) == new_secret
    rows = await harness.platform.store.inner.driver.fetch(
        "SELECT secret_enc, expires_at FROM app_secrets WHERE app_id = ? ORDER BY id", world.app_id
    )
    blobs = [bytes(row["secret_enc"]) for row in rows]
    assert len(blobs) == 2  # the old secret in its grace period, and the current one
    server = Keyring(TEST_SECRET_KEY.encode())
    assert [server.decrypt(blob, world.app_id) for blob in blobs] == [world.secret, new_secret]
    other = Keyring(b"another-server-key-0123456789abcdef")
    for blob in blobs:
        with pytest.raises(InvalidTag):
            other.decrypt(blob, world.app_id)
        with pytest.raises(InvalidTag):  # bound to its app: a row copied to another app is useless
            server.decrypt(blob, "0" * 32)


# -------------------------------------------------------- the live server's log


@pytest.mark.parametrize("settings_overrides", [{"log_level": "debug"}])
def test_server_log_never_holds_a_token_or_secret(
    settings: Settings, live_server: LiveServer, harness_free_world: World
) -> None:
    world = harness_free_world
    raws = [world.secret]
    with httpx.Client(base_url=live_server, timeout=10) as http:
        connect = dict(app_id=world.app_id, redirect_uri=world.redirect_uri, response_type="code",
                       scope="install_login", xspe=world.xspe, state="s", customer_id=world.customer_id)  # fmt: skip
        location = http.get("/oauth/connect", params=connect).headers["location"]
        code = httpx.URL(location).params["code"]
        grant = dict(app_id=world.app_id, secret=world.secret, code=code, grant_type="authorization_code")
        tokens = http.post("/oauth/access_token", data=grant).json()["result"]
        rotate = dict(app_id=world.app_id, refresh_token=tokens["refresh_token"], grant_type="refresh_code")
        rotated = http.post("/oauth/refresh_token", data=rotate).json()["result"]
        assert http.post("/oauth/refresh_token", data=rotate).json()["code"] == 0  # the leeway retry
        app = dict(app_id=world.app_id, secret=world.secret, grant_type="client_credential")
        app_token = http.post("/oauth/credit/token", data=app).json()["result"]["access_token"]
        raws += [code, tokens["access_token"], tokens["refresh_token"], rotated["access_token"]]
        raws += [rotated["refresh_token"], app_token]
        for token in (rotated["access_token"], app_token, tokens["access_token"]):
            http.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": token})
        http.get("/api/spe/customers", headers={"Authorization": f"Bearer {app_token}"})
        http.get("/no/such/path", params={"access_token": app_token, "secret": world.secret})
        http.post("/oauth/credit/token", data={**app, "secret": world.secret + "x"})
        http.post("/oauth/credit/token", content=f"app_id={world.app_id}&secret={world.secret}&secret=a")
        http.post("/oauth/revoke", data={"token": app_token}, auth=(world.app_id, world.secret))
        assert http.post("/oauth/access_token", data=grant).json()["code"] == 40006  # replay: family revoked
        http.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": rotated["access_token"]})
    log = live_server.log.read_text()
    assert "Uvicorn running" in log  # the right file, written by the server
    assert [raw[:8] for raw in raws if raw in log] == []


@pytest.fixture
def harness_free_world(settings: Settings) -> World:
    """Seed the database for a live server without running an app in this process."""

    return seed_world(settings)
