"""A backing service down gives 50301 temporarily_unavailable, never a 500 (SPEC §2).

PostgreSQL: a throwaway database is made unreachable for real (connections
refused, existing ones terminated) while a server runs on it, then reopened.
SQLite has no server to stop; its real outage is the disk: a live server is
forbidden to grow files (RLIMIT_FSIZE, exactly what a full disk or an exhausted
quota looks like to SQLite), then given space back.
"""

from __future__ import annotations

import asyncio
import os
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from openplatform.config import Settings, load_settings
from openplatform.storage.sql import migrate
from openplatform.web.app import create_app
from tests.conftest import PG_SERVER, TEST_SECRET_KEY, World, _pg_database, cli_env, free_port, seed_world

# --------------------------------------------------------------- PostgreSQL


@pytest.fixture
def throwaway_pg(pg_database: str) -> Iterator[str]:
    """A migrated database of its own: switching it off must not disturb other tests."""
    url = f"{PG_SERVER}/openplatform_test_{os.getpid()}_down"
    asyncio.run(_pg_database(url, create=True))
    migrate.upgrade(load_settings(database_url=url, secret_key=TEST_SECRET_KEY))
    yield url
    asyncio.run(switch(url, allow=True))
    asyncio.run(_pg_database(url, create=False))


async def switch(url: str, allow: bool) -> None:
    """Allow or refuse connections to the database; refusing also ends the open ones."""
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
    finally:
        await admin.close()


@pytest.fixture
async def server_on(throwaway_pg: str) -> AsyncIterator[tuple[httpx.AsyncClient, World]]:
    settings = load_settings(database_url=throwaway_pg, secret_key=TEST_SECRET_KEY, rate_limits="off",
                             invalidation_poll_seconds=0.1)  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        admin = app.state.admin
        spe = await admin.create_spe("Acme SPE")
        customer = await admin.create_customer(spe.xspe, "Customer One")
        created, secret = await admin.create_app("App", "https://app.example.com/", ["customer:read"])
        install = await admin.install(created.app_id, customer_id=customer.customer_id)
        world = World(spe.xspe, customer.customer_id, created.app_id, secret, created.host_url,
                      install.installation_id)  # fmt: skip
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, world


def assert_unavailable(response: httpx.Response) -> None:
    body = response.json()
    assert (response.status_code, body["code"], body["error"]) == (503, 50301, "temporarily_unavailable"), body
    assert body["result"] is None
    assert response.headers.get("retry-after")
    assert "Traceback" not in response.text and "asyncpg" not in response.text


