"""The webhook outbox (``services.stores.WebhookOutbox``, SPEC §3), the same tests on memory,
SQLite and PostgreSQL.

What the webhook worker and the console rely on: the oldest due row is claimed first, with
its attempt counted and its lease taken in one step, so racing senders never get the same
row; a row is due again when its lease or its retry time comes, until it is delivered or
out of attempts; ``requeue`` gives a row of that app a fresh set of attempts and returns it
as it was; ``list`` gives the rows newest first with the SQL columns (payload as JSON text).
"""

from __future__ import annotations

import asyncio

import orjson

from openplatform.records import Delivery
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
