"""Install/uninstall notifications to a real HTTP receiver (SPEC §3), on memory, SQLite and PostgreSQL
(senders of several processes sharing one database: the last two only)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from openplatform.config import Settings
from openplatform.core.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook
from openplatform.runtime import build_admin
from openplatform.services import webhooks
from openplatform.services.admin import Admin
from openplatform.services.webhooks import BACKOFF, MAX_ATTEMPTS, WebhookWorker
from openplatform.storage.memory import MemoryStore
from openplatform.storage.sql.changes import enqueue_webhook
from openplatform.storage.sql.database import Conn
from openplatform.storage.sql.schema import metadata
from openplatform.storage.sql.webhooks import SqlOutbox
from tests.conftest import Harness, run_cli
from tests.ui.receiver import ACK, Answer, Received, Receiver, serving
from tests.web.manage_support import memory_snapshot


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The receiver is on 127.0.0.1: these tests lift SPEC §9's refusal explicitly
    # (tests/web/test_webhook_egress.py tests the refusal itself).
    return {"webhook_poll_seconds": 0.05, "webhook_private_networks": "allow"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with serving() as state:
        yield state


# ------------------------------------------------------------------- helpers


async def wait_for(predicate: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def received(receiver: Receiver, url: str, count: int) -> list[Received]:
    async def enough() -> bool:
        return len(receiver.requests(url)) >= count

    await wait_for(enough)
    return receiver.requests(url)


async def rows(harness: Harness, app_id: str) -> list[dict[str, Any]]:
    return list(reversed(await harness.admin.stores.outbox.list(app_id)))


async def settled(harness: Harness, app_id: str, attempts: int) -> dict[str, Any]:
    """The app's only delivery row, once its ``attempts``-th attempt is recorded (audited last)."""

    async def done() -> bool:
        events = await audit_events(harness, app_id)
        return len([e for e in events if e.startswith("webhook.")]) >= attempts

    await wait_for(done)
    return (await rows(harness, app_id))[0]


async def audit_events(harness: Harness, app_id: str) -> list[str]:
    return [str(row["event"]) for row in reversed(await harness.audit(app_id))]


async def setup(harness: Harness, webhook_url: str) -> tuple[str, str, str, str]:
    return await setup_with(harness.admin, webhook_url)


async def setup_with(admin: Admin, webhook_url: str) -> tuple[str, str, str, str]:
    """An SPE, a customer and an app with ``webhook_url``: (xspe, customer_id, app_id, secret)."""
    spe = await admin.create_spe("Hook SPE")
    customer = await admin.create_customer(spe.xspe, "Hook Customer")
    app, secret = await admin.create_app("Hook App", "https://app.example.com/", [], [], webhook_url)
    return spe.xspe, customer.customer_id, app.app_id, secret


def check_notification(request: Received, app_id: str, secret: str, now: float) -> dict[str, Any]:
    """The original platform's body plus our additions, and the HMAC header."""
    body = request.json
    assert list(body)[:5] == ["type", "customer_id", "action_time", "expiration_time", "signature"]
    assert set(body) == {*list(body)[:5], "app_id", "xspe", "event_id"}
    assert body["type"] in (1, 2) and type(body["type"]) is int
    assert isinstance(body["customer_id"], str)
    assert type(body["action_time"]) is int and type(body["expiration_time"]) is int
    assert abs(body["expiration_time"] - now * 1000 - 300_000) < 30_000  # sent lately, lives 5 min
    md5 = hashlib.md5(f"{app_id}:{secret}:{body['expiration_time']}".encode()).hexdigest()
    assert body["signature"] == md5
    assert body["app_id"] == app_id
    assert request.headers["Content-Type"] == "application/json"
    timestamp, signature = request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER]
    assert verify_webhook(secret, request.body, timestamp, signature, now=now)
    assert not verify_webhook(secret, request.body.replace(b'"type":', b'"type" :'), timestamp, signature, now=now)
    return body


