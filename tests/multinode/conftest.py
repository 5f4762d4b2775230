"""The clusters of issue 8, started once per module and parameter.

- ``pg-redis``: three nodes on one PostgreSQL database and one Redis (``REDIS_URL``, db 15);
- ``pg``: two nodes on PostgreSQL without Redis;
- ``sqlite``: two nodes sharing one SQLite file.

The PostgreSQL clusters use the session's test database (emptied first; tests run one at a time, so
no other test truncates it while the nodes run); the SQLite cluster a copy of the migrated template.
The nodes run with the production default for the invalidation poll (0.5 s) and rate limits off, so
they keep nothing in Redis (only pub/sub, which holds no keys): there is nothing to flush.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from openplatform.config import Settings
from tests.conftest import REDIS_URL, TEST_SECRET_KEY, _truncate, need, port_open
from tests.multinode.cluster import Cluster

SHAPES = {"pg-redis": 3, "pg": 2, "sqlite": 2}


def _settings(database_url: str, redis_url: str | None) -> Settings:
    return Settings(database_url=database_url, redis_url=redis_url, secret_key=TEST_SECRET_KEY,
                    rate_limits="off", log_level="warning")  # fmt: skip


def _database(request: pytest.FixtureRequest, shape: str, workdir: Path, sqlite_template: Path) -> str:
    if shape == "sqlite":
        target = workdir / "shared.db"
        shutil.copy(sqlite_template, target)
        return f"sqlite:///{target}"
    url: str = request.getfixturevalue("pg_database")  # the session's migrated test database
    asyncio.run(_truncate(url))
    return url


@pytest.fixture(scope="module", params=list(SHAPES))
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[Cluster]:
    shape: str = request.param
    redis_url = None
    if shape == "pg-redis":
        need(port_open("127.0.0.1", 6379), "Redis is not reachable on 127.0.0.1:6379")
        redis_url = REDIS_URL
    workdir = tmp_path_factory.mktemp(shape)
    database_url = _database(request, shape, workdir, sqlite_template)
    group = Cluster(shape, _settings(database_url, redis_url), workdir, redis_url)
    try:
        *group.nodes, group.spare = group.spawn(SHAPES[shape] + 1)  # all at once: starting takes ~1 s each
        yield group
    finally:
        group.stop_all()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=15, limits=limits) as client:
        yield client
