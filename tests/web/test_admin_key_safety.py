"""Admin keys an operator can manage safely (issue 10, the attacker review's follow-ups).

- ``admin-key create --metrics-only``: a key ``/metrics`` takes and the admin API refuses (403),
  so the key a Prometheus server holds cannot create apps, rotate secrets or set passwords;
- reads are audited at most once a minute per key and operation, writes always; a key-shaped
  bearer that matches no live key is counted in a metric, not audited;
- ``admin-key list`` (never the key or its digest; ``last_used_at`` written at most once a
  minute) and ``admin-key revoke --key-stdin`` (a leaked key whose id is unknown).

On memory, SQLite and PostgreSQL (the ``harness`` fixture); what the CLI and a live server do,
on SQLite and PostgreSQL only (marked ``sql``). The rate limit per key is in
``test_admin_key_rate_limit.py``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from openplatform.config import Settings
from openplatform.records import AuditFilter
from openplatform.services.admin_keys import AdminKeys
from openplatform.storage.sql.schema import admin_keys
from openplatform.web.manage_api import routes
from tests.conftest import Harness, LiveServer, cli_env, run_cli
from tests.web.manage_support import M, admin_key, manage, snapshot

ROOT = Path(__file__).resolve().parents[2]


def cli_json(settings: Settings, *args: str) -> Any:
    return json.loads(run_cli(settings, *args).stdout)


def cli_with_stdin(settings: Settings, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openplatform.cli", *args], input=stdin,
        env=cli_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def uses(harness: Harness, key_id: str) -> list[tuple[str, int]]:
    """The ``admin_key.used`` events of ``key_id``, oldest first: (operation, code)."""
    rows, total = await harness.admin.db.audit_page(AuditFilter(event="admin_key.used"), 1000, 0)
    assert len(rows) == total  # all of them, on one page
    found = [row["detail"] for row in reversed(rows)]  # the page is newest first
    return [(d["operation"], d["code"]) for d in found if isinstance(d, dict) and d["key_id"] == key_id]


async def audit_count(harness: Harness) -> int:
    _page, total = await harness.admin.db.audit_page(AuditFilter(), 1, 0)
    return total


async def last_used(harness: Harness, key_id: str) -> float | None:
    (key,) = [k for k in await harness.admin.stores.admin_keys.list_keys() if k.key_id == key_id]
    return key.last_used_at


def failures() -> float:
    return REGISTRY.get_sample_value("openplatform_admin_key_failures_total") or 0.0


# ------------------------------------------------------------ metrics-only keys


@pytest.mark.sql  # the CLI, another process (the openplatform command refuses memory://)
def test_the_cli_prints_a_metrics_only_key_as_any_other(settings: Settings) -> None:
    plain = cli_json(settings, "admin-key", "create", "--name", "ops")
    scraper = cli_json(settings, "admin-key", "create", "--name", "prometheus", "--metrics-only")
    assert set(scraper) == set(plain) == {"key_id", "key", "name", "xspe"}  # SPEC §10's output, unchanged
    assert scraper["key"].startswith("opk_") and scraper["xspe"] is None


async def test_a_metrics_only_key_scrapes_and_the_admin_api_refuses_it(harness: Harness) -> None:
    keys = AdminKeys(harness.admin.stores, harness.admin.keyring)  # as admin-key create makes them
    made_plain, plain_key = await keys.create("ops")
    made_scraper, scraper_key = await keys.create("prometheus", metrics_only=True)
    plain = {"key_id": made_plain.key_id, "key": plain_key}
    scraper = {"key_id": made_scraper.key_id, "key": scraper_key}

    answer = await harness.client.get("/metrics", headers=bearer(scraper["key"]))
    assert answer.status_code == 200 and "openplatform_requests_total" in answer.text
    spe = await manage(harness, bearer(plain["key"]), "POST", "/spes", json={"name": "Scraped"})

    before = await snapshot(harness)
    for route in routes:  # every admin operation, reads and writes alike
        path = route.path.replace("{", "").replace("}", "")  # any id: the key is refused before any lookup
        response = await harness.client.request(
            route.method, path, headers=bearer(scraper["key"]), json={"name": "Not yours", "password": "x" * 20}
        )
        assert response.status_code == 403, (route.method, path, response.text)
        body = response.json()
        assert (body["code"], body["error"], body["result"]) == (40301, "access_denied", None)
        assert "/metrics only" in body["msg"] and response.headers["cache-control"] == "no-store"
    assert await snapshot(harness) == before  # nothing created, rotated or reset
    assert (await manage(harness, bearer(plain["key"]), "GET", f"/spes/{spe['xspe']}"))["name"] == "Scraped"

    refused = await uses(harness, scraper["key_id"])
    assert sorted(refused) == sorted({(route.name, 40301) for route in routes})  # each once, as a read


@pytest.mark.sql  # the CLI's own check (the openplatform command refuses memory://)
def test_a_metrics_only_key_cannot_be_bound_to_an_spe(settings: Settings) -> None:
    result = run_cli(settings, "admin-key", "create", "--name", "x", "--metrics-only", "--xspe", "spe_x", check=False)
    assert result.returncode == 2 and "--metrics-only" in result.stderr and result.stdout == ""


# ----------------------------------------------------------------------- audit


async def test_reads_are_audited_once_a_minute_per_operation_and_writes_always(harness: Harness) -> None:
    key_id, key = await admin_key(harness)
    for _ in range(3):
        await manage(harness, key, "GET", "/spes")
    await manage(harness, key, "GET", "/apps")
    await manage(harness, key, "GET", "/spes/spe_nope", 404)
    await manage(harness, key, "GET", "/spes/spe_nope", 404)
    for name in ("One", "Two"):
        await manage(harness, key, "POST", "/spes", json={"name": name})
    await manage(harness, key, "POST", "/spes", 400, json={"name": ""})
    assert await uses(harness, key_id) == [
        ("manage.spes.list", 0), ("manage.apps.list", 0), ("manage.spe.get", 40401),
        ("manage.spes.create", 0), ("manage.spes.create", 0), ("manage.spes.create", 40001),
    ]  # fmt: skip

    harness.clock.advance(61)
    await manage(harness, key, "GET", "/spes")
    await manage(harness, key, "GET", "/spes")
    assert (await uses(harness, key_id))[-2:] == [("manage.spes.create", 40001), ("manage.spes.list", 0)]
    assert len(await uses(harness, key_id)) == 7


async def test_last_used_at_is_written_at_most_once_a_minute(harness: Harness) -> None:
    key_id, key = await admin_key(harness)
    assert await last_used(harness, key_id) is None
    await manage(harness, key, "GET", "/spes")
    first = await last_used(harness, key_id)
    assert first is not None and abs(first - harness.clock()) < 5
    await manage(harness, key, "POST", "/spes", json={"name": "Busy"})
    await manage(harness, key, "GET", "/apps")
    assert await last_used(harness, key_id) == first  # no write per request

    harness.clock.advance(90)
    await manage(harness, key, "GET", "/spes")
    later = await last_used(harness, key_id)
    assert later is not None and later - first >= 90


async def test_a_key_shaped_bearer_matching_no_key_is_counted_not_audited(harness: Harness) -> None:
    key_id, key = await admin_key(harness)
    rows = await audit_count(harness)
    counted = failures()
    wrong = ["opk_" + "A" * 43, key["Authorization"].split()[1] + "x", "opk_" + "B" * 500]
    for value in wrong:
        assert (await harness.client.get(M + "/spes", headers=bearer(value))).status_code == 401
    assert (await harness.client.get("/metrics", headers=bearer(wrong[0]))).status_code == 401
    for other in ({"Authorization": "Bearer not-a-key"}, {"Authorization": "Basic b3BzOm9wcw=="}, {}):
        assert (await harness.client.get(M + "/spes", headers=other)).status_code == 401  # not a guess at a key
    assert failures() - counted == 4
    assert await audit_count(harness) == rows

    assert await harness.admin.stores.admin_keys.revoke(key_id)
    assert (await harness.client.get(M + "/spes", headers=key)).status_code == 401  # a revoked key counts too
    assert failures() - counted == 5 and await uses(harness, key_id) == []


# ------------------------------------------------------------ list and revoke


@pytest.mark.sql  # the CLI's listing, and the digests as stored in SQL
async def test_admin_key_list_shows_every_key_never_the_key(harness: Harness) -> None:
    settings = harness.platform.settings
    world = await harness.world()
    ops = cli_json(settings, "admin-key", "create", "--name", "ops")
    portal = cli_json(settings, "admin-key", "create", "--name", "portal", "--xspe", world.xspe)
    scraper = cli_json(settings, "admin-key", "create", "--name", "prometheus", "--metrics-only")
    assert (await harness.client.get("/metrics", headers=bearer(scraper["key"]))).status_code == 200
    cli_json(settings, "admin-key", "revoke", "--key-id", portal["key_id"])

    result = run_cli(settings, "admin-key", "list")
    listed = json.loads(result.stdout)
    assert list(listed) == ["items"]
    items = {item["key_id"]: item for item in listed["items"]}
    assert list(items) == [ops["key_id"], portal["key_id"], scraper["key_id"]]  # oldest first
    for item in items.values():
        assert set(item) == {"key_id", "name", "xspe", "metrics_only", "created_at", "revoked_at", "last_used_at"}
        assert isinstance(item["created_at"], int)
    assert (items[ops["key_id"]]["metrics_only"], items[scraper["key_id"]]["metrics_only"]) == (False, True)
    assert items[portal["key_id"]]["xspe"] == world.xspe and isinstance(items[portal["key_id"]]["revoked_at"], int)
    assert items[ops["key_id"]]["revoked_at"] is None and items[ops["key_id"]]["last_used_at"] is None
    assert isinstance(items[scraper["key_id"]]["last_used_at"], int)  # the scrape above

    digests = [row["key_digest"] for row in await harness.admin.db.database.read(select(admin_keys.c.key_digest))]
    for secret in [ops["key"], portal["key"], scraper["key"], *digests]:
        assert secret not in result.stdout and secret[4:24] not in result.stdout


@pytest.mark.sql  # the CLI, another process (the openplatform command refuses memory://)
async def test_a_leaked_key_is_revoked_by_its_value_from_stdin(harness: Harness) -> None:
    settings = harness.platform.settings
    leaked = cli_json(settings, "admin-key", "create", "--name", "leaked")
    kept = cli_json(settings, "admin-key", "create", "--name", "kept")
    assert (await harness.client.get(M + "/spes", headers=bearer(leaked["key"]))).status_code == 200

    result = cli_with_stdin(settings, leaked["key"] + "\n", "admin-key", "revoke", "--key-stdin")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"key_id": leaked["key_id"], "revoked": True}
    assert (await harness.client.get(M + "/spes", headers=bearer(leaked["key"]))).status_code == 401
    assert (await harness.client.get(M + "/spes", headers=bearer(kept["key"]))).status_code == 200

    again = cli_with_stdin(settings, leaked["key"] + "\n", "admin-key", "revoke", "--key-stdin")
    assert again.returncode == 4 and "no live admin key" in again.stderr
    assert leaked["key"] not in again.stderr and leaked["key"][4:20] not in again.stderr  # never repeated
    for args in ((), ("--key-id", kept["key_id"], "--key-stdin")):
        wrong = cli_with_stdin(settings, kept["key"] + "\n", "admin-key", "revoke", *args)
        assert wrong.returncode == 2 and "exactly one of --key-id ID and --key-stdin" in wrong.stderr
    assert (await harness.client.get(M + "/spes", headers=bearer(kept["key"]))).status_code == 200


# --------------------------------------------------------- a real server process


def documented_prometheus_key_command() -> list[str]:
    """docs/deployment.md's (Monitoring) command making Prometheus's key, as printed."""
    section = (ROOT / "docs" / "deployment.md").read_text().split("## Monitoring\n", 1)[1].split("\n## ", 1)[0]
    (line,) = re.findall(r"^    (openplatform admin-key create .*)$", section, re.MULTILINE)
    return shlex.split(line)


@pytest.mark.sql  # a live server and the CLI: processes sharing one database
def test_the_documented_prometheus_key_on_a_real_server(live_server: LiveServer, settings: Settings) -> None:
    command = documented_prometheus_key_command()
    assert command[:3] == ["openplatform", "admin-key", "create"] and "--metrics-only" in command
    scraper = cli_json(settings, *command[1:])
    with httpx.Client(base_url=live_server, headers=bearer(scraper["key"]), timeout=10) as client:
        scrape = client.get("/metrics")
        assert scrape.status_code == 200 and "openplatform_admin_key_failures_total" in scrape.text
        for method, path in (("POST", "/spes"), ("GET", "/users"), ("POST", "/apps/x/rotate-secret")):
            refused = client.request(method, M + path, json={"name": "Not yours"})
            assert (refused.status_code, refused.json()["code"]) == (403, 40301), refused.text
    (item,) = [i for i in cli_json(settings, "admin-key", "list")["items"] if i["key_id"] == scraper["key_id"]]
    assert item["metrics_only"] is True and item["last_used_at"] is not None

    revoked = cli_with_stdin(settings, scraper["key"] + "\n", "admin-key", "revoke", "--key-stdin")
    assert revoked.returncode == 0, revoked.stderr
    assert httpx.get(live_server + "/metrics", headers=bearer(scraper["key"]), timeout=10).status_code == 401
