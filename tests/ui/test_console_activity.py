"""The console's app page shows what happens to an app (issue 13 item 9), over HTTP on both databases:
charts of grants and refusals per hour and per day from the real token endpoints' audit rows, the
events with what happened and why, a validated filter, and webhook deliveries with "Send again"
re-sent to a real receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from openplatform import events
from openplatform.services.console import app_event_choices, event_label
from openplatform.services.webhooks import BACKOFF, MAX_ATTEMPTS
from tests.conftest import Harness, World, need, port_open
from tests.ui.conftest import MakePerson
from tests.ui.receiver import Receiver, serving
from tests.ui.support import Person, errors_in

HOUR, DAY = 3600, 86400


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The receiver is on 127.0.0.1: lift SPEC §9's refusal of private networks for these tests.
    return {"webhook_poll_seconds": 0.05, "webhook_private_networks": "allow"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as state:
        yield state


async def wait_for(predicate: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------- helpers


async def owned_world(harness: Harness, dev: Person, webhook_url: str | None = None) -> World:
    """An SPE, a customer and an app of ``dev`` installed for that customer."""
    admin = harness.admin
    spe = await admin.create_spe("Acme SPE")
    customer = await admin.create_customer(spe.xspe, "Customer One")
    app, secret = await admin.create_app(
        "Shop sync", "https://app.example.com/", ["customer:read"], [], webhook_url, owner_id=dev.user.user_id
    )
    install = await admin.install(app.app_id, customer_id=customer.customer_id)
    return World(spe.xspe, customer.customer_id, app.app_id, secret, app.host_url, install.installation_id)


def set_clock(harness: Harness, at: float) -> None:
    harness.clock.offset = at - time.time()


async def bad_secret(harness: Harness, world: World) -> int:
    data = {"app_id": world.app_id, "secret": "0" * 64, "grant_type": "client_credential"}
    return (await harness.client.post("/oauth/credit/token", data=data)).status_code


async def bad_code(harness: Harness, world: World) -> int:
    return (await harness.exchange(world, "not-a-code")).status_code


def figure(html: str, chart_id: str) -> str:
    found = re.search(rf'<figure class="chart" id="{chart_id}">(.*?)</figure>', html, re.S)
    assert found, f"no chart {chart_id}"
    return found.group(1)


def bucket_titles(chart: str) -> list[str]:
    return [unescape(t) for t in re.findall(r'<g class="bucket">\s*<title>([^<]*)</title>', chart)]


def hour_title(start: int) -> str:
    begin, end = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + HOUR, UTC)
    return f"{begin:%Y-%m-%d %H:%M}–{end:%H:%M} UTC"


def day_title(start: int) -> str:
    return f"{datetime.fromtimestamp(start, UTC):%Y-%m-%d} (UTC day)"


def events_table(html: str) -> list[list[str]]:
    """The rows of the Recent events table, each cell as plain text."""
    found = re.search(r'<table class="events">.*?<tbody>(.*?)</tbody>', html, re.S)
    if found is None:
        return []
    rows = re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S) for r in rows]
    return [[" ".join(unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in row] for row in cells]


# --------------------------------------------------------------------- charts


async def test_charts_count_grants_and_refusals_per_hour_and_per_day(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    world = await owned_world(harness, dev)
    other = await owned_world(harness, await people("other@example.com", "developer"))
    # "Now" is the middle of an hour, so the test never straddles one.
    now = (int(time.time()) // HOUR) * HOUR + 1800
    this_hour, this_day = now - 1800, now - now % DAY

    async def at(moment: float, work: Callable[[], Awaitable[object]]) -> None:
        set_clock(harness, moment)
        await work()

    # This hour: two app tokens and one user token (code exchange), one wrong secret.
    await at(now, lambda: harness.app_token(world))
    await at(now, lambda: harness.app_token(world))
    await at(now, lambda: harness.user_tokens(world))
    await at(now, lambda: bad_secret(harness, world))
    # Three hours ago: one app token, two made-up codes (invalid_grant).
    await at(now - 3 * HOUR, lambda: harness.app_token(world))
    await at(now - 3 * HOUR, lambda: bad_code(harness, world))
    await at(now - 3 * HOUR, lambda: bad_code(harness, world))
    # Two days ago: one refresh (a grant), one wrong secret; 40 days ago (outside both charts): a grant.
    tokens: dict[str, Any] = {}

    async def user_pair() -> None:
        tokens.update(await harness.user_tokens(world))

    await at(now - 2 * DAY, user_pair)
    await at(now - 2 * DAY + 60, lambda: harness.refresh(world, tokens["refresh_token"]))
    await at(now - 2 * DAY + 60, lambda: bad_secret(harness, world))
    await at(now - 40 * DAY, lambda: harness.app_token(world))
    # Another app's grants are not this app's.
    await at(now, lambda: harness.app_token(other))
    set_clock(harness, now)
    await asyncio.sleep(0.3)  # the group commit writes the audit rows

    page = await dev.get(f"/console/apps/{world.app_id}")
    assert page.status_code == 200, page.text
    hours, days = figure(page.text, "chart-hours"), figure(page.text, "chart-days")
    assert 'data-buckets="24"' in hours and 'data-buckets="30"' in days

    hour_tips = bucket_titles(hours)
    assert len(hour_tips) == 24
    assert hour_tips[-1] == f"{hour_title(this_hour)}: 3 access tokens issued, 1 refused (invalid_client 1)"
    assert hour_tips[-4] == f"{hour_title(this_hour - 3 * HOUR)}: 1 access token issued, 2 refused (invalid_grant 2)"
    assert all(t.endswith(": 0 access tokens issued, 0 refused") for i, t in enumerate(hour_tips) if i not in (20, 23))
    assert hours.count('class="bar grants"') == 2
    assert hours.count('class="bar failed ') == 2  # one reason in each of the two hours

    day_tips = bucket_titles(days)
    assert len(day_tips) == 30
    if this_hour - 3 * HOUR >= this_day:  # three hours ago was today
        assert (
            day_tips[-1]
            == f"{day_title(this_day)}: 4 access tokens issued, 3 refused (invalid_grant 2, invalid_client 1)"
        )
    else:
        assert day_tips[-1] == f"{day_title(this_day)}: 3 access tokens issued, 1 refused (invalid_client 1)"
        assert day_tips[-2] == f"{day_title(this_day - DAY)}: 1 access token issued, 2 refused (invalid_grant 2)"
    assert day_tips[-3] == f"{day_title(this_day - 2 * DAY)}: 2 access tokens issued, 1 refused (invalid_client 1)"
    # Nothing else: the grant of 40 days ago and the other app's are in neither chart.
    assert sum(int(re.search(r": (\d+) access", t).group(1)) for t in day_tips) == 6  # type: ignore[union-attr]
    assert days.count('class="bar grants"') == (2 if this_hour - 3 * HOUR >= this_day else 3)

    # The same numbers without the picture: the tables under <details>, and the text alternative.
    assert "<details>" in hours and '<td>3</td><td>1</td><td class="mono">invalid_client 1</td>' in hours
    assert re.search(r'<desc id="chart-hours-desc">4 access tokens issued and 3 requests refused '
                     r"\(invalid_grant 2, invalid_client 1\)", hours)  # fmt: skip
    # The legend names every reason with its colour.
    assert '<span class="swatch failed r0" aria-hidden="true"></span>Refused: <code>invalid_client</code>' in page.text
    assert '<span class="swatch failed r1" aria-hidden="true"></span>Refused: <code>invalid_grant</code>' in page.text


async def test_a_refresh_retried_within_the_leeway_is_not_counted_as_a_token(
    harness: Harness, people: MakePerson
) -> None:
    """A refresh retried within the leeway gets the pair already issued (SPEC §2.3): the audit says so
    (``token.refresh_retried``, not a second ``token.refreshed``), and Token activity, the last token
    time and the charts count only the tokens issued: the code exchange and the one rotation."""
    dev = await people("dev@example.com", "developer")
    world = await owned_world(harness, dev)
    now = (int(time.time()) // HOUR) * HOUR + 1800  # the middle of an hour: one bucket
    set_clock(harness, now)
    tokens = await harness.user_tokens(world)
    rotated = await harness.refresh(world, tokens["refresh_token"])
    harness.clock.advance(1)
    retried = await harness.refresh(world, tokens["refresh_token"])  # within the 5-second leeway
    assert rotated.json()["result"] == retried.json()["result"]  # the same pair: nothing issued
    await asyncio.sleep(0.3)  # the group commit writes the audit rows

    page = await dev.get(f"/console/apps/{world.app_id}")
    activity = re.search(r'<h2 id="h-activity">Token activity</h2>(.*?)</section>', page.text, re.S)
    assert activity is not None
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", activity.group(1))).split())
    assert text.startswith("2 access tokens issued in the last 24 hours 2 user tokens, 0 app tokens.")
    assert (
        bucket_titles(figure(page.text, "chart-hours"))[-1]
        == f"{hour_title(now - 1800)}: 2 access tokens issued, 0 refused"
    )
    # The token events only: the install and registration rows carry the wall clock, the grants the test's.
    rows = [row for row in events_table(page.text) if row[1].rsplit(" ", 1)[1].startswith("token.")]
    assert [r[1].rsplit(" ", 1)[1] for r in rows[:3]] == [
        events.TOKEN_REFRESH_RETRIED,
        events.TOKEN_REFRESHED,
        events.TOKEN_ISSUED,
    ]
    assert rows[0][1].startswith("A refresh retried within the leeway got the pair its first request got")
    assert events.TOKEN_REFRESH_RETRIED in dict(app_event_choices())


async def test_an_app_without_activity_has_empty_charts(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    world = await owned_world(harness, dev)
    page = await dev.get(f"/console/apps/{world.app_id}")
    hours = figure(page.text, "chart-hours")
    assert len(bucket_titles(hours)) == 24 and 'class="bar' not in hours
    assert "0 access tokens issued and 0 requests refused." in hours
    assert "Refused: <code>" not in page.text


# --------------------------------------------------------------------- events


async def test_events_say_what_happened_and_why_to_the_second(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    world = await owned_world(harness, dev)
    await harness.app_token(world)
    await bad_secret(harness, world)
    await asyncio.sleep(0.3)
    page = await dev.get(f"/console/apps/{world.app_id}")
    rows = events_table(page.text)
    denied = next(r for r in rows if "token.denied" in r[1])
    assert denied[1] == "A token endpoint refused a request token.denied"
    assert denied[2].startswith("invalid_client (40101): Unknown app, wrong secret or suspended app.")
    assert "endpoint: credit_token" in denied[2]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", denied[0]), denied[0]
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ">', page.text)
    issued = next(r for r in rows if "token.issued" in r[1])
    assert issued[1].startswith("An access token was issued") and "grant: client_credentials" in issued[2]


async def test_the_event_filter_shows_one_type(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    world = await owned_world(harness, dev)
    await harness.app_token(world)
    await bad_secret(harness, world)
    await asyncio.sleep(0.3)
    page = await dev.get(f"/console/apps/{world.app_id}", event=events.TOKEN_DENIED)
    assert page.status_code == 200
    rows = events_table(page.text)
    assert rows and all(r[1].endswith("token.denied") for r in rows)
    assert f'<option value="{events.TOKEN_DENIED}" selected>' in page.text
    # Every offered type is an app's event; none of people, SPEs or admin keys.
    offered = dict(app_event_choices())
    assert events.WEBHOOK_RESENT in offered and events.TOKEN_DENIED in offered
    assert not any(e.startswith(("user.", "admin_key.", "spe.")) for e in offered)
    assert event_label(events.TOKEN_DENIED) == "A token endpoint refused a request"
    none = await dev.get(f"/console/apps/{world.app_id}", event=events.APP_LAUNCHED)
    assert none.status_code == 200 and "No app.launched events." in none.text


@pytest.mark.parametrize("value", ["nope", "user.signed_in", "token.denied' OR 1=1", "x" * 5000])  # a NUL: test_portal
async def test_a_bad_event_type_is_a_form_error_not_a_crash(harness: Harness, people: MakePerson, value: str) -> None:
    dev = await people("dev@example.com", "developer")
    world = await owned_world(harness, dev)
    page = await dev.get(f"/console/apps/{world.app_id}", event=value)
    assert page.status_code == 400
    assert errors_in(page.text) == {"event": "Choose an event type from the list."}
    assert 'aria-invalid="true"' in page.text
    assert "Token grants and failures" in page.text  # the rest of the page is still there


# ------------------------------------------------------------------- webhooks


async def test_send_again_delivers_an_abandoned_notification(
    harness: Harness, people: MakePerson, receiver: Receiver
) -> None:
    dev = await people("dev@example.com", "developer")
    world = await owned_world(harness, dev, webhook_url=receiver.url)  # installing queues a notification
    outbox = harness.admin.stores.outbox

    async def attempts(n: int) -> None:
        """Until the n-th attempt's outcome is recorded (audited after the outbox row)."""

        async def done() -> bool:
            audit = await harness.audit(world.app_id)
            return len([r for r in audit if str(r["event"]).startswith(("webhook.failed", "webhook.abandoned"))]) >= n

        await wait_for(done)

    await attempts(1)
    page = await dev.get(f"/console/apps/{world.app_id}")
    row = re.search(r'<tr id="delivery-(\d+)">(.*?)</tr>', page.text, re.S)
    assert row is not None
    delivery_id, cells = row.group(1), row.group(2)
    assert '<span class="badge pending">pending</span>' in cells and "<td>1</td>" in cells
    assert "HTTP 500" in cells and "next try" in cells and "Install" in cells
    # Every retry fails too, until the notification is abandoned.
    for n in range(2, MAX_ATTEMPTS + 1):
        harness.clock.advance(BACKOFF[n - 2])
        await attempts(n)
    harness.clock.offset = 0  # back from 10.7 hours later, where the developer's session had ended
    page = await dev.get(f"/console/apps/{world.app_id}")
    cells = re.search(rf'<tr id="delivery-{delivery_id}">(.*?)</tr>', page.text, re.S).group(1)  # type: ignore[union-attr]
    assert '<span class="badge failed">failed</span>' in cells and f"<td>{MAX_ATTEMPTS}</td>" in cells
    sent_before = receiver.count()
    assert sent_before == MAX_ATTEMPTS

    receiver.status = 200  # the receiver is fixed; the developer sends it again
    answer = await dev.post(f"/console/apps/{world.app_id}/webhooks/{delivery_id}/resend")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/console/apps/{world.app_id}?notice=webhook-resent#h-webhooks"

    async def delivered() -> bool:
        rows = await outbox.list(world.app_id)
        return rows[0]["delivered_at"] is not None

    await wait_for(delivered)
    assert receiver.count() == sent_before + 1
    first, again = receiver.bodies[0], receiver.bodies[-1]
    assert re.search(rb'"event_id":"(evt_[^"]+)"', first).group(1) == re.search(  # type: ignore[union-attr]
        rb'"event_id":"(evt_[^"]+)"', again
    ).group(1)  # the same event
    page = await dev.get(f"/console/apps/{world.app_id}", notice="webhook-resent")
    assert "The notification is queued again" in page.text
    cells = re.search(rf'<tr id="delivery-{delivery_id}">(.*?)</tr>', page.text, re.S).group(1)  # type: ignore[union-attr]
    assert '<span class="badge delivered">delivered</span>' in cells and "<td>1</td>" in cells
    audit = [r for r in await harness.audit(world.app_id) if r["event"] == events.WEBHOOK_RESENT]
    assert len(audit) == 1
    detail = audit[0]["detail"]
    assert isinstance(detail, dict)
    assert (detail["delivery_id"], detail["previous_attempts"], detail["was"]) == (
        int(delivery_id),
        MAX_ATTEMPTS,
        "failed",
    )
    assert detail["user_id"] == dev.user.user_id


