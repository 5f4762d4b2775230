"""The webhook outbox (``services.stores.WebhookOutbox``, SPEC §3), the same tests on memory,
SQLite and PostgreSQL.

What the webhook worker and the console rely on: the oldest due row is claimed first, with
its attempt counted and its lease taken in one step, so racing senders never get the same
row; a row is due again when its lease or its retry time comes, until it is delivered or
out of attempts; ``requeue`` gives a row of that app a fresh set of attempts and returns it
as it was; ``list`` gives the rows newest first with the SQL columns (payload as JSON text);
the cleanup deletes a finished row (delivered, or abandoned with ``MAX_ATTEMPTS`` used up) once
it finished longer ago than the audit retention, and never a pending one.
"""

from __future__ import annotations

import asyncio

import orjson

from openplatform.records import Delivery
from openplatform.services.webhooks import MAX_ATTEMPTS
from tests.storage.side_stores import START, Side

LEASE = 60.0
MAX = 3  # attempts
RACERS = 20
COLUMNS = [
    "id",
    "app_id",
    "event",
    "payload",
    "attempts",
    "next_attempt_at",
    "delivered_at",
    "last_error",
    "created_at",
]


def body(n: int) -> dict[str, object]:
    return {"type": 1, "customer_id": f"cus_{n}", "action_time": 1_700_000_000_000 + n, "nested": {"n": [n, "x"]}}


async def queue(side: Side, *app_ids: str, gap: float = 1.0) -> list[int]:
    """One row per app id, ``gap`` seconds apart; their ids, oldest first."""
    for n, app_id in enumerate(app_ids):
        await side.enqueue(app_id, body(n))
        side.clock.advance(gap)
    return [int(str(row["id"])) for row in reversed(await side.outbox.list(limit=len(app_ids)))]


async def claim(side: Side) -> Delivery | None:
    return await side.outbox.claim(side.clock(), LEASE, MAX)


async def row(side: Side, delivery_id: int) -> dict[str, object]:
    (found,) = [r for r in await side.outbox.list() if r["id"] == delivery_id]
    return found


async def test_list_gives_the_rows_newest_first_with_the_sql_columns(side: Side) -> None:
    first, second, third = await queue(side, "app_a", "app_b", "app_a")
    rows = await side.outbox.list()
    assert [r["id"] for r in rows] == [third, second, first]
    assert list(rows[2]) == COLUMNS
    assert rows[2] == {
        "id": first, "app_id": "app_a", "event": "install", "payload": orjson.dumps(body(0)).decode(), "attempts": 0,
        "next_attempt_at": START, "delivered_at": None, "last_error": None, "created_at": START,
    }  # fmt: skip
    assert [r["id"] for r in await side.outbox.list("app_a")] == [third, first]
    assert [r["id"] for r in await side.outbox.list(limit=2)] == [third, second]
    assert await side.outbox.list("app_c") == []


async def test_the_row_due_longest_is_claimed_first_with_its_attempt_and_lease(side: Side) -> None:
    first, second, third = await queue(side, "app_a", "app_b", "app_c")
    await side.outbox.failed(first, "HTTP 500", START + 1.5)  # retried after the second row's time
    await side.outbox.failed(third, "HTTP 500", START + 10)  # waits to retry
    claimed = await claim(side)
    assert claimed == Delivery(second, "app_b", "install", body(1), 1, START + 1)
    found = await row(side, second)
    assert (found["attempts"], found["next_attempt_at"]) == (1, side.clock() + LEASE)
    assert (await claim(side)).id == first
    assert await claim(side) is None  # the third waits until START + 10; the claimed ones are leased
    side.clock.now = START + 10
    assert (await claim(side)).id == third


async def test_a_claimed_row_is_due_again_when_its_lease_runs_out_until_out_of_attempts(side: Side) -> None:
    (only,) = await queue(side, "app_a")
    for attempt in range(1, MAX + 1):
        claimed = await claim(side)
        assert (claimed.id, claimed.attempts) == (only, attempt)
        side.clock.advance(LEASE - 1)
        assert await claim(side) is None
        side.clock.advance(1)  # next_attempt_at is now: due (inclusive)
    assert await claim(side) is None  # abandoned: MAX attempts made
    assert await side.outbox.pending(MAX) == 0
    assert await side.outbox.pending(MAX + 1) == 1


async def test_racing_senders_never_claim_the_same_row(side: Side) -> None:
    ids = await queue(side, *(f"app_{n}" for n in range(8)), gap=0.0)
    claimed = [d for d in await asyncio.gather(*(claim(side) for _ in range(RACERS))) if d is not None]
    assert len({d.id for d in claimed}) == len(claimed)
    while (more := await claim(side)) is not None:  # a sender that lost every candidate found none: the rest
        claimed.append(more)
    assert sorted(d.id for d in claimed) == ids
    assert {d.attempts for d in claimed} == {1}


