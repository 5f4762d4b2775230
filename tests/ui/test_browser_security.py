"""In a real browser against ``openplatform serve``: CSRF rejection, another developer's app by URL,
the secret gone after a reload, and sign-in lock-out (issue 3 item 6)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from openplatform.config import Settings
from openplatform.services.accounts import MAX_FAILED_SIGN_INS
from tests.conftest import free_port
from tests.ui.browser import seed, sign_in
from tests.ui.partner import serving

# A browser on a live `openplatform serve` whose database this process seeds: not memory://.
pytestmark = pytest.mark.sql


def create_app(page: Any, base: str, name: str) -> tuple[str, str]:
    page.goto(f"{base}/console/apps/new")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Entrance URL (host_url)").fill("https://app.example.com/")
    page.get_by_role("button", name="Create app").click()
    page.get_by_text("Copy the secret now.").wait_for()
    return page.locator("#app-id").inner_text(), page.locator("#app-secret").inner_text()


def evil_site(target: str) -> Starlette:
    """A page on another origin that posts a form to the console when opened (classic CSRF)."""

    async def page(_request: Any) -> Response:
        return HTMLResponse(
            f"<form id=f method=post action='{target}/console/apps/new'>"
            "<input name=name value=Pwned><input name=host_url value='https://evil.example/'></form>"
            "<script src=/go.js></script>"
        )

    async def script(_request: Any) -> Response:
        return Response("document.getElementById('f').submit();", media_type="text/javascript")

    return Starlette(routes=[Route("/", page), Route("/go.js", script)])


def test_forms_without_a_valid_token_are_refused(browser: Any, live_server: str, settings: Settings) -> None:
    seed(settings, ("dev@acme.example", "developer"))
    page = browser.new_page()
    sign_in(page, live_server, "dev@acme.example")

    port = free_port()
    with serving(evil_site(live_server), port), page.expect_navigation(url=f"{live_server}/console/apps/new") as nav:
        page.goto(f"http://127.0.0.1:{port}/")  # same site, other origin: the session cookie does go along
    assert nav.value.status == 403
    assert "This form was sent from another site." in page.content()
    assert "dev@acme.example" in page.content()  # still signed in: only the form was refused

    page.goto(f"{live_server}/console/apps/new")
    page.get_by_label("Name", exact=True).fill("Forged")
    page.get_by_label("Entrance URL (host_url)").fill("https://app.example.com/")
    page.locator("input[name=csrf_token]").last.evaluate("input => { input.value = 'forged'; }")
    with page.expect_navigation() as nav:
        page.get_by_role("button", name="Create app").click()
    assert nav.value.status == 403 and "The form was refused" in page.content()

    page.goto(f"{live_server}/console")
    assert page.get_by_text("You have no apps yet.").is_visible()


def test_another_developers_app_and_a_reloaded_secret(browser: Any, live_server: str, settings: Settings) -> None:
    seed(settings, ("alice@acme.example", "developer"), ("mallory@acme.example", "developer"))
    alice = browser.new_context().new_page()
    sign_in(alice, live_server, "alice@acme.example")
    app_id, secret = create_app(alice, live_server, "Alice's private app")
    assert secret in alice.content()
    alice.reload()
    assert secret not in alice.content()
    assert alice.get_by_text("This secret was already shown.").is_visible()
    alice.go_back()
    assert secret not in alice.content()

    mallory = browser.new_context().new_page()
    sign_in(mallory, live_server, "mallory@acme.example")
    for path in ("", "/edit", "/secret"):
        response = mallory.goto(f"{live_server}/console/apps/{app_id}{path}")
        assert response.status == 404
        assert "Alice's private app" not in mallory.content() and app_id not in mallory.content()
    mallory.goto(f"{live_server}/console")
    assert mallory.get_by_text("You have no apps yet.").is_visible()


def test_sign_in_lock_out(browser: Any, live_server: str, settings: Settings) -> None:
    seed(settings, ("dev@acme.example", "developer"))
    page = browser.new_page()
    for _ in range(MAX_FAILED_SIGN_INS - 1):
        sign_in(page, live_server, "dev@acme.example", "not the password")
        assert page.locator("#sign-in-error").inner_text() == "The e-mail or the password is wrong."
    sign_in(page, live_server, "dev@acme.example", "not the password")
    assert "locked from your address for 3 more minutes" in page.locator("#sign-in-error").inner_text()
    sign_in(page, live_server, "dev@acme.example")  # the right password, too late
    assert re.search(r"/login$", page.url) and "locked" in page.locator("#sign-in-error").inner_text()
