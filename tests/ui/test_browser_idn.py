"""In a real browser against ``openplatform serve``: an app on an international host name
(SPEC §9; issue 9 finding 9). The developer types the entrance URL in Unicode; the SPE
admin's customer page opens (it names the app's origin in its CSP) and "Open app"
takes the browser to the host's A-label spelling with a launch the app can verify.
The app's host is not on the network: the browser's requests to it are answered here.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from openplatform.config import Settings
from openplatform.core.signing import verify_launch
from tests.ui.browser import seed, sign_in

# A browser on a live `openplatform serve` whose database this process seeds: not memory://.
pytestmark = pytest.mark.sql

A_LABEL_HOST = "xn--r8jz45g.xn--zckzah"  # 例え.テスト


def developer_creates_the_app(page: Any, base: str) -> tuple[str, str]:
    page.goto(f"{base}/console/apps/new")
    page.get_by_label("Name", exact=True).fill("Partner IDN")
    page.get_by_label("Entrance URL (host_url)").fill("https://例え.テスト/入口")
    page.get_by_role("button", name="Create app").click()
    page.get_by_text("Copy the secret now.").wait_for()
    return page.locator("#app-id").inner_text(), page.locator("#app-secret").inner_text()


def test_open_an_app_on_an_idn_host(browser: Any, live_server: str, settings: Settings) -> None:
    seed(settings, ("dev@acme.example", "developer"), ("ops@acme.example", "spe-admin"))
    developer = browser.new_context().new_page()
    sign_in(developer, live_server, "dev@acme.example")
    app_id, secret = developer_creates_the_app(developer, live_server)

    context = browser.new_context()
    arrived: list[str] = []

    def the_app(route: Any) -> None:
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Partner IDN</h1>")

    context.route(re.compile(rf"^https://{re.escape(A_LABEL_HOST)}/.*"), the_app)
    spe = context.new_page()
    sign_in(spe, live_server, "ops@acme.example")
    spe.get_by_role("link", name="Create a customer").click()
    spe.get_by_label("Name", exact=True).fill("Globex")
    spe.get_by_role("button", name="Create customer").click()
    spe.get_by_text("The customer was created.").wait_for()
    customer_id = spe.locator("#customer-id").inner_text()
    spe.get_by_label("App", exact=True).select_option(app_id)
    with spe.expect_navigation() as installed:
        spe.get_by_role("button", name="Install for this customer").click()
    assert installed.value.status == 200  # the customer page, its CSP naming the app's origin
    spe.get_by_text("The app is installed.").wait_for()

    spe.get_by_role("button", name="Open Partner IDN").click()
    spe.get_by_role("heading", name="Partner IDN").wait_for()
    assert len(arrived) == 1
    target = urlsplit(arrived[0])
    assert (target.netloc, target.path) == (A_LABEL_HOST, "/%E5%85%A5%E5%8F%A3")
    params = dict(parse_qsl(target.query))
    assert (params["app_id"], params["customer_id"]) == (app_id, customer_id)
    assert verify_launch(secret, params)