async def test_a_delivered_row_is_not_claimed_again_and_leaves_the_backlog(side: Side) -> None:
    first, second = await queue(side, "app_a", "app_b")
    await claim(side)
    await side.outbox.failed(first, "HTTP 503", side.clock())
    assert await side.outbox.pending(MAX) == 2
    side.clock.advance(5)
    await side.outbox.delivered(first, side.clock())
    await side.outbox.delivered(999_999, side.clock())  # no such row: nothing happens
    found = await row(side, first)
    assert (found["delivered_at"], found["last_error"], found["attempts"]) == (side.clock(), None, 1)
    assert await side.outbox.pending(MAX) == 1
    assert (await claim(side)).id == second
    assert await claim(side) is None


async def test_a_failure_is_recorded_cut_to_500_characters_and_retried_at_its_time(side: Side) -> None:
    (only,) = await queue(side, "app_a")
    await claim(side)
    await side.outbox.failed(only, "e" * 600, START + 300)
    found = await row(side, only)
    assert (found["last_error"], found["next_attempt_at"], found["delivered_at"]) == ("e" * 500, START + 300, None)
    side.clock.now = START + 299
    assert await claim(side) is None
    side.clock.now = START + 300
    assert (await claim(side)).attempts == 2


async def test_requeue_gives_a_row_of_that_app_fresh_attempts_and_returns_it_as_it_was(side: Side) -> None:
    (only,) = await queue(side, "app_a")
    for _ in range(MAX):  # abandoned after MAX failures
        await claim(side)
        await side.outbox.failed(only, "HTTP 500", side.clock())
    before = await row(side, only)
    assert await side.outbox.requeue(only, "app_b", side.clock(), MAX) is None  # another app's row: untouched
    assert await row(side, only) == before
    assert await side.outbox.requeue(999_999, "app_a", side.clock(), MAX) is None
    side.clock.advance(30)
    assert await side.outbox.requeue(only, "app_a", side.clock(), MAX) == before
    after = await row(side, only)
    assert after == {**before, "attempts": 0, "next_attempt_at": side.clock()}  # the last error stays
    assert await side.outbox.pending(MAX) == 1
    assert (await claim(side)).payload == body(0)  # the same event, sent again


async def test_requeue_makes_a_delivered_row_due_again(side: Side) -> None:
    (only,) = await queue(side, "app_a")
    await claim(side)
    await side.outbox.delivered(only, side.clock())
    before = await side.outbox.requeue(only, "app_a", side.clock(), MAX)
    assert before is not None and before["delivered_at"] == side.clock() and before["attempts"] == 1
    assert (await row(side, only))["delivered_at"] is None
    assert (await claim(side)).attempts == 1


async def test_requeue_of_a_row_being_sent_waits_for_its_lease(side: Side) -> None:
    """ "Send again" clicked while a sender has the row: no other sender gets it before the lease
    ends (two copies at once, before); the fresh attempts count from there."""
    (only,) = await queue(side, "app_a")
    sending = await claim(side)
    assert sending is not None
    await side.outbox.requeue(only, "app_a", side.clock(), MAX)
    assert await claim(side) is None  # still leased to the first sender
    side.clock.advance(LEASE)
    assert (await claim(side)).attempts == 1


async def test_requeue_of_a_row_waiting_to_retry_keeps_its_time(side: Side) -> None:
    (only,) = await queue(side, "app_a")
    await claim(side)
    await side.outbox.failed(only, "HTTP 500", side.clock() + 30)
    await side.outbox.requeue(only, "app_a", side.clock(), MAX)
    assert (await row(side, only))["next_attempt_at"] == side.clock() + 30
    assert await claim(side) is None
    side.clock.advance(30)
    assert (await claim(side)).attempts == 1


async def test_a_claimed_payload_is_the_callers_own_copy(side: Side) -> None:
    (only,) = await queue(side, "app_a")
    claimed = await claim(side)
    claimed.payload["signature"] = "abc"  # the sender signs its copy
    nested = claimed.payload["nested"]
    assert isinstance(nested, dict)
    nested["n"].append("changed")
    assert (await row(side, only))["payload"] == orjson.dumps(body(0)).decode()
    side.clock.advance(LEASE)
    assert (await claim(side)).payload == body(0)


# ---------------------------------------------------------------- the cleanup

DAY = 86400.0
RETENTION = 30 * DAY  # the audit log's retention, passed as the cleanup's audit_retention_seconds
NOTHING = {"codes": 0, "tokens": 0, "invalidations": 0, "audit_events": 0}


async def settled(side: Side, app_id: str, outcome: str) -> int:
    """A row queued now and taken to ``outcome``: "retry" (failed once, due again in a day),
    "delivered", "abandoned" (every attempt of the platform's ``MAX_ATTEMPTS`` failed) or "new"
    (never tried). Every other row must be settled or not due, so the claims take this one."""
    await side.enqueue(app_id, body(0))
    (queued,) = await side.outbox.list(limit=1)
    delivery_id = int(str(queued["id"]))
    attempts = {"new": 0, "abandoned": MAX_ATTEMPTS}.get(outcome, 1)
    for _ in range(attempts):
        claimed = await side.outbox.claim(side.clock(), LEASE, MAX_ATTEMPTS)
        assert claimed is not None and claimed.id == delivery_id
        retry_at = side.clock() + DAY if outcome == "retry" else side.clock()
        if outcome == "delivered":
            await side.outbox.delivered(delivery_id, side.clock())
        else:
            await side.outbox.failed(delivery_id, "HTTP 500", retry_at)
    side.clock.advance(1)
    return delivery_id


