"""The console's app page in a real browser against ``openplatform serve`` (issue 13 item 9): the SVG
charts with one group per hour and per day and a bar for each seeded hour and day, the events with
what happened and why, the event filter, and "Send again" re-sending a notification to a real
receiver on 127.0.0.1. Takes the screenshots of docs/console.md's activity section."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from openplatform import events
from openplatform.config import Settings
from openplatform.runtime import build_admin
from openplatform.services.accounts import build_accounts
from tests.ui.browser import shot, sign_in
from tests.ui.receiver import Receiver, serving
from tests.ui.support import PASSWORD

# A browser on a live `openplatform serve` whose database this process seeds: not memory://.
pytestmark = pytest.mark.sql

HOUR, DAY = 3600, 86400
HOURS_AGO = (2, 5, 11)  # grants seeded in these earlier hours, each with one refusal an hour later
DAYS_AGO = (3, 7, 12, 20)  # and on these earlier days


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The receiver is on 127.0.0.1 (the live server gets this through its environment).
    return {"webhook_private_networks": "allow"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as state:
        yield state


@dataclass
class Seeded:
    app_id: str
    secret: str
    grant_hours: set[int]  # hour numbers (UNIX hours) that got grants, the current one included
    grant_days: set[int]
    refusals: set[tuple[int, str]]  # (UNIX hour, reason)


def seed(settings: Settings, webhook_url: str) -> Seeded:
    """A developer's app installed for a customer (which queues a notification), and a history of
    grants and refusals written through the management service's audit at known times."""

    async def go() -> Seeded:
        admin = build_admin(settings)
        try:
            spe = await admin.create_spe("Acme Hosting")
            dev = await build_accounts(admin.stores, admin.keyring).create_user(
                "dev@acme.example", "developer", PASSWORD
            )
            app, secret = await admin.create_app(
                "Shop sync", "https://shop.example.com/", ["customer:read"], [], webhook_url, owner_id=dev.user_id
            )
            customer = await admin.create_customer(spe.xspe, "Globex Corporation")
            await admin.install(app.app_id, customer_id=customer.customer_id)
            now = time.time()
            hour = int(now // HOUR)
            moments = [(hour - k) * HOUR + 600 for k in HOURS_AGO] + [now - k * DAY for k in DAYS_AGO]
            refusals = [((hour - k + 1) * HOUR + 300, reason) for k, reason in
                        zip(HOURS_AGO, ("invalid_grant", "invalid_scope", "invalid_grant"), strict=True)]  # fmt: skip
            real_clock = admin.db.clock
            for i, at in enumerate(moments):
                admin.db.clock = lambda at=at: at
                for _ in range(i % 3 + 1):
                    await admin.db.audit(events.TOKEN_ISSUED, app_id=app.app_id, grant="client_credentials")
            for at, reason in refusals:
                admin.db.clock = lambda at=at: at
                await admin.db.audit(events.TOKEN_DENIED, app_id=app.app_id, endpoint="access_token", error=reason)
            admin.db.clock = real_clock
            return Seeded(
                app.app_id,
                secret,
                {int(at // HOUR) for at in moments if at > now - DAY} | {hour},
                {int(at // DAY) for at in moments} | {int(now // DAY)},
                {(int(at // HOUR), reason) for at, reason in refusals},
            )
        finally:
            await admin.db.close()

    # Playwright's sync API keeps an event loop running in this thread, so seed from another one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def token_request(base: str, app_id: str, secret: str) -> int:
    data = {"app_id": app_id, "secret": secret, "grant_type": "client_credential"}
    return httpx.post(f"{base}/oauth/credit/token", data=data, timeout=10).status_code


def wait_until(check: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_app_page_shows_charts_events_and_sends_a_webhook_again(
    browser: Any, live_server: str, settings: Settings, receiver: Receiver, screenshots: Path | None
) -> None:
    seeded = seed(settings, receiver.url)
    # This hour, through the real token endpoint: two app tokens and a wrong secret.
    assert token_request(live_server, seeded.app_id, seeded.secret) == 200
    assert token_request(live_server, seeded.app_id, seeded.secret) == 200
    assert token_request(live_server, seeded.app_id, "0" * 64) == 401
    wait_until(lambda: receiver.count() >= 1)  # the install's notification, refused by the receiver

    page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    sign_in(page, live_server, "dev@acme.example")
    app_page = f"{live_server}/console/apps/{seeded.app_id}"
    page.goto(app_page)

    # The charts: an SVG group per hour and per day, a bar where there were grants or refusals.
    hours, days = page.locator("#chart-hours svg"), page.locator("#chart-days svg")
    assert hours.is_visible() and days.is_visible()
    assert hours.bounding_box()["width"] > 600
    assert hours.locator("g.bucket").count() == 24 and days.locator("g.bucket").count() == 30
    assert hours.locator("rect.bar.grants").count() == len(seeded.grant_hours)
    assert days.locator("rect.bar.grants").count() == len(seeded.grant_days)
    this_hour = int(time.time() // HOUR)
    refused_hours = {(h, r) for h, r in seeded.refusals if h > this_hour - 24} | {(this_hour, "invalid_client")}
    assert hours.locator("rect.bar.failed").count() == len(refused_hours)
    hours_name = "Last 24 hours, per hour (UTC): access tokens issued and requests refused"
    assert page.get_by_role("img", name=hours_name).count() == 1
    legend = page.locator("ul.legend").inner_text()
    assert "Access tokens issued" in legend and "invalid_grant" in legend and "invalid_client" in legend
    if screenshots is not None:
        page.locator("section[aria-labelledby=h-charts]").screenshot(path=str(screenshots / "console-charts.png"))
    # The numbers without the picture: the table under <details> opens with a click.
    assert not page.locator("#chart-hours table.numbers").is_visible()
    page.locator("#chart-hours summary").click()
    first_row = page.locator("#chart-hours table.numbers tbody tr").first.inner_text()
    assert "2\t1\tinvalid_client 1" in first_row, first_row  # the current hour, newest first
    page.locator("#chart-hours summary").click()

    # The events say what happened and why.
    events_table = page.locator("table.events")
    assert "A token endpoint refused a request" in events_table.inner_text()
    assert "invalid_client (40101): Unknown app, wrong secret or suspended app." in events_table.inner_text()

    # The filter: one type only; a made-up one is an error next to the filter.
    page.select_option("#f-event", events.TOKEN_DENIED)
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    assert "event=token.denied" in page.url
    codes = page.locator("table.events tbody tr td:nth-child(2) code").all_inner_texts()
    assert codes and set(codes) == {events.TOKEN_DENIED}
    answer = page.goto(f"{app_page}?event=nope")
    assert answer is not None and answer.status == 400
    assert page.locator("#f-event-error").inner_text() == "Choose an event type from the list."

    # Send again: the receiver is fixed, the developer presses the button, the notification arrives.
    page.goto(app_page)
    row = page.locator("table.deliveries tbody tr").first
    assert "pending" in row.inner_text() and "HTTP 500" in row.inner_text()
    shot(page, screenshots, "console-app-activity")
    receiver.status = 200
    before = receiver.count()
    with page.expect_navigation():
        row.get_by_role("button", name="Send again").click()
    assert "The notification is queued again" in page.locator(".notice").inner_text()
    wait_until(lambda: receiver.count() > before)

    def delivered() -> bool:
        page.reload()
        return "delivered" in page.locator("table.deliveries tbody tr").first.inner_text()

    wait_until(delivered)
    page.context.close()


TEXT_OUTSIDE_ITS_CHART = """svg => {
    const box = svg.getBoundingClientRect();
    return [...svg.querySelectorAll("text")].filter(text => {
        const t = text.getBoundingClientRect();
        return t.left < box.left - 0.5 || t.right > box.right + 0.5
            || t.top < box.top - 0.5 || t.bottom > box.bottom + 0.5;
    }).map(text => text.textContent);
}"""


@pytest.mark.parametrize("width", [1200, 375])
def test_the_charts_read_well_on_a_desktop_and_a_phone(
    browser: Any, live_server: str, settings: Settings, receiver: Receiver, width: int
) -> None:
    """No label is cut off at the chart's edge (the last day's date was), and on a phone the labels stay
    readable (the chart shrank to the screen with its text, to about 5 px): it keeps a readable width,
    scrolls sideways inside its card, and opens on its right end, the hours and days just past."""
    seeded = seed(settings, receiver.url)
    page = browser.new_context(viewport={"width": width, "height": 900}).new_page()
    sign_in(page, live_server, "dev@acme.example")
    page.goto(f"{live_server}/console/apps/{seeded.app_id}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the page never scrolls sideways
    for chart in ("#chart-hours", "#chart-days"):
        svg = page.locator(f"{chart} svg")
        assert svg.evaluate(TEXT_OUTSIDE_ITS_CHART) == [], chart
        label_heights = svg.locator("text").evaluate_all("texts => texts.map(t => t.getBoundingClientRect().height)")
        assert min(label_heights) >= 11, (chart, label_heights)  # 12 px text is about 14 px high
        newest = svg.locator("g.bucket").last.bounding_box()
        assert newest is not None and 0 <= newest["x"] and newest["x"] + newest["width"] <= width, chart
    page.context.close()
