"""A credential made valid elsewhere works at once on every node (found by the operator review of issue 10).

An operator's portal rotates an app's secret through the admin API or ``openplatform app
rotate-secret`` and hands the new secret to the app, which uses it at once, on any node or worker.
Each node caches the app (SPEC §7) and learns of changes made elsewhere by polling the invalidation
log (without Redis), so the new secret was refused as a wrong one (``40101``) by every other
process until its next poll, and each refusal counted towards the app's bad-secret lock-out: an
app running on a few machines could lock itself out (``42901``) with the secret it was just
given. The same after ``app resume``. A refusal now reads the app past the cache once before it
is final; what revokes (an old secret after its grace, a suspension) still reaches every node
within the poll's bound, as docs/deployment.md says.

Two real ``openplatform serve`` nodes on one database (SQLite file, PostgreSQL), no Redis, with
the slowest invalidation poll the settings allow (5 s), so the change is not yet polled when the
credential is used.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from openplatform.config import Settings
from tests.conftest import TEST_SECRET_KEY, World, _truncate, seed_world
from tests.multinode.cluster import Cluster

POLL_SECONDS = 5.0  # the setting's maximum: the nodes do not poll during a test step


@pytest.fixture(params=["sqlite", "postgres"])
def slow_poll_cluster(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[tuple[Cluster, World]]:
    if request.param == "sqlite":
        shutil.copy(sqlite_template, tmp_path / "shared.db")
        url = f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        url = request.getfixturevalue("pg_database")
        asyncio.run(_truncate(url))
    # Rate limits on (the default): a refused secret counts towards the lock-out.
    settings = Settings(
        database_url=url, secret_key=TEST_SECRET_KEY, log_level="warning", invalidation_poll_seconds=POLL_SECONDS
    )
    world = seed_world(settings)
    group = Cluster(request.param, settings, tmp_path)
    try:
        group.nodes = group.spawn(2)
        yield group, world
    finally:
        group.stop_all()


def app_token(node_url: str, app_id: str, secret: str) -> httpx.Response:
    data = {"app_id": app_id, "secret": secret, "grant_type": "client_credential"}
    return httpx.post(f"{node_url}/oauth/credit/token", data=data, timeout=15)


def test_a_new_secret_and_a_resumed_app_work_at_once_on_every_node(
    slow_poll_cluster: tuple[Cluster, World],
) -> None:
    cluster, world = slow_poll_cluster
    other = cluster.nodes[1]
    assert app_token(other.url, world.app_id, world.secret).json()["code"] == 0  # the app is in its cache

    rotated = cluster.cli("app", "rotate-secret", "--app-id", world.app_id).output["secret"]
    for _ in range(12):  # more than the bad-secret lock-out allows (10 per 5 minutes)
        answer = app_token(other.url, world.app_id, rotated)
        assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text

    cluster.cli("app", "suspend", "--app-id", world.app_id)
    deadline = time.monotonic() + 3 * POLL_SECONDS  # a suspension reaches the node by its poll
    while app_token(other.url, world.app_id, rotated).json()["code"] != 40101:
        assert time.monotonic() < deadline, "the suspension never reached the other node"
        time.sleep(0.2)
    cluster.cli("app", "resume", "--app-id", world.app_id)
    answer = app_token(other.url, world.app_id, rotated)
    assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text