async def ids(side: Side) -> set[int]:
    return {int(str(r["id"])) for r in await side.outbox.list()}


async def test_the_cleanup_deletes_finished_rows_older_than_the_retention_and_never_pending_ones(side: Side) -> None:
    """Delivered and abandoned rows are the delivery log: they go when they finished longer ago
    than the audit retention, in batches (2 rows here) walked past the pending rows between
    them; a pending row stays whatever its age. The counts printed stay the four of SPEC §8."""
    waiting = await settled(side, "app_a", "retry")
    delivered = await settled(side, "app_a", "delivered")
    abandoned = await settled(side, "app_b", "abandoned")
    requeued = await settled(side, "app_a", "delivered")
    delivered_too = await settled(side, "app_b", "delivered")
    never_tried = await settled(side, "app_a", "new")
    everything = {waiting, delivered, abandoned, requeued, delivered_too, never_tried}

    side.clock.now = START + RETENTION  # every row finished less than the retention ago: all kept
    assert await side.cleanup(RETENTION, batch_size=2) == NOTHING
    assert await ids(side) == everything

    side.clock.advance(60)
    assert await side.outbox.requeue(requeued, "app_a", side.clock(), MAX_ATTEMPTS) is not None  # pending again
    assert await side.cleanup(RETENTION, batch_size=2) == NOTHING  # deleted, but not reported
    assert await ids(side) == {waiting, requeued, never_tried}

    side.clock.advance(10 * RETENTION)  # pending rows stay, however old
    assert await side.cleanup(RETENTION, batch_size=2) == NOTHING
    assert await ids(side) == {waiting, requeued, never_tried}

    while (claimed := await side.outbox.claim(side.clock(), LEASE, MAX_ATTEMPTS)) is not None:
        await side.outbox.delivered(claimed.id, side.clock())
    side.clock.advance(RETENTION - 1)  # made long ago, delivered less than the retention ago: kept
    await side.cleanup(RETENTION, batch_size=2)
    assert await ids(side) == {waiting, requeued, never_tried}
    side.clock.advance(2)
    await side.cleanup(RETENTION, batch_size=2)
    assert await ids(side) == set()


async def test_the_cleanup_keeps_a_row_on_its_last_attempt_until_that_attempt_ends(side: Side) -> None:
    """A row out of attempts but still leased (its last attempt in flight) is not finished yet:
    requeued long after it was queued, it is kept until its lease (then its failure) is older
    than the retention."""
    (only,) = await queue(side, "app_a")
    side.clock.advance(2 * RETENTION)
    await side.outbox.requeue(only, "app_a", side.clock(), MAX_ATTEMPTS)
    for _ in range(MAX_ATTEMPTS - 1):
        await side.outbox.claim(side.clock(), LEASE, MAX_ATTEMPTS)
        await side.outbox.failed(only, "HTTP 500", side.clock())
    last = await side.outbox.claim(side.clock(), LEASE, MAX_ATTEMPTS)
    assert last is not None and last.attempts == MAX_ATTEMPTS
    await side.cleanup(RETENTION, batch_size=2)
    assert await ids(side) == {only}
    side.clock.advance(RETENTION + LEASE + 1)  # the sender died: the lease ran out long ago
    await side.cleanup(RETENTION, batch_size=2)
    assert await ids(side) == set()


async def test_requeue_of_a_row_deleted_under_it_answers_none(side: Side) -> None:
    """ "Send again" of a row the cleanup deletes between requeue's read and its update: no row is
    queued again, so the answer is None (the console then says there is no such delivery), not
    the row as it was, which the console would show, and audit, as queued again."""
    (only,) = await queue(side, "app_a")
    await claim(side)
    await side.outbox.delivered(only, side.clock())
    if side.database is None:  # memory: the read and the update are one step; only the cleanup before
        side.clock.advance(200 * 86400)
        await side.cleanup(audit_retention_seconds=180 * 86400, batch_size=10)
        assert await side.outbox.requeue(only, "app_a", side.clock(), MAX) is None
        assert await side.outbox.list() == []
        return
    read_one = side.database.read_one

    async def read_then_clean(query: object) -> object:
        found = await read_one(query)
        side.clock.advance(200 * 86400)
        await side.cleanup(audit_retention_seconds=180 * 86400, batch_size=10)
        return found

    side.database.read_one = read_then_clean  # type: ignore[method-assign]
    try:
        assert await side.outbox.requeue(only, "app_a", side.clock(), MAX) is None
    finally:
        side.database.read_one = read_one  # type: ignore[method-assign]
    assert await side.outbox.list() == []