async def database_text(harness: Harness) -> str:
    """Every value of every table, as text."""
    store = harness.platform.store.inner
    if isinstance(store, MemoryStore):
        return repr(memory_snapshot(store, skip=set()))  # bytes as b'...': text stored in them shows
    parts: list[str] = []
    for table in metadata.sorted_tables:
        for row in await harness.admin.db.database.read(select(table)):
            parts.extend(v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row)
    return "\n".join(parts)


# --------------------------------------------------------------------- tests


async def test_install_and_uninstall_are_notified(harness: Harness, receiver: Receiver) -> None:
    url = receiver.hook()
    xspe, customer_id, app_id, secret = await setup(harness, url)
    installed_at = harness.clock()
    await harness.admin.install(app_id, customer_id=customer_id)
    await harness.admin.install(app_id, customer_id=customer_id)  # a no-op: no second event
    install = check_notification((await received(receiver, url, 1))[0], app_id, secret, harness.clock())
    assert install["type"] == 1 and install["customer_id"] == customer_id and install["xspe"] == xspe
    assert abs(install["action_time"] - installed_at * 1000) < 15_000
    assert abs(install["expiration_time"] - install["action_time"] - 300_000) < 15_000

    await harness.admin.uninstall(app_id, customer_id=customer_id)
    uninstall = check_notification((await received(receiver, url, 2))[1], app_id, secret, harness.clock())
    assert uninstall["type"] == 2 and uninstall["customer_id"] == customer_id
    assert uninstall["event_id"] != install["event_id"]

    await wait_for(lambda: _all_delivered(harness, app_id))

    async def both_audited() -> bool:  # the sender audits a delivery after it marks the row delivered
        return (await audit_events(harness, app_id)).count("webhook.delivered") >= 2

    await wait_for(both_audited)
    assert (await audit_events(harness, app_id)).count("webhook.delivered") == 2
    sent = receiver.requests(url)
    assert len(sent) == 2
    payloads = [json.loads(row["payload"]) for row in await rows(harness, app_id)]
    assert [set(p) for p in payloads] == [{"type", "customer_id", "action_time", "app_id", "xspe", "event_id"}] * 2
    stored = await database_text(harness)
    for value in (secret, install["signature"], uninstall["signature"], sent[0].headers[SIGNATURE_HEADER]):
        assert value not in stored


async def _all_delivered(harness: Harness, app_id: str) -> bool:
    found = await rows(harness, app_id)
    return bool(found) and all(row["delivered_at"] is not None for row in found)


async def test_spe_wide_installation_sends_empty_customer_id_and_xspe(harness: Harness, receiver: Receiver) -> None:
    url = receiver.hook()
    xspe, _, app_id, secret = await setup(harness, url)
    await harness.admin.install(app_id, xspe=xspe)
    body = check_notification((await received(receiver, url, 1))[0], app_id, secret, harness.clock())
    assert body["type"] == 1 and body["customer_id"] == "" and body["xspe"] == xspe


async def test_app_without_webhook_url_queues_nothing(harness: Harness) -> None:
    world = await harness.world()
    await harness.admin.uninstall(world.app_id, customer_id=world.customer_id)
    assert await rows(harness, world.app_id) == []


async def test_failed_attempts_are_retried_with_backoff(harness: Harness, receiver: Receiver) -> None:
    url = receiver.hook((500, b'{"code": 0}', {}), (200, b'{"code": 1, "msg": "busy"}', {}), ACK)
    _, customer_id, app_id, secret = await setup(harness, url)
    await harness.admin.install(app_id, customer_id=customer_id)

    first = await settled(harness, app_id, 1)
    assert first["last_error"] == "HTTP 500" and first["delivered_at"] is None
    assert first["next_attempt_at"] == pytest.approx(harness.clock() + BACKOFF[0], abs=5)
    await asyncio.sleep(0.2)
    assert len(receiver.requests(url)) == 1  # not before the backoff has passed

    harness.clock.advance(BACKOFF[0])
    second = await settled(harness, app_id, 2)
    assert "code" in second["last_error"]
    assert second["next_attempt_at"] == pytest.approx(harness.clock() + BACKOFF[1], abs=5)

    harness.clock.advance(BACKOFF[1])
    await settled(harness, app_id, 3)  # the third outcome audited, not only the row marked delivered
    assert await _all_delivered(harness, app_id)
    sent = receiver.requests(url)
    assert len(sent) == 3
    check_notification(sent[2], app_id, secret, harness.clock())
    bodies = [r.json for r in sent]
    assert len({b["event_id"] for b in bodies}) == 1 and len({b["action_time"] for b in bodies}) == 1
    # expiration_time follows the send time, so a receiver checking freshness accepts the retry
    assert bodies[2]["expiration_time"] - bodies[0]["expiration_time"] >= (BACKOFF[0] + BACKOFF[1]) * 1000
    assert (await rows(harness, app_id))[0]["attempts"] == 3
    events = await audit_events(harness, app_id)
    assert [e for e in events if e.startswith("webhook.")] == ["webhook.failed"] * 2 + ["webhook.delivered"]


