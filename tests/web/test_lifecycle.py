"""SPEC §8: a token or code works only while everything behind it does (issue 8).

Each test is one finding of issue 8, in one process against the memory backend,
a real SQLite file and a real PostgreSQL database; changes made "elsewhere" go
through the CLI, a separate process that shares only the database (no Redis),
exactly like an operator's command next to a running server, or by hand in SQL:
those tests run on SQLite and PostgreSQL only (marked ``sql``). The multi-node
versions with several real servers are in tests/multinode.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from openplatform.models import TokenRecord
from openplatform.records import AuditFilter
from openplatform.storage.cache import CACHE_MAX_AGE, GAP_WAIT, PAGE, TokenCache
from tests.conftest import Harness, World, run_cli


def refused(response: httpx.Response, code: int) -> str:
    body = response.json()
    assert body["code"] == code, response.text
    return str(body["msg"])


async def introspect(harness: Harness, world: World, token: str) -> dict[str, Any]:
    response = await harness.client.post(
        "/oauth/introspect", data=dict(app_id=world.app_id, secret=world.secret, token=token)
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


async def open_api(harness: Harness, world: World, token: str) -> httpx.Response:
    return await harness.client.get(f"/api/spe/customer/{world.customer_id}", params={"access_token": token})


async def audited(harness: Harness, event: str) -> int:
    """How many times ``event`` was audited (rows coalesced on SQL count their occurrences)."""
    await harness.flush()  # the queued audit rows
    rows, total = await harness.admin.db.audit_page(AuditFilter(event=event), 1000, 0)
    assert len(rows) == total  # all of them, on one page
    return sum(int(str(row["occurrences"])) for row in rows)


async def set_customer_status(harness: Harness, world: World, status: str) -> None:
    """Through the Open API, as an SPE's app would (it drops this process's caches at once)."""
    app_token = await harness.app_token(world)
    customer = (await open_api(harness, world, app_token)).json()["result"]
    response = await harness.client.put(
        f"/api/spe/customer/{world.customer_id}",
        json={"status": status, "version": customer["version"]},
        headers={"Authorization": f"Bearer {app_token}"},
    )
    assert response.status_code == 200, response.text


# -------------------------------------------------- finding 1: a disabled customer


async def test_a_disabled_customer_stops_refresh_exchange_introspection_and_open_apis(harness: Harness) -> None:
    world = await harness.world(spe_wide=True)
    tokens = await harness.user_tokens(world)
    code = await harness.code(world)  # issued just before the customer is disabled
    await set_customer_status(harness, world, "disabled")

    assert "the customer is disabled" in refused(await harness.refresh(world, tokens["refresh_token"]), 40006)
    assert "the customer is disabled" in refused(await harness.exchange(world, code), 40006)
    assert await introspect(harness, world, tokens["access_token"]) == {"active": False}
    assert await introspect(harness, world, tokens["refresh_token"]) == {"active": False}
    assert "the customer is disabled" in refused(await open_api(harness, world, tokens["access_token"]), 40102)
    assert (await harness.connect(world)).headers["location"].count("error=access_denied") == 1

    # Disabling pauses: enabled again, the unexpired tokens work again (docs/architecture.md).
    await set_customer_status(harness, world, "active")
    assert (await introspect(harness, world, tokens["access_token"]))["active"] is True
    assert (await harness.refresh(world, tokens["refresh_token"])).status_code == 200


@pytest.mark.sql  # the CLI, another process on the same database
async def test_a_suspended_app_stops_its_user_tokens_even_before_the_cache_hears_of_it(harness: Harness) -> None:
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    run_cli(harness_settings(harness), "app", "suspend", "--app-id", world.app_id)  # another process, no Redis
    # This process has not polled yet: the refresh grant reads the database anyway.
    assert "the app is suspended" in refused(await harness.refresh(world, tokens["refresh_token"]), 40006)


def harness_settings(harness: Harness) -> Any:
    return harness.platform.settings


# ------------------------------- finding 2: an uninstall made by another process


@pytest.mark.sql  # the CLI, another process on the same database
async def test_after_a_cli_uninstall_nothing_issued_in_the_window_lives_on(harness: Harness) -> None:
    world = await harness.world()
    code = await harness.code(world)
    tokens = await harness.user_tokens(world)
    settings = harness_settings(harness)
    run_cli(settings, "uninstall", "--app-id", world.app_id, "--customer-id", world.customer_id)

    # Before this process has polled the invalidation log: nothing new is issued or rotated.
    location = (await harness.connect(world)).headers["location"]
    assert "error=access_denied" in location, location
    assert "no longer installed" in refused(await harness.exchange(world, code), 40006)
    assert "no longer installed" in refused(await harness.refresh(world, tokens["refresh_token"]), 40006)

    # Reinstalled: a new installation, so the old family stays dead.
    run_cli(settings, "install", "--app-id", world.app_id, "--customer-id", world.customer_id)
    await harness.wait_for_invalidation()
    assert "no longer installed" in refused(await harness.refresh(world, tokens["refresh_token"]), 40006)
    assert (await harness.exchange(world, await harness.code(world))).status_code == 200


@pytest.mark.sql  # the CLI, another process on the same database
async def test_tokens_issued_as_the_uninstall_commits_die_at_their_next_use(harness: Harness) -> None:
    """A refresh that passed its check just before the uninstall committed still stores a pair:
    every use checks again, so that pair is refused too (and on reinstall)."""
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    # The pair is rotated, then the uninstall commits (as if they had raced).
    rotated = (await harness.refresh(world, tokens["refresh_token"])).json()["result"]
    run_cli(harness_settings(harness), "uninstall", "--app-id", world.app_id, "--customer-id", world.customer_id)
    await harness.wait_for_invalidation()
    assert "no longer installed" in refused(await harness.refresh(world, rotated["refresh_token"]), 40006)
    assert refused(await open_api(harness, world, rotated["access_token"]), 40102)
    assert await introspect(harness, world, rotated["access_token"]) == {"active": False}


# --------------------------------------------- finding 3: a burst of revocations


@pytest.mark.sql  # invalidation rows written in SQL, then the CLI on the same database
async def test_a_burst_of_invalidations_does_not_stall_revocation(harness: Harness) -> None:
    world = await harness.world()
    access = (await harness.user_tokens(world))["access_token"]
    assert (await open_api(harness, world, access)).status_code == 200  # now cached
    now = time.time()
    rows = [(now, "token", f"burst-{i}") for i in range(2 * PAGE + 1)]  # > 10,000: more than one page
    driver = harness.platform.store.inner.driver

    async def burst(tx: Any) -> None:
        for row in rows:
            await tx.execute("INSERT INTO invalidations (at, kind, key) VALUES (?, ?, ?)", *row)

    await driver.write(burst)
    run_cli(harness_settings(harness), "uninstall", "--app-id", world.app_id, "--customer-id", world.customer_id)
    await harness.wait_for_invalidation()
    refused(await open_api(harness, world, access), 40102)  # the cached token was dropped


@pytest.mark.sql  # invalidation ids committed out of order, written in SQL
async def test_the_poll_waits_for_a_missing_id_then_moves_on(harness: Harness) -> None:
    """PostgreSQL commits ids out of order: records above a gap are applied, the gap is waited for."""
    store = harness.platform.store
    driver = store.inner.driver

    async def insert(tx: Any, row_id: int) -> None:
        await tx.execute("INSERT INTO invalidations (id, at, kind, key) VALUES (?, ?, 'token', ?)",
                         row_id, time.time(), f"k{row_id}")  # fmt: skip

    base = store._applied_to
    await driver.write(lambda tx: insert(tx, base + 2))  # base + 1 is "still being committed"
    await store.poll_once()
    assert store._applied_to == base and store._seen == {base + 2}
    await driver.write(lambda tx: insert(tx, base + 1))
    await store.poll_once()
    assert store._applied_to == base + 2 and not store._seen

    await driver.write(lambda tx: insert(tx, base + 4))  # base + 3 never comes (rolled back)
    await store.poll_once()
    assert store._applied_to == base + 2
    store.apps.put("cached", object())
    store.clock = lambda: time.monotonic() + GAP_WAIT + 1
    await store.poll_once()
    assert store._applied_to == base + 4
    assert not store.apps  # what the missing record said is unknown: nothing cached is trusted


@pytest.mark.sql  # a change made by hand in SQL, without an invalidation record
async def test_no_cached_state_outlives_the_cache_max_age(harness: Harness) -> None:
    """A change that reaches the database without an invalidation record (a revoking transaction
    committing long after it took its id, an operator's SQL) is seen within CACHE_MAX_AGE."""
    world = await harness.world()
    access = (await harness.user_tokens(world))["access_token"]
    await harness.wait_for_invalidation()  # the records of the set-up itself are applied
    assert (await open_api(harness, world, access)).status_code == 200  # cached now
    driver = harness.platform.store.inner.driver

    async def by_hand(tx: Any) -> None:
        await tx.execute("UPDATE customers SET status = 'disabled' WHERE customer_id = ?", world.customer_id)

    await driver.write(by_hand)
    await harness.wait_for_invalidation()
    still = await open_api(harness, world, access)
    assert still.status_code == 200, still.text  # nothing told the cache
    store = harness.platform.store
    store.clock = lambda: time.monotonic() + CACHE_MAX_AGE + 1
    await store.poll_once()
    assert "the customer is disabled" in refused(await open_api(harness, world, access), 40102)


# ------------------------------------------- finding 4: refresh families end


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"refresh_family_max_age": 100}


