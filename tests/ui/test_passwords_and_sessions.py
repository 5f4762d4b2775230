"""Passwords and sessions (SPEC §9, issue 9 finding 12): one's own change at /account/password, an
admin's new password for anyone (with a confirmation step), and the idle timeout of sessions."""

from __future__ import annotations

from typing import Any

import pytest

from openplatform.records import AuditFilter
from openplatform.services.accounts import MAX_FAILED_SIGN_INS, SESSION_SECONDS
from openplatform.web.ui.pages import SESSION_COOKIE
from tests.conftest import Harness
from tests.ui.conftest import MakePerson
from tests.ui.support import PASSWORD, Person, csrf_in, errors_in, person, sign_in

NEW = "a brand new passphrase"


async def second_session(harness: Harness, someone: Person) -> Person:
    """The same account signed in from another browser."""
    client = harness.client_from("127.0.0.1")
    form = await client.get("/login")
    data = {"csrf_token": csrf_in(form.text), "email": someone.user.email, "password": PASSWORD}
    assert (await client.post("/login", data=data)).status_code == 303
    return Person(someone.user, client, csrf_in((await client.get("/account/password")).text))


async def events(harness: Harness, name: str) -> list[dict[str, Any]]:
    """The audit events called ``name``, newest first (``detail``: a dict of their other fields)."""
    rows, _total = await harness.admin.db.audit_page(AuditFilter(event=name), 100, 0)
    return rows


def change(current: str = PASSWORD, new: str = NEW, again: str | None = None) -> dict[str, str | list[str]]:
    return {"current_password": current, "new_password": new, "new_password_again": new if again is None else again}


# ------------------------------------------------------------ one's own password


async def test_a_user_changes_their_password_and_their_other_sessions_end(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    laptop = await second_session(harness, dev)
    page = await dev.get("/account/password")
    assert page.status_code == 200
    assert 'autocomplete="current-password"' in page.text and 'autocomplete="new-password"' in page.text
    assert 'href="/account/password"' in (await dev.get("/console")).text  # reachable from every page

    done = await dev.post("/account/password", change())
    assert done.status_code == 303 and done.headers["location"] == "/account/password?notice=password-changed"
    assert "op_session=" in done.headers["set-cookie"]  # a new session for this browser (no fixation)
    after = await dev.client.get(done.headers["location"])
    assert after.status_code == 200 and "every other session of yours was signed out" in after.text
    assert (await dev.get("/console")).status_code == 200  # this browser stays signed in
    assert (await laptop.get("/console")).status_code == 303  # the other one is signed out
    assert (await sign_in(harness, "dev@example.com")).status_code == 200  # the old password is gone
    assert (await sign_in(harness, "dev@example.com", NEW)).status_code == 303
    [event] = await events(harness, "user.password_changed")
    assert event["detail"]["user_id"] == dev.user.user_id
    await laptop.client.aclose()


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        (change(current="not my password"), {"current_password": "Current password is wrong."}),
        (change(new="short", again="short"), {"new_password": "New password must be at least 10 characters."}),
        (change(again="something else!"), {"new_password_again": "The two new passwords differ."}),
        (change(new="x" * 1025), {"new_password": "New password must be at most 1024 characters."}),
    ],
    ids=["wrong current password", "too short", "not repeated", "too long"],
)
async def test_a_refused_change_says_why_next_to_the_field(
    harness: Harness, people: MakePerson, form: dict[str, str | list[str]], errors: dict[str, str]
) -> None:
    dev = await people("dev@example.com", "developer")
    refused = await dev.post("/account/password", form)
    assert refused.status_code == 400 and errors_in(refused.text) == errors
    assert PASSWORD not in refused.text and NEW not in refused.text  # passwords are never echoed
    assert (await dev.get("/console")).status_code == 200  # nothing changed, still signed in
    assert (await sign_in(harness, "dev@example.com")).status_code == 303


