"""Cleanup (SPEC §8): expired rows and old audit events go, in small batches that never hold serving up.

``store.cleanup(keep_seconds, audit_retention_seconds, batch_size)`` deletes what
expired more than ``keep_seconds`` ago (and audit events and finished webhook
deliveries older than the retention) and nothing that can still be used, and
returns the counts. Time moves through the harness's FakeClock, which the store
and the management path both read; rows seeded directly use the same clock.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from typing import Any

import pytest

from openplatform.services.webhooks import MAX_ATTEMPTS
from openplatform.storage.sql.cleanup import Delete
from openplatform.storage.sql.driver import Insert, InsertSpec, Operation
from openplatform.storage.sql.store import INSERT_AUDIT, INSERT_CODE, INSERT_INVALIDATION
from tests.conftest import Harness, cli_env, run_cli

# The SQL cleanup's batches, seeded and counted in SQL (memory's cleanup: test_contract.py), and `db cleanup`.
pytestmark = pytest.mark.sql

HOUR = 3600.0
DAY = 86400.0
NOTHING = {"codes": 0, "tokens": 0, "invalidations": 0, "audit_events": 0}
SEED_TOKEN = InsertSpec("tokens", (("digest", "text"), ("kind", "text"), ("app_id", "text"), ("scope", "text"),
                                   ("created_at", "float8"), ("expires_at", "float8")))  # fmt: skip
SEED_DELIVERY = InsertSpec("webhook_deliveries", (("app_id", "text"), ("event", "text"), ("payload", "text"),
                                                  ("attempts", "int4"), ("next_attempt_at", "float8"),
                                                  ("delivered_at", "float8"), ("created_at", "float8")))  # fmt: skip


async def count(harness: Harness, sql: str, *args: object) -> int:
    row = await harness.platform.store.inner.driver.fetchrow(f"SELECT COUNT(*) AS n {sql}", *args)
    return int(row["n"])


async def counts(harness: Harness) -> dict[str, int]:
    return {
        "codes": await count(harness, "FROM auth_codes"),
        "access": await count(harness, "FROM tokens WHERE kind = 'access'"),
        "refresh": await count(harness, "FROM tokens WHERE kind = 'refresh'"),
    }


async def seed(
    harness: Harness, at: float, tokens: int = 0, codes: int = 0, invalidations: int = 0, audit: int = 0
) -> None:
    """Rows written directly: tokens and codes expiring at ``at`` (plus i ms), invalidations and
    audit events made at ``at`` (plus i ms). Keys carry ``at``, so seeding twice never collides."""
    stamp = f"{at:.3f}"
    inserts = [
        Insert(SEED_TOKEN, *(
            (f"tok-{stamp}-{i}", "access", "app", "", at - 7200, at + i / 1000) for i in range(tokens)
        )),
        Insert(INSERT_CODE, *(
            (f"code-{stamp}-{i}", "app", "ins", "cus", "spe", "https://a/cb", "", None, at + i / 1000)
            for i in range(codes)
        )),
        Insert(INSERT_INVALIDATION, *((at + i / 1000, "token", f"key-{i}") for i in range(invalidations))),
        Insert(INSERT_AUDIT, *((at + i / 1000, "seeded", None, None, None, None, "{}", 1) for i in range(audit))),
    ]  # fmt: skip
    for insert in inserts:
        if insert.rows:
            await harness.platform.store.inner.driver.write(insert)


# When a seeded pending delivery is due: far ahead, so the harness's webhook worker (it polls every
# 2 s) never takes one (and audits its failure) while a test runs.
LATER = 4_000_000_000.0


def delivery(at: float, state: str) -> tuple[object, ...]:
    """A ``webhook_deliveries`` row queued at ``at``: "new" (never tried), "retry" (failed twice),
    both pending (due ``LATER``), "delivered" (a second after it was queued) or "abandoned" (every
    attempt failed, the last a minute after it was queued)."""
    attempts, next_attempt_at, delivered_at = {
        "new": (0, LATER, None),
        "retry": (2, LATER, None),
        "delivered": (1, at + 60, at + 1),
        "abandoned": (MAX_ATTEMPTS, at + 60, None),
    }[state]
    return ("app", "install", "{}", attempts, next_attempt_at, delivered_at, at)


async def seed_deliveries(harness: Harness, *rows: tuple[object, ...]) -> None:
    await harness.platform.store.inner.driver.write(Insert(SEED_DELIVERY, *rows))


async def written(harness: Harness) -> None:
    """Wait until every write queued so far (audit rows too) is committed: the writer is FIFO."""

    async def nothing(_tx: Any) -> None:
        return None

    await harness.platform.store.inner.driver.write(nothing)


class WriteLog:
    """Records every write operation while active: ("batch", rows deleted) for a cleanup
    batch, (type name, None) for anything else."""

    def __init__(self, harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries: list[tuple[str, int | None]] = []
        self.active = False
        driver = harness.platform.store.inner.driver
        original = driver.write

        async def write(op: Operation[Any]) -> Any:
            result = await original(op)
            if self.active:
                self.entries.append(("batch", result) if isinstance(op, Delete) else (type(op).__name__, None))
            return result

        monkeypatch.setattr(driver, "write", write)


def codes_and_tokens(result: dict[str, int]) -> tuple[int, int]:
    return result["codes"], result["tokens"]


# ----------------------------------------------------------------- what goes


async def test_cleanup_deletes_expired_and_keeps_live_rows(harness: Harness) -> None:
    world = await harness.world()
    unused_code = await harness.code(world)  # expires at +300 s
    tokens = await harness.user_tokens(world)  # one used code, an access and a refresh token
    await harness.app_token(world)
    assert await counts(harness) == {"codes": 2, "access": 2, "refresh": 1}

    assert codes_and_tokens(await harness.platform.store.cleanup()) == (0, 0)
    assert await counts(harness) == {"codes": 2, "access": 2, "refresh": 1}

    harness.clock.advance(300 + HOUR - 10)  # codes expired, but within the keep window
    assert codes_and_tokens(await harness.platform.store.cleanup()) == (0, 0)
    assert await counts(harness) == {"codes": 2, "access": 2, "refresh": 1}

    harness.clock.advance(20)
    fresh_code = await harness.code(world)
    assert codes_and_tokens(await harness.platform.store.cleanup()) == (2, 0)
    assert await counts(harness) == {"codes": 1, "access": 2, "refresh": 1}
    assert (await harness.exchange(world, unused_code)).json()["code"] == 40006  # gone, cleanly refused

    harness.clock.advance(7200 + HOUR)  # access tokens are long expired; the refresh token is not
    assert codes_and_tokens(await harness.platform.store.cleanup()) == (1, 2)
    assert await counts(harness) == {"codes": 0, "access": 0, "refresh": 1}
    rotated = await harness.refresh(world, tokens["refresh_token"])
    assert rotated.json()["code"] == 0, rotated.text
    assert (await harness.exchange(world, fresh_code)).json()["code"] == 40006  # expired by now

    harness.clock.advance(30 * DAY + HOUR + 1)
    assert (await harness.platform.store.cleanup())["tokens"] == 3  # the old refresh token, the new pair
    assert await counts(harness) == {"codes": 0, "access": 0, "refresh": 0}


async def test_cleanup_with_no_keep_window(harness: Harness) -> None:
    world = await harness.world()
    await harness.code(world)
    await harness.app_token(world)
    harness.clock.advance(301)
    live = await harness.app_token(world)
    assert (await harness.platform.store.cleanup(keep_seconds=0))["codes"] == 1
    assert (await counts(harness))["access"] == 2  # both app tokens still live
    harness.clock.advance(7200)
    assert (await harness.platform.store.cleanup(keep_seconds=0))["tokens"] == 2
    assert (await counts(harness))["access"] == 0
    response = await harness.client.get("/api/spe/customers", params={"access_token": live})
    assert response.json()["code"] == 40102


async def test_cleanup_drops_old_secrets_after_their_grace_and_old_invalidations(harness: Harness) -> None:
    world = await harness.world()
    new_secret = await harness.admin.rotate_secret(world.app_id, grace_seconds=600)
    assert await count(harness, "FROM app_secrets WHERE app_id = ?", world.app_id) == 2
    invalidations = await count(harness, "FROM invalidations")
    assert invalidations > 0

    harness.clock.advance(599)
    assert await harness.platform.store.cleanup() == NOTHING
    assert await count(harness, "FROM app_secrets WHERE app_id = ?", world.app_id) == 2

    harness.clock.advance(HOUR + 2)
    assert await harness.platform.store.cleanup() == {**NOTHING, "invalidations": invalidations}
    assert await count(harness, "FROM app_secrets WHERE app_id = ?", world.app_id) == 1
    assert await count(harness, "FROM invalidations") == 0
    world.secret = new_secret
    assert await harness.app_token(world)


async def test_audit_events_older_than_the_retention_are_deleted(harness: Harness) -> None:
    await seed(harness, harness.clock(), audit=5)
    world = await harness.world()  # audit events of the admin path (spe, customer, app, install)
    await harness.app_token(world)  # and of the hot path
    await written(harness)
    first = await count(harness, "FROM audit_events")
    assert first > 5

    harness.clock.advance(100 * DAY)
    await harness.app_token(world)
    await seed(harness, harness.clock(), audit=3)
    await written(harness)
    total = await count(harness, "FROM audit_events")

    harness.clock.advance(79 * DAY)  # 179 days after the first events: all kept
    assert (await harness.platform.store.cleanup(audit_retention_seconds=180 * DAY))["audit_events"] == 0
    harness.clock.advance(DAY + 1)  # 180 days and a second
    assert (await harness.platform.store.cleanup(audit_retention_seconds=180 * DAY))["audit_events"] == first
    assert await count(harness, "FROM audit_events") == total - first
    assert await count(harness, "FROM audit_events WHERE at < ?", harness.clock() - 180 * DAY) == 0


async def test_the_audit_walk_stops_at_the_first_event_inside_the_retention(harness: Harness) -> None:
    """The audit log is walked along its primary key (it has no index on ``at``): an old row
    behind a newer one (ids and times out of step) waits for a later pass."""
    now = harness.clock()
    await seed(harness, now - 200 * DAY, audit=4)
    await seed(harness, now - 10 * DAY, audit=1)
    await seed(harness, now - 300 * DAY, audit=2)
    assert await harness.platform.store.cleanup(audit_retention_seconds=180 * DAY, batch_size=3) == {
        **NOTHING, "audit_events": 4
    }  # fmt: skip
    assert await count(harness, "FROM audit_events") == 3


async def test_a_row_stamped_in_the_future_does_not_stop_the_walk(harness: Harness) -> None:
    """An audit event or a delivery stamped later than the pass's now (a node whose clock ran
    ahead, a row written by hand) is walked past and kept; before, the walk stopped at it, and every
    older row behind it stayed until it aged (for a year-2100 row, for ever)."""
    now = harness.clock()
    await seed(harness, now - 300 * DAY, audit=2)
    await seed(harness, now + 80 * 365 * DAY, audit=1)
    await seed(harness, now - 250 * DAY, audit=3)
    await seed(harness, now - 10 * DAY, audit=1)  # inside the retention: the walk ends here
    await seed(harness, now - 400 * DAY, audit=1)  # behind it: a later pass
    await seed_deliveries(harness, delivery(now - 200 * DAY, "delivered"), delivery(now + 80 * 365 * DAY, "delivered"),
                          delivery(now - 199 * DAY, "abandoned"))  # fmt: skip
    assert await harness.platform.store.cleanup(audit_retention_seconds=180 * DAY, batch_size=2) == {
        **NOTHING, "audit_events": 5
    }  # fmt: skip
    assert await count(harness, "FROM audit_events") == 3
    assert await count(harness, "FROM audit_events WHERE at > ?", now) == 1
    assert await count(harness, "FROM webhook_deliveries") == 1
    assert await count(harness, "FROM webhook_deliveries WHERE created_at > ?", now) == 1


# ------------------------------------------------------------ small batches


async def test_cleanup_deletes_in_batches_of_the_given_size(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never one big DELETE: each batch is its own write operation of at most ``batch_size`` rows."""
    now = harness.clock()
    await seed(harness, now - 300 * DAY, audit=40)
    await seed(harness, now - 2 * HOUR, tokens=100, codes=30, invalidations=20)
    await seed(harness, now, tokens=5, codes=4, invalidations=3, audit=2)  # live, or inside the retention
    log = WriteLog(harness, monkeypatch)

    log.active = True
    result = await harness.platform.store.cleanup(batch_size=7)
    log.active = False

    assert result == {"codes": 30, "tokens": 100, "invalidations": 20, "audit_events": 40}
    assert {kind for kind, _rows in log.entries} == {"batch"}, log.entries
    sizes = [rows or 0 for _kind, rows in log.entries]
    assert max(sizes) == 7 and sum(sizes) == 190
    assert len(sizes) >= sum(math.ceil(n / 7) for n in result.values())
    assert await count(harness, "FROM tokens") == 5
    assert await count(harness, "FROM auth_codes") == 4
    assert await count(harness, "FROM invalidations") == 3
    assert await count(harness, "FROM audit_events") == 2