async def test_a_refresh_family_ends_at_its_absolute_lifetime(harness: Harness) -> None:
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    assert tokens["expires_in"] == 100  # capped by the family's end, not 7200
    harness.clock.advance(60)
    rotated = (await harness.refresh(world, tokens["refresh_token"])).json()["result"]
    assert 39 <= rotated["expires_in"] <= 40  # rotation does not extend the family
    harness.clock.advance(41)
    msg = refused(await harness.refresh(world, rotated["refresh_token"]), 40006)
    assert "maximum age" in msg
    assert (await harness.exchange(world, await harness.code(world))).json()["result"]["expires_in"] == 100


# -------------------------------------- finding 5: an uninstall is not a theft


async def test_an_uninstalled_code_is_refused_without_a_replay_signal(harness: Harness) -> None:
    world = await harness.world()
    code = await harness.code(world)
    await harness.admin.uninstall(world.app_id, customer_id=world.customer_id)
    for _ in range(2):  # even presented twice, it was never used: not a replay
        msg = refused(await harness.exchange(world, code), 40006)
        assert "no longer installed" in msg and "already used" not in msg
    assert await audited(harness, "code.replayed") == 0

    deleted = await harness.world(spe_wide=False)
    code = await harness.code(deleted)
    response = await harness.client.delete(
        f"/api/spe/customer/{deleted.customer_id}",
        headers={"Authorization": f"Bearer {await harness.app_token(deleted)}"},
    )
    assert response.status_code == 200, response.text
    msg = refused(await harness.exchange(deleted, code), 40006)
    assert "no longer" in msg and "already used" not in msg
    assert await audited(harness, "code.replayed") == 0