async def test_the_change_needs_the_form_token(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    for forged in ({}, {"csrf_token": "forged"}):
        refused = await dev.client.post("/account/password", data={**change(), **forged})
        assert refused.status_code == 403
    assert (await harness.client.get("/account/password")).headers["location"] == "/login?next=/account/password"
    assert (await sign_in(harness, "dev@example.com")).status_code == 303  # unchanged


async def test_guessing_the_current_password_counts_towards_the_lock_out(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    for _ in range(MAX_FAILED_SIGN_INS - 1):
        assert (await dev.post("/account/password", change(current="a wrong guess"))).status_code == 400
    last = await dev.post("/account/password", change(current="a wrong guess"))
    assert "locked from your address" in errors_in(last.text)["current_password"]
    refused = await dev.post("/account/password", change())  # even the right one now
    assert "locked" in errors_in(refused.text)["current_password"]
    assert (await sign_in(harness, "dev@example.com", ip="198.51.100.20")).status_code == 303  # from elsewhere: fine


# ----------------------------------------------------- an admin sets a password


async def test_an_admin_sets_a_new_password_after_confirming(harness: Harness, people: MakePerson) -> None:
    admin = await people("root@example.com", "admin")
    dev = await people("dev@example.com", "developer")
    url = f"/admin/users/{dev.user.user_id}/password"
    assert f'href="{url}"' in (await admin.get("/admin/users")).text

    form = await admin.get(url)
    assert form.status_code == 200 and "New password for dev@example.com" in form.text
    short = await admin.post(url, {"password": "short"})
    assert short.status_code == 400 and errors_in(short.text) == {
        "password": "New password must be at least 10 characters."
    }

    confirm = await admin.post(url, {"password": NEW})  # the confirmation step: nothing changes yet
    assert confirm.status_code == 200
    assert "Set the new password for dev@example.com?" in confirm.text and "1 open session ends" in confirm.text
    assert 'name="confirmed" value="yes"' in confirm.text
    assert (await dev.get("/console")).status_code == 200
    assert (await sign_in(harness, "dev@example.com")).status_code == 303  # the old password still works

    done = await admin.post(url, {"password": NEW, "confirmed": "yes"})
    assert done.headers["location"] == "/admin/users?notice=password-set"
    assert (await dev.get("/console")).status_code == 303  # signed out everywhere
    assert (await sign_in(harness, "dev@example.com")).status_code == 200
    assert (await sign_in(harness, "dev@example.com", NEW)).status_code == 303
    [event] = await events(harness, "user.password_set")
    whose_and_by_whom = (event["detail"]["user_id"], event["detail"]["by"])
    assert whose_and_by_whom == (dev.user.user_id, admin.user.user_id)


async def test_a_new_password_lifts_the_lock_outs(harness: Harness, people: MakePerson) -> None:
    admin = await people("root@example.com", "admin")
    dev = await people("dev@example.com", "developer")
    for _ in range(MAX_FAILED_SIGN_INS):
        await sign_in(harness, "dev@example.com", "wrong password")
    assert "locked" in (await sign_in(harness, "dev@example.com")).text
    await admin.post(f"/admin/users/{dev.user.user_id}/password", {"password": NEW, "confirmed": "yes"})
    assert (await sign_in(harness, "dev@example.com", NEW)).status_code == 303


async def test_who_may_set_a_password(harness: Harness, people: MakePerson) -> None:
    admin = await people("root@example.com", "admin")
    dev = await people("dev@example.com", "developer")
    own = await admin.get(f"/admin/users/{admin.user.user_id}/password")
    assert own.headers["location"] == "/account/password"  # one's own: with the current password
    assert (await admin.get("/admin/users/usr_nobody/password")).status_code == 404
    refused = await dev.post(f"/admin/users/{admin.user.user_id}/password", {"password": NEW, "confirmed": "yes"})
    assert refused.status_code == 403
    forged = await admin.client.post(
        f"/admin/users/{dev.user.user_id}/password", data={"password": NEW, "confirmed": "yes"}
    )
    assert forged.status_code == 403
    assert (await sign_in(harness, "root@example.com")).status_code == 303
    assert (await sign_in(harness, "dev@example.com")).status_code == 303


# ------------------------------------------------------------------- sessions


async def test_a_session_ends_after_30_minutes_without_a_request(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    for _ in range(4):  # active: 25 minutes between requests, for 100 minutes
        harness.clock.advance(25 * 60)
        assert (await dev.get("/console")).status_code == 200
    harness.clock.advance(30 * 60 + 1)
    assert (await dev.get("/console")).headers["location"] == "/login?next=/console"


async def test_the_last_request_time_is_kept_by_the_server(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    harness.clock.advance(20 * 60)
    assert (await dev.get("/console")).status_code == 200
    assert await harness.admin.stores.accounts.count_sessions(dev.user.user_id) == 1
    digest = harness.admin.keyring.digest(dev.client.cookies[SESSION_COOKIE])
    session = await harness.admin.stores.accounts.get_session(digest, SESSION_SECONDS)
    assert session is not None and session.expires_at == pytest.approx(harness.clock() + 30 * 60, abs=5)


async def test_an_active_session_still_ends_12_hours_after_sign_in(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    for _ in range(SESSION_SECONDS // 1200 - 1):  # a request every 20 minutes
        harness.clock.advance(1200)
        assert (await dev.get("/console")).status_code == 200
    harness.clock.advance(1200)  # 12 hours after sign-in
    assert (await dev.get("/console")).status_code == 303


@pytest.mark.parametrize("settings_overrides", [{"session_idle_seconds": 300}])
async def test_the_idle_timeout_is_a_setting(harness: Harness) -> None:
    dev = await person(harness, "dev@example.com", "developer")
    harness.clock.advance(299)
    assert (await dev.get("/console")).status_code == 200
    harness.clock.advance(301)
    assert (await dev.get("/console")).status_code == 303
    await dev.client.aclose()
