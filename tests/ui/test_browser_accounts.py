"""In a real browser against ``openplatform serve``: changing one's own password, and an admin
setting a new password for someone else after a confirmation step (SPEC §9, issue 9 finding 12)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from openplatform.config import Settings
from tests.ui.browser import seed, sign_in
from tests.ui.support import PASSWORD

# A browser on a live `openplatform serve` whose database this process seeds: not memory://.
pytestmark = pytest.mark.sql

NEW = "a brand new passphrase"


def signed_out(page: Any, base: str) -> bool:
    page.goto(f"{base}/console")
    return bool(re.search(r"/login\?next=/console$", page.url))


def test_a_user_changes_their_password(browser: Any, live_server: str, settings: Settings) -> None:
    seed(settings, ("dev@acme.example", "developer"))
    here = browser.new_context().new_page()
    sign_in(here, live_server, "dev@acme.example")
    laptop = browser.new_context().new_page()  # the same person, signed in elsewhere
    sign_in(laptop, live_server, "dev@acme.example")

    here.get_by_role("link", name="Change password").click()
    here.get_by_label("Current password").fill("not my password")
    here.get_by_label("New password", exact=True).fill(NEW)
    here.get_by_label("New password again").fill(NEW)
    here.get_by_role("button", name="Change password").click()
    assert here.locator("#f-current_password-error").inner_text() == "Current password is wrong."
    assert here.get_by_label("Current password").get_attribute("aria-invalid") == "true"
    assert here.get_by_label("New password", exact=True).input_value() == ""  # never echoed

    here.get_by_label("Current password").fill(PASSWORD)
    here.get_by_label("New password", exact=True).fill(NEW)
    here.get_by_label("New password again").fill(NEW)
    here.get_by_label("New password again").press("Enter")  # forms submit with Enter
    here.get_by_text("Your password was changed; every other session of yours was signed out.").wait_for()

    assert not signed_out(here, live_server)  # this browser goes on
    assert signed_out(laptop, live_server)  # the other one was signed out
    sign_in(laptop, live_server, "dev@acme.example")  # the old password no longer works
    assert laptop.locator("#sign-in-error").inner_text() == "The e-mail or the password is wrong."
    sign_in(laptop, live_server, "dev@acme.example", NEW)
    assert laptop.url.endswith("/console")


def test_an_admin_sets_a_new_password_after_confirming(browser: Any, live_server: str, settings: Settings) -> None:
    seed(settings, ("root@acme.example", "admin"), ("dev@acme.example", "developer"))
    dev = browser.new_context().new_page()
    sign_in(dev, live_server, "dev@acme.example")
    admin = browser.new_context().new_page()
    sign_in(admin, live_server, "root@acme.example")

    admin.get_by_role("link", name="Users").click()
    admin.get_by_role("link", name="Set a new password for dev@acme.example").click()
    admin.get_by_role("heading", name="New password for dev@acme.example").wait_for()
    admin.get_by_label("New password").fill("short")
    admin.get_by_role("button", name="Continue").click()
    assert admin.locator("#f-password-error").inner_text() == "New password must be at least 10 characters."

    admin.get_by_label("New password").fill(NEW)
    admin.get_by_role("button", name="Continue").click()
    admin.get_by_role("heading", name="Set the new password for dev@acme.example?").wait_for()
    assert "1 open session ends" in admin.locator(".warning").inner_text()
    admin.get_by_role("link", name="Cancel").click()  # changes nothing
    assert admin.url.endswith("/admin/users")
    assert not signed_out(dev, live_server)

    admin.get_by_role("link", name="Set a new password for dev@acme.example").click()
    admin.get_by_label("New password").fill(NEW)
    admin.get_by_role("button", name="Continue").click()
    admin.get_by_role("button", name="Set the new password").click()
    admin.get_by_text("The new password is set; that account was signed out everywhere.").wait_for()

    assert signed_out(dev, live_server)
    sign_in(dev, live_server, "dev@acme.example")
    assert dev.locator("#sign-in-error").inner_text() == "The e-mail or the password is wrong."
    sign_in(dev, live_server, "dev@acme.example", NEW)
    assert dev.url.endswith("/console")