async def test_finished_webhook_deliveries_go_in_batches_and_pending_ones_stay(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox's delivered and abandoned rows older than the audit retention go, a batch at a
    time, walked along the primary key past the pending rows among them (never deleted, whatever
    their age); the counts stay the four of SPEC §8 (the delivery log is not one of them)."""
    now = harness.clock()
    states = ("new", "delivered", "abandoned", "retry")
    old = [delivery(now - 200 * DAY + i, states[i % 4]) for i in range(50)]  # 13 delivered, 12 abandoned
    recent = [delivery(now - DAY + i, state) for i, state in enumerate(("delivered", "abandoned", "new"))]
    await seed_deliveries(harness, *old, *recent)
    log = WriteLog(harness, monkeypatch)

    log.active = True
    assert await harness.platform.store.cleanup(audit_retention_seconds=180 * DAY, batch_size=7) == NOTHING
    log.active = False

    assert {kind for kind, _rows in log.entries} == {"batch"}, log.entries
    sizes = [rows or 0 for _kind, rows in log.entries]
    assert max(sizes) <= 7 and sum(sizes) == 25 and len(sizes) >= 4
    assert await count(harness, "FROM webhook_deliveries") == 25 + 3
    assert await count(harness, "FROM webhook_deliveries WHERE delivered_at IS NOT NULL") == 1  # the recent one
    assert await count(harness, "FROM webhook_deliveries WHERE attempts >= ?", MAX_ATTEMPTS) == 1
    pending = await count(harness, "FROM webhook_deliveries WHERE delivered_at IS NULL AND attempts < ?", MAX_ATTEMPTS)
    assert pending == 25 + 1  # the old ones and the recent one


async def test_a_delivery_requeued_between_the_read_and_the_delete_stays(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DELETE checks again that the row is finished: one made pending again ("send again" in
    the console) after the batch read it is kept."""
    now = harness.clock()
    await seed_deliveries(harness, *(delivery(now - 200 * DAY + i, "delivered") for i in range(3)))
    driver = harness.platform.store.inner.driver
    original = driver.write

    async def requeue(tx: Any) -> int:
        oldest = "(SELECT MIN(id) FROM webhook_deliveries)"
        made_pending = f"delivered_at = NULL, attempts = 0, next_attempt_at = {LATER}"
        return int(await tx.execute(f"UPDATE webhook_deliveries SET {made_pending} WHERE id = {oldest}"))

    async def write(op: Operation[Any]) -> Any:
        if isinstance(op, Delete):
            await original(requeue)
        return await original(op)

    monkeypatch.setattr(driver, "write", write)
    await harness.platform.store.cleanup(audit_retention_seconds=180 * DAY)
    assert await count(harness, "FROM webhook_deliveries") == 1
    assert await count(harness, "FROM webhook_deliveries WHERE delivered_at IS NULL AND attempts = 0") == 1


async def test_a_batch_size_that_divides_the_rows_exactly(harness: Harness) -> None:
    now = harness.clock()
    await seed(harness, now - 2 * HOUR, tokens=21)
    assert (await harness.platform.store.cleanup(batch_size=7))["tokens"] == 21
    assert await count(harness, "FROM tokens") == 0


async def test_rows_with_the_same_expiry_are_all_deleted(harness: Harness) -> None:
    """The walk along ``expires_at`` resumes at the last value read (values may tie)."""
    driver = harness.platform.store.inner.driver
    at = harness.clock() - 2 * HOUR
    await driver.write(Insert(SEED_TOKEN, *((f"tie-{i}", "access", "app", "", at, at) for i in range(25))))
    assert (await harness.platform.store.cleanup(batch_size=7))["tokens"] == 25
    assert await count(harness, "FROM tokens") == 0


async def test_grants_are_answered_between_cleanup_batches(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serving goes on during a cleanup: app-token grants complete between its batches.

    One big DELETE would be a single write operation, with no grant between two
    batches. No clock is read here: the order of completions is the evidence.
    """
    world = await harness.world()
    await seed(harness, harness.clock() - 2 * HOUR, tokens=700)
    log = WriteLog(harness, monkeypatch)
    log.active = True
    cleanup = asyncio.create_task(harness.platform.store.cleanup(batch_size=7))
    grants = 0
    while not cleanup.done():
        await harness.app_token(world)
        grants += 1
    log.active = False

    assert (await cleanup)["tokens"] == 700
    order = [kind for kind, _rows in log.entries if kind in ("batch", "Insert")]  # an app token is an Insert
    assert order.count("batch") == 100, order  # 700 rows, 7 a batch
    first, last = order.index("batch"), len(order) - 1 - order[::-1].index("batch")
    between = order[first:last].count("Insert")
    assert between >= 10, order
    assert grants >= between
    assert await count(harness, "FROM tokens WHERE digest LIKE 'tok-%'") == 0
    assert await count(harness, "FROM tokens") == grants  # every token granted meanwhile is there


# ---------------------------------------------------- the periodic task, the CLI


@pytest.mark.parametrize("settings_overrides", [{"cleanup_interval": 0.05}])
async def test_the_server_cleans_up_every_cleanup_interval(harness: Harness) -> None:
    assert harness.platform.settings.cleanup_interval == 0.05
    await seed(harness, harness.clock() - 2 * HOUR, tokens=3)
    for _ in range(400):  # a bounded wait for the periodic task, not a timing assertion
        if await count(harness, "FROM tokens") == 0:
            break
        await asyncio.sleep(0.025)
    assert await count(harness, "FROM tokens") == 0


async def test_db_cleanup_runs_one_pass_and_prints_the_counts(harness: Harness) -> None:
    # The CLI reads the real clock: rows are seeded relative to it.
    now = harness.clock() - harness.clock.offset
    await seed(harness, now - 200 * DAY, audit=6)  # older than the default retention (180 days)
    await seed(harness, now - 2 * HOUR, tokens=12, codes=3, invalidations=2)
    await seed(harness, now, tokens=1, codes=1, invalidations=1, audit=1)
    await seed_deliveries(harness, delivery(now - 200 * DAY, "delivered"), delivery(now - 200 * DAY, "new"))
    settings = harness.platform.settings

    result = await asyncio.to_thread(run_cli, settings, "db", "cleanup")
    assert result.stdout.count("\n") == 1, result.stdout
    assert json.loads(result.stdout) == {"codes": 3, "tokens": 12, "invalidations": 2, "audit_events": 6}
    assert await count(harness, "FROM tokens") == 1
    assert await count(harness, "FROM audit_events") == 1
    assert await count(harness, "FROM webhook_deliveries WHERE delivered_at IS NULL") == 1  # the pending one
    assert await count(harness, "FROM webhook_deliveries") == 1  # the delivery log goes, unreported

    again = await asyncio.to_thread(run_cli, settings, "db", "cleanup")
    assert json.loads(again.stdout) == NOTHING


async def test_db_cleanup_errors_go_to_stderr(harness: Harness) -> None:
    env = {**cli_env(harness.platform.settings), "OPENPLATFORM_AUDIT_RETENTION_DAYS": "0"}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "openplatform.cli", "db", "cleanup"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""
    assert "OPENPLATFORM_AUDIT_RETENTION_DAYS" in result.stderr  # the variable's real name (SPEC §11)
    assert "Traceback" not in result.stderr