async def test_send_again_is_the_owners_and_needs_the_form_token(
    harness: Harness, people: MakePerson, receiver: Receiver
) -> None:
    dev = await people("dev@example.com", "developer")
    world = await owned_world(harness, dev, webhook_url=receiver.url)
    (row,) = await harness.admin.stores.outbox.list(world.app_id)
    path = f"/console/apps/{world.app_id}/webhooks/{row['id']}/resend"
    assert (await dev.post(path, csrf=False)).status_code == 403
    stranger = await people("other@example.com", "developer")
    assert (await stranger.post(path)).status_code == 404
    admin = await people("ops@example.com", "admin")
    assert (await admin.post(path)).status_code == 403  # the admin sees the page, only the owner acts
    for bad in ("999999", "abc", "1e3", "-1", "9" * 40):
        answer = await dev.post(f"/console/apps/{world.app_id}/webhooks/{bad}/resend")
        assert answer.status_code == 404, bad
    # Another app's notification is not reachable through this app's page.
    other = await owned_world(harness, dev, webhook_url=receiver.url)
    (theirs,) = await harness.admin.stores.outbox.list(other.app_id)
    assert (await dev.post(f"/console/apps/{world.app_id}/webhooks/{theirs['id']}/resend")).status_code == 404
    resent = [r for r in await harness.audit() if r["event"] == events.WEBHOOK_RESENT]
    assert resent == []