async def test_gives_up_after_max_attempts(harness: Harness, receiver: Receiver) -> None:
    url = receiver.hook((503, b"", {}))
    _, customer_id, app_id, _ = await setup(harness, url)
    await harness.admin.install(app_id, customer_id=customer_id)
    for attempt in range(1, MAX_ATTEMPTS):
        await settled(harness, app_id, attempt)
        harness.clock.advance(BACKOFF[attempt - 1])
    row = await settled(harness, app_id, MAX_ATTEMPTS)
    await wait_for(lambda: _has_event(harness, app_id, "webhook.abandoned"))
    harness.clock.advance(86400)
    await asyncio.sleep(0.3)
    assert len(receiver.requests(url)) == MAX_ATTEMPTS
    assert row["delivered_at"] is None and row["last_error"] == "HTTP 503"
    events = [e for e in await audit_events(harness, app_id) if e.startswith("webhook.")]
    assert events == ["webhook.failed"] * (MAX_ATTEMPTS - 1) + ["webhook.abandoned"]


async def _has_event(harness: Harness, app_id: str, event: str) -> bool:
    return event in await audit_events(harness, app_id)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ((302, b'{"code": 0}', {"Location": "/hook/0"}), "HTTP 302"),  # redirects are not followed
        ((200, b"OK", {}), "HTTP 200 with an answer that is not JSON"),
    ],
)
async def test_receiver_answers_that_do_not_acknowledge(
    harness: Harness, receiver: Receiver, answer: Answer, error: str
) -> None:
    url = receiver.hook(answer)
    _, customer_id, app_id, _ = await setup(harness, url)
    await harness.admin.install(app_id, customer_id=customer_id)
    row = await settled(harness, app_id, 1)
    assert row["last_error"] == error and row["delivered_at"] is None


async def test_unreachable_receiver_is_a_failed_attempt(harness: Harness, receiver: Receiver) -> None:
    from tests.conftest import free_port

    _, customer_id, app_id, _ = await setup(harness, f"http://127.0.0.1:{free_port()}/gone")
    await harness.admin.install(app_id, customer_id=customer_id)
    row = await settled(harness, app_id, 1)
    assert row["last_error"].startswith("ConnectError") and row["delivered_at"] is None


@pytest.mark.parametrize(
    ("status", "answer", "acknowledged"),
    [
        (200, b'{"code": 0}', True),
        (204, b'{"code":0,"msg":"ok"}', True),
        (200, b'{"code": 1}', False),
        (200, b'{"code": "0"}', False),
        (200, b'{"code": false}', False),
        (200, b'{"code": 0.0}', False),
        (200, b"{}", False),
        (200, b"[0]", False),
        (200, b"", False),
        (500, b'{"code": 0}', False),
        (200, None, False),  # larger than MAX_ANSWER_BYTES
    ],
)
def test_what_counts_as_acknowledged(status: int, answer: bytes | None, acknowledged: bool) -> None:
    assert (webhooks.judge(status, answer) is None) is acknowledged


