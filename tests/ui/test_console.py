"""Developer console over HTTP: create with validation, secret once, rotate, edit, suspend (SPEC §4)."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Harness
from tests.ui.conftest import MakePerson
from tests.ui.support import PASSWORD, Person, csrf_in, errors_in

APP_FORM = {"name": "Shop sync", "host_url": "https://shop.example.com/", "scope": ["customer:read"]}


def secret_in(html: str) -> str | None:
    found = re.search(r'<code id="app-secret">([0-9a-f]{64})</code>', html)
    return found.group(1) if found else None


async def create_app(dev: Person, **changes: str | list[str]) -> tuple[str, str]:
    created = await dev.post("/console/apps/new", {**APP_FORM, **changes})
    assert created.status_code == 303, created.text
    app_id = created.headers["location"].split("/")[3]
    shown = await dev.get(created.headers["location"])
    secret = secret_in(shown.text)
    assert secret is not None
    return app_id, secret


async def app_token_status(harness: Harness, app_id: str, secret: str) -> int:
    data = {"app_id": app_id, "secret": secret, "grant_type": "client_credential"}
    return (await harness.client.post("/oauth/credit/token", data=data)).status_code


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": ""}, "name", "Name is required."),
        ({"host_url": "http://shop.example.com/"}, "host_url", "Plain http is only allowed for localhost; use https."),
        ({"host_url": "https://user@shop.example.com/"}, "host_url", "The URL must not contain user information."),
        ({"webhook_url": "ftp://hooks.example.com"}, "webhook_url",
         "Webhook URL must start with https:// (or http:// for localhost), not ftp://."),
        ({"host_url": "ftp://shop.example.com/"}, "host_url",
         "Entrance URL (host_url) must start with https:// (or http:// for localhost), not ftp://."),
        ({"host_url": "shop.example.com"}, "host_url",
         "Entrance URL (host_url) must be a full URL starting with https://, such as https://app.example.com/."),
        ({"scope": ["admin:all"]}, "scope",
         "'admin:all' is not one of customer:read, customer:write, site:read, site:write."),
        ({"ip_whitelist": "10.0.0.1\n300.1.2.3"}, "ip_whitelist", "'300.1.2.3' is not an IP address or CIDR range."),
        ({"ip_whitelist": "10.0.0.1\nx\n10.0.0.0/8\n300.1.2.3\nfe80::zz"}, "ip_whitelist",
         "'x', '300.1.2.3' and 'fe80::zz' are not IP addresses or CIDR ranges."),
    ],
    ids=["name", "http", "userinfo", "webhook-ftp", "host-ftp", "no-scheme", "scope", "whitelist", "whitelist-all-bad"],
)  # fmt: skip
async def test_app_form_errors_are_shown_next_to_their_field(
    harness: Harness, people: MakePerson, changes: dict[str, str], field: str, message: str
) -> None:
    dev = await people("dev@example.com", "developer")
    answer = await dev.post("/console/apps/new", {**APP_FORM, **changes})
    assert answer.status_code == 400
    assert errors_in(answer.text) == {field: message}
    assert f'aria-describedby="f-{field}' in answer.text or field == "scope"
    assert await harness.admin.db.list_apps() == []


async def test_every_bad_field_is_reported_at_once(people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    answer = await dev.post("/console/apps/new", {"name": "", "host_url": "nope", "ip_whitelist": "x"})
    assert set(errors_in(answer.text)) == {"name", "host_url", "ip_whitelist"}
    assert 'value="nope"' in answer.text  # what was typed is kept


async def test_the_secret_is_shown_once_and_works(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    app_id, secret = await create_app(dev, ip_whitelist="127.0.0.1\n10.0.0.0/8")
    again = await dev.get(f"/console/apps/{app_id}/secret")
    assert secret not in again.text and "already shown" in again.text
    assert await app_token_status(harness, app_id, secret) == 200
    app = await harness.admin.require_app(app_id)
    assert (app.owner_id, app.scopes, app.ip_whitelist) == (
        dev.user.user_id,
        ("customer:read",),
        ("127.0.0.1/32", "10.0.0.0/8"),
    )
    page = await dev.get(f"/console/apps/{app_id}")
    assert app_id in page.text and secret not in page.text
    assert "1</span> access token issued in the last 24 hours" in page.text
    assert "app.secret_shown" in page.text and "app.created" in page.text


async def test_the_secret_page_needs_the_ticket_of_the_session_that_made_it(
    harness: Harness, people: MakePerson
) -> None:
    dev = await people("dev@example.com", "developer")
    created = await dev.post("/console/apps/new", APP_FORM)
    secret_page = created.headers["location"]
    ticket = dev.client.cookies.get("op_reveal")
    assert ticket
    async with harness.client_from("127.0.0.1") as second_session:  # the same developer, signed in elsewhere
        form = await second_session.get("/login")
        await second_session.post("/login", data={"csrf_token": csrf_in(form.text), "email": "dev@example.com",
                                                  "password": PASSWORD})  # fmt: skip
        second_session.cookies.set("op_reveal", ticket, path=secret_page)
        replayed = await second_session.get(secret_page)
        assert replayed.status_code == 200 and secret_in(replayed.text) is None
    assert secret_in((await dev.get(secret_page)).text)  # the session that made it still sees it, once


@pytest.mark.parametrize(("grace", "old_works"), [("0", False), ("3600", True)])
async def test_rotation_shows_the_new_secret_once_and_honours_the_overlap(
    harness: Harness, people: MakePerson, grace: str, old_works: bool
) -> None:
    dev = await people("dev@example.com", "developer")
    app_id, old = await create_app(dev)
    rotated = await dev.post(f"/console/apps/{app_id}/rotate", {"grace_seconds": grace})
    assert rotated.headers["location"] == f"/console/apps/{app_id}/secret"
    shown = await dev.get(rotated.headers["location"])
    new = secret_in(shown.text)
    assert new and new != old
    assert ("keeps working until" in shown.text) is old_works
    await harness.wait_for_invalidation()
    assert await app_token_status(harness, app_id, new) == 200
    assert await app_token_status(harness, app_id, old) == (200 if old_works else 401)
    assert (await dev.post(f"/console/apps/{app_id}/rotate", {"grace_seconds": "999"})).status_code == 400


async def test_edit_applies_at_once_to_the_token_endpoints(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    app_id, secret = await create_app(dev)
    form = await dev.get(f"/console/apps/{app_id}/edit")
    assert 'value="Shop sync"' in form.text and 'value="customer:read" checked' in form.text
    bad = await dev.post(f"/console/apps/{app_id}/edit", {**APP_FORM, "host_url": ""})
    assert errors_in(bad.text) == {"host_url": "Entrance URL (host_url) is required."}
    saved = await dev.post(
        f"/console/apps/{app_id}/edit",
        {**APP_FORM, "name": "Shop sync 2", "scope": ["site:read", "site:write"], "ip_whitelist": "10.9.9.9"},
    )
    assert saved.headers["location"] == f"/console/apps/{app_id}?notice=app-updated"
    app = await harness.admin.require_app(app_id)
    assert (app.name, app.scopes, app.ip_whitelist) == ("Shop sync 2", ("site:read", "site:write"), ("10.9.9.9/32",))
    assert await app_token_status(harness, app_id, secret) == 403  # 127.0.0.1 is no longer whitelisted


async def test_suspend_and_resume(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    app_id, secret = await create_app(dev)
    suspended = await dev.post(f"/console/apps/{app_id}/status", {"status": "suspended"})
    assert suspended.headers["location"] == f"/console/apps/{app_id}?notice=app-suspended"
    await harness.wait_for_invalidation()
    assert await app_token_status(harness, app_id, secret) == 401
    page = await dev.get(suspended.headers["location"])
    assert "its tokens stop working" in page.text and ">Resume</button>" in page.text
    await dev.post(f"/console/apps/{app_id}/status", {"status": "active"})
    await harness.wait_for_invalidation()
    assert await app_token_status(harness, app_id, secret) == 200


async def test_empty_console_says_what_to_do(people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    page = await dev.get("/console")
    assert "You have no apps yet." in page.text and 'href="/console/apps/new"' in page.text


async def test_suspend_and_rotate_are_confirmed_first(harness: Harness, people: MakePerson) -> None:
    """Issue 13 item 4: the GET of a destructive action is a confirmation page and changes nothing."""
    dev = await people("dev@example.com", "developer")
    app_id, secret = await create_app(dev)
    confirm = await dev.get(f"/console/apps/{app_id}/status", status="suspended")
    assert confirm.status_code == 200 and "Suspend Shop sync?" in confirm.text
    assert 'name="status" value="suspended"' in confirm.text and 'name="csrf_token"' in confirm.text
    rotate = await dev.get(f"/console/apps/{app_id}/rotate", grace_seconds="0")
    assert rotate.status_code == 200 and "The current secret stops working at once" in rotate.text
    graced = await dev.get(f"/console/apps/{app_id}/rotate", grace_seconds="3600")
    assert "keeps working for 1 hour, then stops" in graced.text
    assert (await dev.get(f"/console/apps/{app_id}/rotate", grace_seconds="5")).status_code == 400
    assert (await harness.admin.require_app(app_id)).active
    assert await app_token_status(harness, app_id, secret) == 200  # neither suspended nor rotated
    resume = await dev.get(f"/console/apps/{app_id}/status", status="active")
    assert resume.status_code == 303 and resume.headers["location"] == f"/console/apps/{app_id}"
