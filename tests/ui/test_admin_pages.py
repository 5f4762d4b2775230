"""Platform admin over HTTP: SPEs, accounts, and every app (issue 3 item 4)."""

from __future__ import annotations

from tests.conftest import Harness
from tests.ui.conftest import MakePerson
from tests.ui.support import PASSWORD, errors_in, sign_in


async def test_spes_are_listed_and_created(harness: Harness, people: MakePerson) -> None:
    admin = await people("root@example.com", "admin")
    assert "No SPEs yet." in (await admin.get("/admin")).text
    bad = await admin.post("/admin", {"name": ""})
    assert bad.status_code == 400 and errors_in(bad.text) == {"name": "Name is required."}
    created = await admin.post("/admin", {"name": "Acme Hosting"})
    assert created.headers["location"] == "/admin?notice=spe-created"
    [spe] = await harness.admin.db.list_spes()
    page = await admin.get("/admin")
    assert "Acme Hosting" in page.text and spe.xspe in page.text


async def test_accounts_are_created_with_errors_next_to_fields(harness: Harness, people: MakePerson) -> None:
    admin = await people("root@example.com", "admin")
    bad = await admin.post("/admin/users", {"email": "nope", "role": "spe-admin", "xspe": "", "password": "short"})
    assert set(errors_in(bad.text)) == {"email", "xspe", "password"}
    assert 'value="nope"' in bad.text and "short" not in bad.text.split("<main", 1)[1]  # passwords are not echoed
    spe = await harness.admin.create_spe("Acme")
    data = {"email": "Ops@Acme.example", "role": "spe-admin", "xspe": spe.xspe, "password": PASSWORD}
    assert (await admin.post("/admin/users", data)).headers["location"] == "/admin/users?notice=user-created"
    duplicate = await admin.post("/admin/users", data)
    assert errors_in(duplicate.text) == {"email": "E-mail is already used by another account."}
    assert (await sign_in(harness, "ops@acme.example")).headers["location"] == "/portal"


async def test_disabling_an_account_ends_its_sessions(harness: Harness, people: MakePerson) -> None:
    admin = await people("root@example.com", "admin")
    dev = await people("dev@example.com", "developer")
    assert (await dev.get("/console")).status_code == 200
    await admin.post(f"/admin/users/{dev.user.user_id}/status", {"status": "disabled"})
    assert (await dev.get("/console")).status_code == 303
    assert "disabled" in (await sign_in(harness, "dev@example.com")).text
    own = await admin.post(f"/admin/users/{admin.user.user_id}/status", {"status": "disabled"})
    assert own.status_code == 400  # an admin cannot lock themselves out
    await admin.post(f"/admin/users/{dev.user.user_id}/status", {"status": "active"})
    assert (await sign_in(harness, "dev@example.com")).status_code == 303


async def test_an_admin_suspends_any_app(harness: Harness, people: MakePerson) -> None:
    admin = await people("root@example.com", "admin")
    assert "No apps yet." in (await admin.get("/admin/apps")).text
    dev = await people("dev@example.com", "developer")
    created = await dev.post(
        "/console/apps/new", {"name": "Dev app", "host_url": "https://dev.example.com/", "scope": []}
    )
    app_id = created.headers["location"].split("/")[3]
    listing = await admin.get("/admin/apps")
    assert "Dev app" in listing.text and "dev@example.com" in listing.text
    done = await admin.post(f"/console/apps/{app_id}/status", {"status": "suspended", "back": "admin"})
    assert done.headers["location"] == "/admin/apps?notice=app-suspended"
    assert not (await harness.admin.require_app(app_id)).active
    detail = await admin.get(f"/console/apps/{app_id}")
    assert detail.status_code == 200 and "/rotate" not in detail.text  # admins see, only the owner rotates
