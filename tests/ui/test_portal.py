"""SPE admin portal over HTTP: customers, installs, uninstall, and the signed launch (SPEC §3, §4)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import pytest

from openplatform.core.signing import verify_launch
from tests.conftest import Harness
from tests.ui.conftest import MakePerson
from tests.ui.support import Person, errors_in


async def spe_admin(harness: Harness, people: MakePerson, name: str = "Acme") -> Person:
    spe = await harness.admin.create_spe(name)
    return await people(f"admin-of-{name.lower()}@example.com", "spe-admin", spe.xspe)


async def new_customer(admin: Person, name: str, contact: str = "") -> str:
    created = await admin.post("/portal/customers/new", {"name": name, "contact": contact})
    assert created.status_code == 303, created.text
    return created.headers["location"].split("/")[3].split("?")[0]


async def test_customers_are_created_searched_and_paged(harness: Harness, people: MakePerson) -> None:
    admin = await spe_admin(harness, people)
    empty = await admin.get("/portal")
    assert "No customers yet." in empty.text and 'href="/portal/customers/new"' in empty.text
    bad = await admin.post("/portal/customers/new", {"name": " ", "contact": "x" * 400})
    assert errors_in(bad.text) == {"name": "Name is required.", "contact": "Contact must be at most 320 characters."}
    for n in range(23):
        await harness.admin.create_customer(admin.user.xspe or "", f"Customer {n:02d}", f"c{n}@example.com")
    await new_customer(admin, "Globex 100% Hosting", "ops@globex.example")
    first = await admin.get("/portal")
    assert "24 customers" in first.text and "Page 1 of 2" in first.text and 'rel="next"' in first.text
    second = await admin.get("/portal", page="2")
    assert second.text.count('href="/portal/customers/cus_') == 4
    beyond = await admin.get("/portal", page="9")
    assert "Page 2 of 2" in beyond.text and beyond.text.count('href="/portal/customers/cus_') == 4
    for query, count in [("globex", 1), ("100%", 1), ("OPS@GLOBEX", 1), ("customer 1", 10), ("%", 1)]:
        found = await admin.get("/portal", q=query)
        assert found.text.count('href="/portal/customers/cus_') == count, query
    nothing = await admin.get("/portal", q="initech")
    assert "No customer matches “initech”." in nothing.text


async def test_an_spe_admin_sees_only_their_spe(harness: Harness, people: MakePerson) -> None:
    acme = await spe_admin(harness, people, "Acme")
    other = await spe_admin(harness, people, "Other")
    customer_id = await new_customer(acme, "Acme's customer")
    for path in (f"/portal/customers/{customer_id}", f"/portal/customers/{customer_id}/edit"):
        answer = await other.get(path)
        assert answer.status_code == 404 and "Acme's customer" not in answer.text
    assert (await other.post(f"/portal/customers/{customer_id}/status", {"status": "disabled"})).status_code == 404
    searched = await other.get("/portal", q="Acme")
    assert customer_id not in searched.text and "No customer matches “Acme”." in searched.text
    app, _ = await harness.admin.create_app("App", "https://app.example.com/")
    refused = await other.post("/portal/install", {"app_id": app.app_id, "customer_id": customer_id})
    assert refused.status_code == 404
    assert await harness.admin.db.list_installations(app_id=app.app_id) == []


async def test_edit_disable_and_lost_update(harness: Harness, people: MakePerson) -> None:
    admin = await spe_admin(harness, people)
    customer_id = await new_customer(admin, "Initech")
    form = await admin.get(f"/portal/customers/{customer_id}/edit")
    assert 'name="version" value="1"' in form.text
    saved = await admin.post(
        f"/portal/customers/{customer_id}/edit",
        {"name": "Initech Ltd", "contact": "", "status": "active", "version": "1"},
    )
    assert saved.headers["location"].endswith("notice=customer-updated")
    stale = await admin.post(
        f"/portal/customers/{customer_id}/edit", {"name": "Old tab", "contact": "", "status": "active", "version": "1"}
    )
    assert stale.status_code == 400 and "Someone else saved this customer meanwhile" in stale.text
    assert 'value="Initech Ltd"' in stale.text and 'name="version" value="2"' in stale.text
    await admin.post(f"/portal/customers/{customer_id}/status", {"status": "disabled"})
    customer = await harness.admin.db.get_customer(customer_id)
    assert customer is not None and (customer.name, customer.status) == ("Initech Ltd", "disabled")


async def test_install_open_app_and_uninstall(harness: Harness, people: MakePerson) -> None:
    admin = await spe_admin(harness, people)
    customer_id = await new_customer(admin, "Globex")
    app, secret = await harness.admin.create_app("Partner", "https://partner.example.com/entry?lang=en")
    page = await admin.get(f"/portal/customers/{customer_id}")
    assert "No apps for this customer yet." in page.text and f'<option value="{app.app_id}">' in page.text
    installed = await admin.post("/portal/install", {"app_id": app.app_id, "customer_id": customer_id})
    assert installed.headers["location"] == f"/portal/customers/{customer_id}?notice=installed"
    page = await admin.get(f"/portal/customers/{customer_id}")
    assert "form-action 'self' https://partner.example.com" in page.headers["content-security-policy"]
    launch = await admin.post("/portal/launch", {"app_id": app.app_id, "customer_id": customer_id})
    assert launch.status_code == 303
    target = urlsplit(launch.headers["location"])
    assert (target.scheme, target.netloc, target.path) == ("https", "partner.example.com", "/entry")
    params = dict(parse_qsl(target.query))
    assert params.pop("lang") == "en"
    assert set(params) == {"app_id", "xspe", "customer_id", "timestamp", "signature"}
    assert (params["customer_id"], params["xspe"]) == (customer_id, admin.user.xspe)
    assert verify_launch(secret, params) and not verify_launch("0" * 64, params)

    confirm = await admin.get("/portal/uninstall", app_id=app.app_id, customer_id=customer_id)
    assert "revokes at once every authorization code, access token and refresh token" in confirm.text
    assert (await harness.admin.db.find_installation(app.app_id, admin.user.xspe or "", customer_id)) is not None
    done = await admin.post("/portal/uninstall", {"app_id": app.app_id, "customer_id": customer_id})
    assert done.headers["location"] == f"/portal/customers/{customer_id}?notice=uninstalled"
    assert await harness.admin.db.find_installation(app.app_id, admin.user.xspe or "", customer_id) is None
    refused = await admin.post("/portal/launch", {"app_id": app.app_id, "customer_id": customer_id})
    assert refused.status_code == 404


async def test_uninstall_revokes_the_installations_tokens(harness: Harness, people: MakePerson) -> None:
    world = await harness.world()
    tokens = await harness.user_tokens(world)
    admin = await people("admin-of-acme@example.com", "spe-admin", world.xspe)
    await admin.post("/portal/uninstall", {"app_id": world.app_id, "customer_id": world.customer_id})
    answer = await harness.client.get(
        f"/api/spe/customer/{world.customer_id}", params={"access_token": tokens["access_token"]}
    )
    assert answer.status_code == 401


async def test_spe_wide_install_and_launch(harness: Harness, people: MakePerson) -> None:
    admin = await spe_admin(harness, people)
    app, secret = await harness.admin.create_app("Reports", "https://reports.example.com/")
    assert "No app is installed for the whole SPE." in (await admin.get("/portal/apps")).text
    await admin.post("/portal/install", {"app_id": app.app_id, "customer_id": ""})
    page = await admin.get("/portal/apps")
    assert "Reports" in page.text and "https://reports.example.com" in page.headers["content-security-policy"]
    launch = await admin.post("/portal/launch", {"app_id": app.app_id, "customer_id": ""})
    params = dict(parse_qsl(urlsplit(launch.headers["location"]).query, keep_blank_values=True))
    assert params["customer_id"] == "" and verify_launch(secret, params)
    customer_id = await new_customer(admin, "Hooli")
    customer_page = await admin.get(f"/portal/customers/{customer_id}")
    assert "for the whole SPE" in customer_page.text  # an SPE-wide app opens for each customer too
    launch = await admin.post("/portal/launch", {"app_id": app.app_id, "customer_id": customer_id})
    assert dict(parse_qsl(urlsplit(launch.headers["location"]).query))["customer_id"] == customer_id


@pytest.mark.parametrize("blocker", ["customer disabled", "app suspended"])
async def test_open_app_is_refused_for_a_disabled_customer_or_a_suspended_app(
    harness: Harness, people: MakePerson, blocker: str
) -> None:
    admin = await spe_admin(harness, people)
    customer_id = await new_customer(admin, "Globex")
    app, _ = await harness.admin.create_app("Partner", "https://partner.example.com/")
    await admin.post("/portal/install", {"app_id": app.app_id, "customer_id": customer_id})
    if blocker == "customer disabled":
        await admin.post(f"/portal/customers/{customer_id}/status", {"status": "disabled"})
    else:
        await harness.admin.set_status(app.app_id, "suspended")
    page = await admin.get(f"/portal/customers/{customer_id}")
    assert not re.search(r'name="app_id" value="[0-9a-f]{32}">\s*<input type="hidden" name="customer_id"', page.text)
    refused = await admin.post("/portal/launch", {"app_id": app.app_id, "customer_id": customer_id})
    assert refused.status_code == 400 and ("disabled" in refused.text or "suspended" in refused.text)


async def test_a_disabled_customer_is_confirmed_first_and_refused_an_install(
    harness: Harness, people: MakePerson
) -> None:
    """Issue 13 items 4 and 10: GET asks (and changes nothing), POST disables; then no install, not even forged."""
    admin = await spe_admin(harness, people)
    customer_id = await new_customer(admin, "Globex")
    app, _ = await harness.admin.create_app("Partner", "https://partner.example.com/")
    confirm = await admin.get(f"/portal/customers/{customer_id}/status", status="disabled")
    assert confirm.status_code == 200 and "Disable Globex?" in confirm.text
    assert 'action="/portal/customers/' in confirm.text and 'name="csrf_token"' in confirm.text
    customer = await harness.admin.db.get_customer(customer_id)
    assert customer is not None and customer.status == "active"
    done = await admin.post(f"/portal/customers/{customer_id}/status", {"status": "disabled"})
    assert done.headers["location"] == f"/portal/customers/{customer_id}?notice=customer-disabled"
    page = await admin.get(f"/portal/customers/{customer_id}")
    assert "Install an app for this customer" not in page.text and 'action="/portal/install"' not in page.text
    refused = await admin.post("/portal/install", {"app_id": app.app_id, "customer_id": customer_id})
    assert refused.status_code == 400 and "This customer is disabled; enable it to install apps for it." in refused.text
    assert await harness.admin.db.list_installations(app_id=app.app_id) == []
    again = await admin.get(f"/portal/customers/{customer_id}/status", status="disabled")
    assert again.status_code == 303  # already disabled: nothing to confirm


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        ("POST", "/portal/uninstall", {"app_id": "\x00"}),
        ("POST", "/portal/launch", {"app_id": "a\x00b", "customer_id": ""}),
        ("GET", "/portal/uninstall?app_id=%00", None),
        ("GET", "/portal/customers/cus_%00", None),
        ("GET", "/console/apps/x?event=token.denied%00", None),  # before any page's own checks
    ],
)
async def test_a_nul_anywhere_in_a_page_request_is_a_400_page(
    harness: Harness, people: MakePerson, method: str, path: str, form: dict[str, str] | None
) -> None:
    """PostgreSQL text cannot hold NUL: looked up as it came, a form's app_id of "%00" was a 500
    (found by the fuzz of tests/web/test_fuzz_openapi.py with a new seed)."""
    admin = await spe_admin(harness, people)
    answer = await admin.post(path, form) if method == "POST" else await admin.get(path)
    assert answer.status_code == 400, answer.text[:300]
    assert "The request could not be read." in answer.text