async def eventually(probe: Callable[[], Awaitable[int]], expected: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (got := await probe()) != expected:
        assert time.monotonic() < deadline, f"still {got}, expected {expected}"
        await asyncio.sleep(0.05)


async def test_postgres_down_gives_50301_and_recovers(
    throwaway_pg: str, server_on: tuple[httpx.AsyncClient, World]
) -> None:
    client, world = server_on
    app_form = dict(app_id=world.app_id, secret=world.secret, grant_type="client_credential")
    app_token = (await client.post("/oauth/credit/token", data=app_form)).json()["result"]["access_token"]
    connect = dict(app_id=world.app_id, redirect_uri="https://app.example.com/cb", response_type="code",
                   scope="install_login", xspe=world.xspe, state="s", customer_id=world.customer_id)  # fmt: skip
    code = httpx.URL((await client.get("/oauth/connect", params=connect)).headers["location"]).params["code"]
    customer_path = f"/api/spe/customer/{world.customer_id}"
    bearer = {"Authorization": f"Bearer {app_token}"}

    async def open_api() -> int:
        return (await client.get(customer_path, headers=bearer)).json()["code"]  # type: ignore[no-any-return]

    assert await open_api() == 0

    await switch(throwaway_pg, allow=False)
    assert_unavailable(await client.post("/oauth/credit/token", data=app_form))
    # Cached entries are dropped once the invalidation log cannot be read: no stale answers.
    await eventually(open_api, 50301, within=2.0)
    assert_unavailable(await client.get(customer_path, headers=bearer))
    grant = dict(app_id=world.app_id, secret=world.secret, code=code, grant_type="authorization_code")
    assert_unavailable(await client.post("/oauth/access_token", data=grant))
    assert_unavailable(await client.get("/oauth/connect", params=connect))
    assert_unavailable(await client.get("/readyz"))
    assert (await client.get("/healthz")).status_code == 200

    await switch(throwaway_pg, allow=True)

    async def app_token_code() -> int:
        return (await client.post("/oauth/credit/token", data=app_form)).json()["code"]  # type: ignore[no-any-return]

    await eventually(app_token_code, 0)
    assert (await client.get("/readyz")).status_code == 200
    await eventually(open_api, 0)
    tokens = (await client.post("/oauth/access_token", data=grant)).json()
    assert tokens["code"] == 0, tokens  # the refused exchange did not burn the code


# ------------------------------------------------------------------- SQLite


def poll(probe: Callable[[], object], expected: object, within: float = 5.0) -> list[object]:
    """Call ``probe`` until it answers ``expected``; returns every answer seen."""
    seen = [probe()]
    deadline = time.monotonic() + within
    while seen[-1] != expected:
        assert time.monotonic() < deadline, f"answers so far: {seen}"
        time.sleep(0.02)
        seen.append(probe())
    return seen


FILE_LIMIT = 131072  # bytes any file of the server may reach: the WAL fills after a few commits


@pytest.fixture
def cramped_server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """``openplatform serve`` that may not grow a file beyond FILE_LIMIT (RLIMIT_FSIZE).

    Python ignores SIGXFSZ, so an oversized write fails with EFBIG, which SQLite
    reports as SQLITE_IOERR_WRITE: what a full disk or an exhausted quota does.
    """

    def cramp() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))

    port = free_port()
    with (tmp_path / "server.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "openplatform.cli", "serve", "--port", str(port)],
            env=cli_env(settings), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, preexec_fn=cramp,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            poll(lambda: healthz(base, process), 200, within=30)
            yield base
        finally:
            process.terminate()
            process.wait(timeout=10)


def healthz(base: str, process: subprocess.Popen[bytes]) -> int:
    assert process.poll() is None, "the server exited"
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code
    except httpx.TransportError:
        return 0


def free_the_disk(settings: Settings) -> None:
    """Fold the WAL into the database and empty it (from this unlimited process)."""
    conn = sqlite3.connect(settings.sqlite_path, timeout=10)
    try:
        busy, _frames, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0
    finally:
        conn.close()
    assert Path(f"{settings.sqlite_path}-wal").stat().st_size == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_disk_full_gives_50301_and_recovers(settings: Settings, cramped_server: str, tmp_path: Path) -> None:
    """Writes answer 50301 while the disk is full; reads (token checks) keep working;
    once there is room again the same server writes again."""
    world = seed_world(settings)
    free_the_disk(settings)  # the seeding above wrote to the WAL from this process
    app_form = dict(app_id=world.app_id, secret=world.secret, grant_type="client_credential")
    with httpx.Client(base_url=cramped_server, timeout=10) as http:
        token = http.post("/oauth/credit/token", data=app_form).json()["result"]["access_token"]
        connect = dict(app_id=world.app_id, redirect_uri="https://app.example.com/cb", response_type="code",
                       scope="install_login", xspe=world.xspe, state="s", customer_id=world.customer_id)  # fmt: skip
        code = httpx.URL(http.get("/oauth/connect", params=connect).headers["location"]).params["code"]
        grant = dict(app_id=world.app_id, secret=world.secret, code=code, grant_type="authorization_code")

        def app_token() -> int:
            return http.post("/oauth/credit/token", data=app_form).json()["code"]  # type: ignore[no-any-return]

        def connect_code() -> int:
            response = http.get("/oauth/connect", params=connect)
            return 0 if response.status_code == 302 else int(response.json()["code"])

        # A few commits fit, then a big write fails while a smaller one may still
        # squeeze in: fill until both kinds fail (both are repeatable; a code exchange is not).
        seen = poll(lambda: (app_token(), connect_code()), (50301, 50301))
        assert {code for pair in seen for code in pair} <= {0, 50301}, seen  # type: ignore[attr-defined]
        assert_unavailable(http.post("/oauth/credit/token", data=app_form))
        assert_unavailable(http.post("/oauth/access_token", data=grant))
        assert_unavailable(http.get("/oauth/connect", params=connect))
        customer = http.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": token})
        assert customer.json()["code"] == 0  # reads still work
        assert http.get("/healthz").status_code == 200

        free_the_disk(settings)
        # The refused exchange did not burn the code: it works as soon as there is room.
        poll(lambda: http.post("/oauth/access_token", data=grant).json()["code"], 0)
        assert app_token() == 0
    assert "Traceback" not in (tmp_path / "server.log").read_text()