async def test_last_token_time_of_each_app(
    harness: Harness, people: MakePerson, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time of each app's last token (the apps lists and the app page); on SQL one seek per app
    and issuing event, in chunks of apps."""
    from openplatform.storage.sql import console

    monkeypatch.setattr(console, "LAST_TOKEN_CHUNK", 1)  # on SQL every app its own statement
    dev = await people("dev@example.com", "developer")
    worlds = [await owned_world(harness, dev) for _ in range(3)]
    now = (int(time.time()) // HOUR) * HOUR + 1800
    set_clock(harness, now - 7200)
    await harness.app_token(worlds[0])
    set_clock(harness, now - 60)
    tokens = await harness.user_tokens(worlds[0])
    set_clock(harness, now - 30)
    assert (await harness.refresh(worlds[1], tokens["refresh_token"])).status_code != 200  # another app's token
    set_clock(harness, now - 3600)
    await harness.app_token(worlds[1])
    set_clock(harness, now)
    await asyncio.sleep(0.3)
    last = await harness.admin.stores.console.last_token_at(w.app_id for w in worlds)
    assert set(last) == {worlds[0].app_id, worlds[1].app_id}  # the third app never got a token
    assert abs(last[worlds[0].app_id] - (now - 60)) < 1 and abs(last[worlds[1].app_id] - (now - 3600)) < 1
    assert await harness.admin.stores.console.last_token_at([]) == {}


# ------------------------------------------------------------ the benchmark


BENCHMARKS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def console_bench_commands() -> list[str]:
    """The command lines of docs/benchmarks.md's section on the console's app page."""
    section = BENCHMARKS.read_text().split("## The console's app page", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ") and "console_page.py" in line]


@pytest.mark.parametrize("line", range(2), ids=["sqlite", "postgres"])
def test_the_documented_console_benchmark_runs(line: int) -> None:
    """Each printed command, run by bash from the repository root with few rows and renders (no speed
    is asserted: the figures live in docs/benchmarks.md)."""
    commands = console_bench_commands()
    assert len(commands) == 2 and "--database-url postgresql://" in commands[1]
    if "postgresql://" in commands[line]:
        need(port_open("127.0.0.1", 5432), "PostgreSQL is not reachable on 127.0.0.1:5432")
    command = commands[line].replace("bench/console_page.py", "bench/console_page.py --rows 3000 --renders 2")
    done = subprocess.run(
        ["bash", "-c", command], cwd=BENCHMARKS.parents[1], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3,000 audit rows" in done.stdout and ("PostgreSQL" if line else "SQLite") in done.stdout
    rows = [r for r in done.stdout.splitlines() if r.startswith("| GET /console/apps/{id}")]
    assert len(rows) == 2, done.stdout
