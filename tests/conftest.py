"""Fixtures: a real database (SQLite file and PostgreSQL), the app over HTTP, seed helpers.

Every test that takes ``harness`` (or ``database_url``) runs three times: on the
in-memory backend (``memory://``), on a fresh SQLite file and on PostgreSQL. A test
marked ``sql`` (it reads SQL itself, or runs processes that must share a database)
runs on the last two only: its ``memory`` case is deselected, never skipped.
Without a reachable PostgreSQL/Redis/Chromium the tests that need one are
skipped with the reason shown; with
``OPENPLATFORM_REQUIRE_SERVICES=1`` (set by .ci/run) they fail instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from openplatform.config import MEMORY_URL, Settings
from openplatform.records import AuditFilter
from openplatform.storage.sql import migrate
from openplatform.storage.sql.schema import metadata
from openplatform.web.app import create_app

# One database per test run (several runs may share a PostgreSQL server).
PG_SERVER = os.environ.get("OPENPLATFORM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
PG_URL = f"{PG_SERVER}/openplatform_test_{os.getpid()}"
REDIS_URL = os.environ.get("OPENPLATFORM_TEST_REDIS", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("OPENPLATFORM_REQUIRE_SERVICES") == "1"
TEST_SECRET_KEY = "test-server-key-not-for-production-0123456789"
CALLBACK = "https://app.example.com/callback"


def need(available: bool, reason: str) -> None:
    """Skip (or, in CI, fail) when a backing service is missing."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------- databases


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate once; each test gets a copy of the file (migrating per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(Settings(database_url=f"sqlite:///{path}", secret_key=TEST_SECRET_KEY))
    return path


async def _pg_database(url: str, create: bool) -> None:
    import asyncpg

    base, name = url.rsplit("/", 1)
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not reachable on 127.0.0.1:5432")
    asyncio.run(_pg_database(PG_URL, create=True))
    migrate.upgrade(Settings(database_url=PG_URL, secret_key=TEST_SECRET_KEY))
    yield PG_URL
    asyncio.run(_pg_database(PG_URL, create=False))


async def _truncate(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        # DELETE is 10-40x faster than TRUNCATE on these small tables (TRUNCATE
        # rewrites every file); children first so foreign keys hold.
        async with conn.transaction():
            for table in reversed(metadata.sorted_tables):
                await conn.execute(f"DELETE FROM {table.name}")
    finally:
        await conn.close()


BACKENDS = ("memory", "sqlite", "postgres")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the ``memory`` case of tests marked ``sql`` (reported as deselected, not skipped)."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_memory = callspec is not None and callspec.params.get("database_url") == "memory"
        (dropped if on_memory and item.get_closest_marker("sql") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "memory":
        return MEMORY_URL
    if request.param == "sqlite":
        target = tmp_path / "openplatform.db"
        shutil.copy(sqlite_template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(_truncate(url))
    return url


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its harness."""
    return {}


@pytest.fixture
def settings(database_url: str, settings_overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = dict(
        database_url=database_url, secret_key=TEST_SECRET_KEY, rate_limits="off",
        invalidation_poll_seconds=0.1,
    )  # fmt: skip
    values.update(settings_overrides)
    return Settings(**values)


# --------------------------------------------------------------------- harness


class FakeClock:
    """Wall-clock time plus an offset the test can advance."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class World:
    """One SPE, one customer, one app installed for that customer."""

    xspe: str
    customer_id: str
    app_id: str
    secret: str
    host_url: str
    installation_id: str
    redirect_uri: str = CALLBACK


class Harness:
    def __init__(self, app: Any, client: httpx.AsyncClient, clock: FakeClock) -> None:
        self.app = app
        self.client = client
        self.clock = clock
        self.platform = app.state.platform
        self.admin = app.state.admin

    def client_from(self, ip: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        """A client whose TCP peer address is ``ip``."""
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)

    async def world(
        self,
        scopes: tuple[str, ...] = ("customer:read", "customer:write", "site:read", "site:write"),
        ip_whitelist: tuple[str, ...] = (),
        host_url: str = "https://app.example.com/",
        spe_wide: bool = False,
    ) -> World:
        spe = await self.admin.create_spe("Acme SPE")
        customer = await self.admin.create_customer(spe.xspe, "Customer One", "one@example.com")
        app, secret = await self.admin.create_app("Test App", host_url, list(scopes), list(ip_whitelist))
        install = await self.admin.install(
            app.app_id, customer_id=None if spe_wide else customer.customer_id, xspe=spe.xspe if spe_wide else None
        )
        return World(spe.xspe, customer.customer_id, app.app_id, secret, host_url, install.installation_id)

    def connect_params(self, world: World, **overrides: str | None) -> dict[str, str]:
        params: dict[str, str | None] = dict(
            app_id=world.app_id, redirect_uri=world.redirect_uri, response_type="code",
            scope="install_login", xspe=world.xspe, state="st-123", customer_id=world.customer_id,
        )  # fmt: skip
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    async def connect(self, world: World, **overrides: str | None) -> httpx.Response:
        return await self.client.get("/oauth/connect", params=self.connect_params(world, **overrides))

    async def code(self, world: World, **overrides: str | None) -> str:
        response = await self.connect(world, **overrides)
        assert response.status_code == 302, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        assert "code" in query, response.headers["location"]
        return query["code"][0]

    async def exchange(self, world: World, code: str, **extra: str) -> httpx.Response:
        data = dict(app_id=world.app_id, secret=world.secret, code=code, grant_type="authorization_code")
        data.update(extra)
        return await self.client.post("/oauth/access_token", data=data)

    async def user_tokens(self, world: World) -> dict[str, Any]:
        response = await self.exchange(world, await self.code(world))
        assert response.status_code == 200, response.text
        return response.json()["result"]  # type: ignore[no-any-return]

    async def refresh(self, world: World, refresh_token: str, **extra: str) -> httpx.Response:
        data = dict(app_id=world.app_id, refresh_token=refresh_token, grant_type="refresh_code")
        data.update(extra)
        return await self.client.post("/oauth/refresh_token", data=data)

    async def app_token(self, world: World) -> str:
        response = await self.client.post(
            "/oauth/credit/token",
            data=dict(app_id=world.app_id, secret=world.secret, grant_type="client_credential"),
        )
        assert response.status_code == 200, response.text
        return response.json()["result"]["access_token"]  # type: ignore[no-any-return]

    async def audit(self, app_id: str | None = None, limit: int = 50) -> list[dict[str, object]]:
        """The newest ``limit`` audit events (of one app if given), newest first, ``detail`` a dict."""
        events, _total = await self.admin.db.audit_page(AuditFilter(app_id=app_id), limit, 0)
        return events

    async def wait_for_invalidation(self) -> None:
        """Let the poller pick up changes made outside this process (CLI, other nodes)."""
        await self.platform.store.poll_once()

    async def flush(self) -> None:
        """Commit what the token side has queued (its audit rows ride the group-commit writer's next
        batch), so a read sees it; the memory backend writes at once, so there it does nothing."""
        driver = getattr(self.platform.store.inner, "driver", None)
        if driver is not None:
            await driver.write(_nothing)


async def _nothing(tx: object) -> None:
    """A write of nothing: its commit carries what the writer had queued."""


def seed_world(settings: Settings) -> World:
    """Seed one World in the database without running an app in this process (for live servers)."""
    from openplatform.runtime import build_admin

    async def seed() -> World:
        admin = build_admin(settings)
        try:
            spe = await admin.create_spe("Acme SPE")
            customer = await admin.create_customer(spe.xspe, "Customer One")
            app, secret = await admin.create_app("App", "https://app.example.com/", ["customer:read"])
            install = await admin.install(app.app_id, customer_id=customer.customer_id)
        finally:
            await admin.db.close()
        return World(spe.xspe, customer.customer_id, app.app_id, secret, app.host_url, install.installation_id)

    return asyncio.run(seed())


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    app = create_app(settings)
    clock = FakeClock()
    app.state.platform.clock = clock
    app.state.platform.store.inner.clock = clock
    app.state.admin.stores.set_clock(clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Harness(app, client, clock)


# ------------------------------------------------------- a real server process


def cli_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OPENPLATFORM_DATABASE_URL=settings.database_url,
        OPENPLATFORM_SECRET_KEY=settings.secret_key,
        OPENPLATFORM_RATE_LIMITS=settings.rate_limits,
        OPENPLATFORM_INVALIDATION_POLL_SECONDS=str(settings.invalidation_poll_seconds),
        OPENPLATFORM_LOG_LEVEL=settings.log_level,
        OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS=settings.webhook_private_networks,
    )
    return env


def run_cli(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "openplatform.cli", *args],
        env=cli_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if check:
        assert result.returncode == 0, result.stderr
    return result


class LiveServer(str):
    """The base URL of a live server (a str), with the file its output goes to and its process id."""

    log: Path
    pid: int


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    """``openplatform serve`` in its own process on a free loopback port."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "openplatform.cli", "serve", "--port", str(port)],
        env=cli_env(settings), stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError((tmp_path / "server.log").read_text())
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start in 30 s")
        server = LiveServer(base)
        server.log = tmp_path / "server.log"
        server.pid = process.pid
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