async def test_a_code_really_presented_twice_is_still_a_replay(harness: Harness) -> None:
    world = await harness.world()
    code = await harness.code(world)
    assert (await harness.exchange(world, code)).status_code == 200
    assert "already used" in refused(await harness.exchange(world, code), 40006)
    assert await audited(harness, "code.replayed") == 1


# ------------------------------------ finding 7: revocation without a cache scan


def record(digest: str, family: str | None, installation: str | None = "ins_1") -> TokenRecord:
    return TokenRecord(digest=digest, kind="access", app_id="app", scope="", expires_at=0.0,
                       installation_id=installation, customer_id="cus_1", family_id=family)  # fmt: skip


def test_the_token_cache_drops_a_family_by_its_index_and_forgets_evicted_entries() -> None:
    cache = TokenCache(3)
    for i, family in enumerate(["f1", "f1", "f2", "f2"]):
        cache.put(f"t{i}", record(f"t{i}", family))
    assert list(cache) == ["t1", "t2", "t3"]  # t0 evicted, and gone from the index too
    assert cache.index[("family_id", "f1")] == {"t1"}
    cache.drop_by("family_id", "f2")
    assert list(cache) == ["t1"] and ("family_id", "f2") not in cache.index
    cache.put("app", record("app", None, installation=None))
    cache.drop_by("app_id", "app")
    assert not cache and not cache.index
