"""Issue 13 in a real browser against ``openplatform serve``: what a newcomer trips over on the screens.

Item 4: a destructive action (suspend an app from its page or from the admin's list, disable a
customer or an account, rotate a secret) first shows a confirmation page; one click changes
nothing, and afterwards one banner says what happened. Item 6: unknown addresses and methods under
the screens are styled pages, the API keeps its envelope, and there is a favicon. Item 7: the
messages people see read right. Item 10: the menu, a phone-width screen, and a disabled customer.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from openplatform.config import Settings
from openplatform.runtime import build_admin
from openplatform.services.accounts import build_accounts
from tests.ui.browser import sign_in
from tests.ui.support import PASSWORD

# A browser on a live `openplatform serve` whose database this process seeds: not memory://.
pytestmark = pytest.mark.sql

PHONE = {"width": 375, "height": 740}


@dataclass
class World:
    xspe: str
    app_id: str
    app_name: str
    customer_id: str
    developer_id: str


def seed_world(settings: Settings) -> World:
    """An SPE, a platform admin, a developer owning an installed app, and an SPE admin with a customer."""

    async def go() -> World:
        admin = build_admin(settings)
        try:
            spe = await admin.create_spe("Acme Hosting")
            accounts = build_accounts(admin.stores, admin.keyring)
            await accounts.create_user("root@acme.example", "admin", PASSWORD, None)
            dev = await accounts.create_user("dev@acme.example", "developer", PASSWORD, None)
            await accounts.create_user("ops@acme.example", "spe-admin", PASSWORD, spe.xspe)
            name = "Partner CRM with a rather long name"
            app, _ = await admin.create_app(name, "https://crm.example.com/", owner_id=dev.user_id)
            customer = await admin.create_customer(spe.xspe, "Globex Corporation", "it@globex.example")
            await admin.install(app.app_id, customer_id=customer.customer_id)
            return World(spe.xspe, app.app_id, name, customer.customer_id, dev.user_id)
        finally:
            await admin.db.close()

    # Playwright's sync API keeps an event loop running in this thread, so seed from another one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def signed_in(browser: Any, base: str, email: str, **context: Any) -> Any:
    page = browser.new_context(**context).new_page()
    sign_in(page, base, email)
    return page


def banners(page: Any) -> list[str]:
    return [text.strip() for text in page.locator(".notice, .warning").all_inner_texts()]


def app_token_status(base: str, app_id: str, secret: str) -> int:
    data = {"app_id": app_id, "secret": secret, "grant_type": "client_credential"}
    return httpx.post(f"{base}/oauth/credit/token", data=data, timeout=10).status_code


# ------------------------------------------------------------------ item 4: confirm first


def test_suspending_an_app_asks_first_then_says_what_happened_once(
    browser: Any, live_server: str, settings: Settings
) -> None:
    world = seed_world(settings)
    dev = signed_in(browser, live_server, "dev@acme.example")
    dev.goto(f"{live_server}/console/apps/{world.app_id}")
    dev.get_by_role("link", name="Suspend").click()
    dev.get_by_role("heading", name=f"Suspend {world.app_name}?").wait_for()
    assert "Every token it holds stops working" in dev.locator(".warning").inner_text()
    assert "(1 installation)" in dev.content()

    dev.get_by_role("link", name="Cancel").click()  # cancelling changes nothing
    dev.wait_for_url(f"{live_server}/console/apps/{world.app_id}")
    assert dev.locator("h1 .badge").inner_text() == "active"

    dev.get_by_role("link", name="Suspend").click()
    dev.get_by_role("button", name="Suspend").click()
    dev.wait_for_url(re.compile(r"notice=app-suspended$"))
    assert banners(dev) == [
        "The app was suspended: its tokens stop working and it cannot get new ones until it is resumed."
    ]
    assert dev.locator("h1 .badge").inner_text() == "suspended"
    dev.reload()  # without the notice, the page still says that the app is suspended: once
    dev.goto(f"{live_server}/console/apps/{world.app_id}")
    assert banners(dev) == [
        "This app is suspended: its tokens do not work and it cannot get new ones until it is resumed."
    ]
    dev.get_by_role("button", name="Resume").click()  # resuming is not destructive: one click
    dev.get_by_text("The app was resumed: it can get tokens again.").wait_for()


def test_suspending_from_the_admins_list_asks_first(browser: Any, live_server: str, settings: Settings) -> None:
    world = seed_world(settings)
    root = signed_in(browser, live_server, "root@acme.example")
    root.goto(f"{live_server}/admin/apps")
    root.get_by_role("link", name=f"Suspend {world.app_name}").click()
    root.get_by_role("heading", name=f"Suspend {world.app_name}?").wait_for()
    root.get_by_role("link", name="Cancel").click()
    root.wait_for_url(f"{live_server}/admin/apps")
    assert root.locator("td .badge").inner_text() == "active"

    root.get_by_role("link", name=f"Suspend {world.app_name}").click()
    root.get_by_role("button", name="Suspend").click()
    root.wait_for_url(f"{live_server}/admin/apps?notice=app-suspended")
    assert banners(root) == [
        "The app was suspended: its tokens stop working and it cannot get new ones until it is resumed."
    ]
    assert root.locator("td .badge").inner_text() == "suspended"


def test_disabling_a_customer_asks_first_and_it_is_then_offered_no_install(
    browser: Any, live_server: str, settings: Settings
) -> None:
    world = seed_world(settings)
    ops = signed_in(browser, live_server, "ops@acme.example")
    ops.goto(f"{live_server}/portal/customers/{world.customer_id}")
    assert ops.get_by_role("heading", name="Install an app for this customer").is_visible()
    ops.get_by_role("link", name="Disable").click()
    ops.get_by_role("heading", name="Disable Globex Corporation?").wait_for()
    assert "every user token and code that apps hold for this customer stops working" in ops.content()
    ops.get_by_role("button", name="Disable").click()
    ops.wait_for_url(re.compile(r"notice=customer-disabled$"))
    assert banners(ops) == [
        "The customer was disabled: the tokens apps hold for it stop working, and no app can be opened or "
        "installed for it until it is enabled again."
    ]
    # item 10: a disabled customer is not offered "Install an app" (nor "Open app")
    assert ops.get_by_role("heading", name="Install an app for this customer").count() == 0
    assert ops.get_by_role("button", name="Open app").count() == 0
    ops.goto(f"{live_server}/portal/customers/{world.customer_id}")
    assert banners(ops) == [
        "This customer is disabled: the tokens apps hold for it do not work, and no app can be opened or "
        "installed for it until it is enabled again."
    ]
    ops.get_by_role("button", name="Enable").click()
    ops.get_by_text("The customer was enabled again.").wait_for()
    assert ops.get_by_role("heading", name="Install an app for this customer").is_visible()


def test_disabling_an_account_asks_first(browser: Any, live_server: str, settings: Settings) -> None:
    seed_world(settings)
    dev = signed_in(browser, live_server, "dev@acme.example")
    root = signed_in(browser, live_server, "root@acme.example")
    root.goto(f"{live_server}/admin/users")
    root.get_by_role("link", name="Disable dev@acme.example").click()
    root.get_by_role("heading", name="Disable dev@acme.example?").wait_for()
    assert "The account will be signed out of its 1 open session." in root.content()
    root.get_by_role("button", name="Disable").click()
    root.get_by_text("The account was disabled and signed out everywhere.").wait_for()
    dev.goto(f"{live_server}/console")
    assert "/login" in dev.url


def test_rotating_asks_first_and_a_new_apps_secret_page_mentions_no_previous_secret(
    browser: Any, live_server: str, settings: Settings
) -> None:
    seed_world(settings)
    dev = signed_in(browser, live_server, "dev@acme.example")
    dev.goto(f"{live_server}/console/apps/new")
    dev.get_by_label("Name", exact=True).fill("Fresh app")
    dev.get_by_label("Entrance URL (host_url)").fill("https://fresh.example.com/")
    dev.get_by_role("button", name="Create app").click()
    dev.get_by_text("Copy the secret now.").wait_for()
    app_id, first = dev.locator("#app-id").inner_text(), dev.locator("#app-secret").inner_text()
    assert "previous secret" not in dev.content()  # item 7: a brand-new app had none

    dev.goto(f"{live_server}/console/apps/{app_id}")
    dev.get_by_label("When should the current secret stop working?").select_option("0")
    dev.get_by_role("button", name="Rotate secret").click()
    dev.get_by_role("heading", name="Rotate the secret of Fresh app?").wait_for()
    assert "The current secret stops working at once" in dev.locator(".warning").inner_text()
    assert app_token_status(live_server, app_id, first) == 200  # not rotated yet
    dev.get_by_role("button", name="Rotate now").click()
    dev.get_by_text("Copy the secret now.").wait_for()
    assert dev.get_by_text("The previous secret has stopped working.").is_visible()
    assert app_token_status(live_server, app_id, first) == 401


# ------------------------------------------------------------- item 6: pages, not JSON


def test_unknown_addresses_under_the_screens_are_pages_and_the_api_keeps_its_envelope(
    browser: Any, live_server: str, settings: Settings
) -> None:
    seed_world(settings)
    visitor = browser.new_page()
    for path in ("/console/nope", "/portal/customers/x/nope", "/admin/nope", "/login/nope", "/account/nope"):
        answer = visitor.goto(f"{live_server}{path}")
        assert answer.status == 404 and answer.headers["content-type"].startswith("text/html"), path
        assert visitor.get_by_role("heading", name="Page not found").is_visible()
        assert visitor.get_by_role("link", name="Sign in").get_attribute("href") == "/login"
        assert visitor.locator("link[rel=stylesheet]").count() == 1  # the usual layout

    dev = signed_in(browser, live_server, "dev@acme.example")
    answer = dev.goto(f"{live_server}/console/apps/x/y/z")
    assert answer.status == 404 and dev.get_by_role("link", name="My apps").is_visible()  # with the menu
    assert dev.get_by_role("link", name="Back to your start page").get_attribute("href") == "/console"
    answer = dev.goto(f"{live_server}/logout")  # sign-out is a POST
    assert answer.status == 405 and answer.headers["allow"] == "POST"
    assert dev.get_by_role("heading", name="Not possible here").is_visible()

    api = dev.goto(f"{live_server}/api/nope")
    assert api.status == 404 and api.headers["content-type"].startswith("application/json")
    assert api.json()["error"] == "not_found"
    oauth = httpx.get(f"{live_server}/oauth/access_token", timeout=10)
    assert oauth.status_code == 405 and oauth.json()["error"] == "method_not_allowed"
    asking_json = httpx.get(f"{live_server}/console/nope", headers={"accept": "application/json"}, timeout=10)
    assert asking_json.status_code == 404 and asking_json.json()["error"] == "not_found"


def test_a_mistyped_address_outside_the_screens_is_a_page_for_a_browser(
    browser: Any, live_server: str, settings: Settings
) -> None:
    """A browser at an unknown address that is not the screens' (a mistyped ``/logn``) gets the styled
    404 page; the machine paths keep the envelope even for a browser, and so does everywhere a client
    that does not ask for HTML (issue 13)."""
    visitor = browser.new_page()
    for path in ("/logn", "/consle/apps", "/docs/nope", "/apis"):
        answer = visitor.goto(f"{live_server}{path}")
        assert answer.status == 404 and answer.headers["content-type"].startswith("text/html"), path
        assert visitor.get_by_role("heading", name="Page not found").is_visible(), path
        assert visitor.get_by_role("link", name="Sign in").get_attribute("href") == "/login"
    for path in ("/api/nope", "/api", "/oauth/nope", "/.well-known/openid-configuration", "/healthz/x",
                 "/metrics/x", "/openapi.json/x"):  # fmt: skip
        answer = visitor.goto(f"{live_server}{path}")
        assert answer.status == 404 and answer.headers["content-type"].startswith("application/json"), path
        assert answer.json()["error"] == "not_found", path
    program = httpx.get(f"{live_server}/logn", timeout=10)  # Accept: */*
    assert program.status_code == 404 and program.json()["error"] == "not_found"


def test_there_is_a_favicon(browser: Any, live_server: str, settings: Settings) -> None:
    icon = httpx.get(f"{live_server}/favicon.ico", timeout=10)
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    page = browser.new_page()
    page.goto(f"{live_server}/login")
    linked = page.locator("link[rel=icon]").get_attribute("href")
    assert linked == "/static/favicon.svg"
    svg = page.goto(f"{live_server}{linked}")
    assert svg.status == 200 and svg.headers["content-type"].startswith("image/svg+xml")


# ------------------------------------------------------------------ item 7: messages


def test_form_messages_read_as_sentences(browser: Any, live_server: str, settings: Settings) -> None:
    seed_world(settings)
    root = signed_in(browser, live_server, "root@acme.example")
    root.goto(f"{live_server}/admin/users")
    root.get_by_label("E-mail").fill("new@acme.example")
    root.get_by_label("Role", exact=True).select_option("spe-admin")
    root.get_by_label("Initial password").fill(PASSWORD)
    root.get_by_role("button", name="Create account").click()
    assert root.locator("#f-xspe-error").inner_text() == "Choose the SPE this SPE admin will manage."

    dev = signed_in(browser, live_server, "dev@acme.example")
    dev.goto(f"{live_server}/console/apps/new")
    dev.get_by_label("Name", exact=True).fill("Files")
    dev.get_by_label("Entrance URL (host_url)").fill("ftp://files.example.com/")
    dev.get_by_label("IP whitelist").fill("10.0.0.1\n10.0.0.300\n192.168.0.0/16\nlocalhost")
    dev.get_by_role("button", name="Create app").click()
    assert dev.locator("#f-host_url-error").inner_text() == (
        "Entrance URL (host_url) must start with https:// (or http:// for localhost), not ftp://."
    )
    assert dev.locator("#f-ip_whitelist-error").inner_text() == (
        "'10.0.0.300' and 'localhost' are not IP addresses or CIDR ranges."
    )


# ------------------------------------------------------------- item 10: small visual faults


def test_only_the_current_menu_item_is_highlighted(browser: Any, live_server: str, settings: Settings) -> None:
    world = seed_world(settings)
    dev = signed_in(browser, live_server, "dev@acme.example")
    for path, current in (("/console", "My apps"), ("/console/apps/new", "New app"),
                          (f"/console/apps/{world.app_id}", "My apps")):  # fmt: skip
        dev.goto(f"{live_server}{path}")
        assert dev.locator("nav [aria-current=page]").all_inner_texts() == [current], path


def test_tables_fit_a_phone_width_screen(browser: Any, live_server: str, settings: Settings) -> None:
    """At 375 px the page never scrolls sideways; a wide table scrolls inside its card, every column kept."""
    world = seed_world(settings)
    pages = {
        "dev@acme.example": ["/console", f"/console/apps/{world.app_id}"],
        "root@acme.example": ["/admin/apps", "/admin/users", "/admin"],
        "ops@acme.example": ["/portal", f"/portal/customers/{world.customer_id}"],
    }
    for email, paths in pages.items():
        page = signed_in(browser, live_server, email, viewport=PHONE)
        for path in paths:
            page.goto(f"{live_server}{path}")
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], path
            # Tables folded under <details> (the charts' numbers) are opened, as a reader does, and checked too.
            page.evaluate("document.querySelectorAll('details').forEach(folded => { folded.open = true; })")
            for table in page.locator(".table-scroll").all():
                box = table.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], path
                last = table.locator("tr").first.locator("th, td").last
                assert last.is_visible(), path  # no column is hidden: the last one can be scrolled to
    admin = signed_in(browser, live_server, "root@acme.example", viewport=PHONE)
    admin.goto(f"{live_server}/admin/apps")
    suspend = admin.get_by_role("link", name=f"Suspend {world.app_name}")
    suspend.scroll_into_view_if_needed()
    assert admin.evaluate("document.querySelector('.table-scroll').scrollLeft") > 0  # it scrolled in its card
    suspend.click()
    admin.get_by_role("heading", name=f"Suspend {world.app_name}?").wait_for()
