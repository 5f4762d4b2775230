"""The whole story of issue 3 in a real browser against a real ``openplatform serve``.

An admin (bootstrapped with the CLI) creates an SPE and two accounts; the
developer registers an app whose entrance is a small app on 127.0.0.1 and copies
APP_ID and Secret from the screen; the SPE admin creates a customer, installs the
app and clicks **Open app**; the app verifies the signed launch, gets a code from
/oauth/connect, exchanges it with the copied secret and shows the customer it
fetched from the Open API. Screenshots of the main screens are saved on the way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from openplatform.config import Settings
from tests.ui.browser import create_user_with_cli, shot, sign_in
from tests.ui.partner import PartnerApp, serving
from tests.ui.support import PASSWORD

# A browser on a live `openplatform serve` whose database this process seeds: not memory://.
pytestmark = pytest.mark.sql


def admin_sets_up(page: Any, base: str, folder: Path | None) -> str:
    page.get_by_label("Name", exact=True).fill("Acme Hosting")
    page.get_by_role("button", name="Create SPE").click()
    page.get_by_text("The SPE was created.").wait_for()
    xspe = page.locator("td code").first.inner_text()
    page.get_by_role("link", name="Users").click()
    for email, role in (("dev@acme.example", "developer"), ("ops@acme.example", "spe-admin")):
        page.get_by_label("E-mail").fill(email)
        page.get_by_label("Role", exact=True).select_option(role)
        if role == "spe-admin":
            page.locator("#f-xspe").select_option(xspe)
        page.get_by_label("Initial password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        page.get_by_text("The account was created.").wait_for()
    shot(page, folder, "admin-users")
    return xspe


def developer_registers(page: Any, partner: PartnerApp, folder: Path | None) -> tuple[str, str]:
    page.get_by_role("link", name="Create your first app").click()
    page.get_by_label("Name", exact=True).fill("Partner CRM")
    page.get_by_label("Entrance URL (host_url)").fill("http://crm.example.com/")  # plain http: refused
    page.get_by_label("customer:read").check()
    page.get_by_role("button", name="Create app").click()
    assert page.locator("#f-host_url-error").inner_text() == "Plain http is only allowed for localhost; use https."
    shot(page, folder, "console-new-app-error")
    page.get_by_label("Entrance URL (host_url)").fill(f"{partner.base}/")
    page.get_by_role("button", name="Create app").click()
    page.get_by_text("Copy the secret now.").wait_for()
    app_id = page.locator("#app-id").inner_text()
    secret = page.locator("#app-secret").inner_text()
    page.get_by_role("button", name="Copy Secret").click()  # the copy button really copies it
    assert page.evaluate("navigator.clipboard.readText()") == secret
    shot(page, folder, "console-credentials")
    return app_id, secret


def spe_admin_opens_the_app(page: Any, partner: PartnerApp, folder: Path | None) -> str:
    page.get_by_role("link", name="Create a customer").click()
    page.get_by_label("Name", exact=True).fill("Globex Corporation")
    page.get_by_label("Contact").fill("it@globex.example")
    page.get_by_role("button", name="Create customer").click()
    page.get_by_text("The customer was created.").wait_for()
    customer_id = page.locator("#customer-id").inner_text()
    page.get_by_label("App", exact=True).select_option(label=f"Partner CRM — {partner.base}/")
    page.get_by_role("button", name="Install for this customer").click()
    page.get_by_text("The app is installed.").wait_for()
    shot(page, folder, "portal-customer")
    page.get_by_role("button", name="Open Partner CRM").click()
    page.wait_for_url(re.compile(re.escape(partner.base) + r"/callback\?code="))
    return customer_id


def test_the_whole_story_in_a_browser(
    browser: Any, live_server: str, settings: Settings, screenshots: Path | None
) -> None:
    partner = PartnerApp(live_server)
    create_user_with_cli(settings, "root@acme.example", "admin")
    with serving(partner.asgi, partner.port):
        admin = browser.new_page()
        admin.goto(f"{live_server}/login")
        shot(admin, screenshots, "sign-in")
        sign_in(admin, live_server, "root@acme.example")
        xspe = admin_sets_up(admin, live_server, screenshots)

        developer_context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        developer = developer_context.new_page()
        sign_in(developer, live_server, "dev@acme.example")
        assert developer.get_by_text("You have no apps yet.").is_visible()
        partner.app_id, partner.secret = developer_registers(developer, partner, screenshots)
        assert re.fullmatch(r"[0-9a-f]{32}", partner.app_id) and re.fullmatch(r"[0-9a-f]{64}", partner.secret)

        spe = browser.new_context().new_page()
        sign_in(spe, live_server, "ops@acme.example")
        customer_id = spe_admin_opens_the_app(spe, partner, screenshots)
        assert spe.locator("h1").inner_text() == "Hello, Globex Corporation"
        assert (spe.locator("#customer-id").inner_text(), spe.locator("#xspe").inner_text()) == (customer_id, xspe)
        spe.goto(f"{live_server}/portal")
        shot(spe, screenshots, "portal-customers")

        developer.goto(f"{live_server}/console")
        shot(developer, screenshots, "console-apps")
        developer.get_by_role("link", name="Partner CRM").click()
        assert "Globex Corporation" in developer.locator("#h-installs + .table-scroll").inner_text()
        assert developer.locator(".stat").inner_text() == "1"  # the user token the app just got
        assert partner.secret not in developer.content()
        shot(developer, screenshots, "console-app")
        developer.get_by_role("link", name="Suspend").click()  # a destructive action asks first (issue 13)
        developer.get_by_role("heading", name="Suspend Partner CRM?").wait_for()
        shot(developer, screenshots, "console-suspend-confirm")
        developer.get_by_role("link", name="Cancel").click()
        developer.wait_for_url(re.compile(r"/console/apps/[0-9a-f]{32}$"))

        admin.get_by_role("link", name="All apps").click()
        assert "dev@acme.example" in admin.locator("table").inner_text()
        shot(admin, screenshots, "admin-apps")