@pytest.mark.sql  # senders of four processes on one database (memory's racing senders: test_contract_outbox.py)
async def test_concurrent_claims_never_share_a_row(settings: Settings) -> None:
    admins = [build_admin(settings) for _ in range(4)]
    try:
        now = time.time()

        async def queue(conn: Conn) -> None:
            for n in range(30):
                await enqueue_webhook(conn, "a" * 32, "install", {"type": 1, "n": n}, now)

        await admins[0].db.database.transaction(queue)
        outboxes = [SqlOutbox(admin.db.database) for admin in admins]

        async def drain(outbox: SqlOutbox) -> list[int]:
            claimed = []
            while (delivery := await outbox.claim(time.time(), 60, MAX_ATTEMPTS)) is not None:
                claimed.append(delivery.id)
            return claimed

        results = await asyncio.gather(*(drain(outbox) for outbox in outboxes))
        ids = [i for result in results for i in result]
        assert sorted(ids) == sorted(set(ids)) and len(ids) == 30
        assert await outboxes[0].claim(time.time() + 59, 60, MAX_ATTEMPTS) is None  # leased
        assert await outboxes[0].claim(time.time() + 61, 60, MAX_ATTEMPTS) is not None  # lease over
    finally:
        for admin in admins:
            await admin.db.close()


@pytest.mark.sql  # workers of other processes on the same database: each memory:// admin has its own
async def test_several_workers_deliver_each_event_exactly_once(
    harness: Harness, receiver: Receiver, settings: Settings
) -> None:
    url = receiver.hook()
    xspe, _, app_id, secret = await setup(harness, url)
    customers = [await harness.admin.create_customer(xspe, f"C{n}") for n in range(24)]
    others = [WebhookWorker(build_admin(settings), 0.01) for _ in range(2)]
    receiver.delay = 0.02  # keep rows in flight while the other workers poll
    try:
        for worker in others:
            worker.start()
        for customer in customers:
            await harness.admin.install(app_id, customer_id=customer.customer_id)
        await wait_for(lambda: _delivered_count(harness, app_id, 24), within=20)
        await asyncio.sleep(0.3)
    finally:
        receiver.delay = 0.0
        for worker in others:
            await worker.stop()
            await worker.admin.db.close()
    bodies = [r.json for r in receiver.requests(url)]
    assert len(bodies) == 24
    assert sorted(b["customer_id"] for b in bodies) == sorted(c.customer_id for c in customers)
    assert len({b["event_id"] for b in bodies}) == 24
    assert all(row["attempts"] == 1 for row in await rows(harness, app_id))
    assert all(b["signature"] == hashlib.md5(f"{app_id}:{secret}:{b['expiration_time']}".encode()).hexdigest()
               for b in bodies)  # fmt: skip


async def _delivered_count(harness: Harness, app_id: str, count: int) -> bool:
    found = await rows(harness, app_id)
    return len([row for row in found if row["delivered_at"] is not None]) >= count


async def test_stopping_lets_a_send_in_flight_finish(settings: Settings, receiver: Receiver) -> None:
    admin = build_admin(settings)
    worker = WebhookWorker(admin, 0.01)
    url = receiver.hook()
    receiver.delay = 0.5
    try:
        spe = await admin.create_spe("Stop SPE")
        app, _ = await admin.create_app("Stop App", "https://app.example.com/", webhook_url=url)
        await admin.install(app.app_id, xspe=spe.xspe)
        worker.start()
        await received(receiver, url, 1)
        await worker.stop()  # while the receiver is still answering
        [row] = await admin.stores.outbox.list(app.app_id)
        assert row["delivered_at"] is not None and row["attempts"] == 1
    finally:
        receiver.delay = 0.0
        await admin.db.close()


@pytest.mark.sql  # a live server and the CLI sharing one database
async def test_cli_install_is_delivered_by_a_running_server(
    settings: Settings, live_server: str, receiver: Receiver
) -> None:
    url = receiver.hook()
    admin = build_admin(settings)
    try:
        xspe, customer_id, app_id, secret = await setup_with(admin, url)
    finally:
        await admin.db.close()
    run_cli(settings, "install", "--app-id", app_id, "--customer-id", customer_id)
    [request] = await received(receiver, url, 1)
    body = check_notification(request, app_id, secret, time.time())
    assert body["type"] == 1 and body["customer_id"] == customer_id and body["xspe"] == xspe
