"""/metrics answers only with an admin key of the whole platform (SPEC §9, §10).

Keys come from ``openplatform admin-key create`` (printed once, stored only as
a keyed digest) and stop at once with ``admin-key revoke``.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import Harness, run_cli

# Keys made and revoked by the CLI (another process on the same database), their rows read in SQL.
pytestmark = pytest.mark.sql


async def scrape(harness: Harness, key: str | None) -> tuple[int, str, dict[str, str]]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    response = await harness.client.get("/metrics", headers=headers)
    return response.status_code, response.text, dict(response.headers)


async def test_metrics_need_a_platform_admin_key(harness: Harness) -> None:
    settings = harness.platform.settings
    world = await harness.world()
    created = json.loads(run_cli(settings, "admin-key", "create", "--name", "prometheus").stdout)
    assert set(created) >= {"key_id", "key"} and created["xspe"] is None
    bound = json.loads(run_cli(settings, "admin-key", "create", "--name", "portal", "--xspe", world.xspe).stdout)

    status, body, headers = await scrape(harness, None)
    assert (status, json.loads(body)["code"]) == (401, 40102)
    assert headers["www-authenticate"] == 'Bearer realm="openplatform"'
    for wrong in ("not-a-key", created["key"] + "x", "opk_" + "A" * 43):
        assert (await scrape(harness, wrong))[0] == 401, wrong

    status, body, _headers = await scrape(harness, created["key"])
    assert status == 200 and "openplatform_requests_total" in body
    status, body, _headers = await scrape(harness, bound["key"])
    assert (status, json.loads(body)["code"]) == (403, 40301)

    driver = harness.platform.store.inner.driver
    stored = await driver.fetch("SELECT * FROM admin_keys")
    assert len(stored) == 2 and not any(created["key"] in str(dict(row)) for row in stored)  # only digests

    revoked = json.loads(run_cli(settings, "admin-key", "revoke", "--key-id", created["key_id"]).stdout)
    assert revoked == {"key_id": created["key_id"], "revoked": True}
    assert (await scrape(harness, created["key"]))[0] == 401
    again = run_cli(settings, "admin-key", "revoke", "--key-id", created["key_id"], check=False)
    assert again.returncode != 0 and "no live admin key" in again.stderr


async def test_an_admin_key_for_an_unknown_spe_is_refused(harness: Harness) -> None:
    result = run_cli(harness.platform.settings, "admin-key", "create", "--name", "x", "--xspe", "spe_nope", check=False)
    assert result.returncode != 0 and "no SPE" in result.stderr and result.stdout == ""
