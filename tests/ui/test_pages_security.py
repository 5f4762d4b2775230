"""Sign-in, sessions, CSRF, security headers and who may see what (SPEC §4), over HTTP."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Harness
from tests.ui.conftest import MakePerson
from tests.ui.support import PASSWORD, csrf_in, make_user, sign_in

APP_FORM = {"name": "Shop sync", "host_url": "https://shop.example.com/", "scope": ["customer:read"]}


async def test_pages_carry_the_security_headers(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    for response in (await harness.client.get("/login"), await dev.get("/console")):
        assert response.status_code == 200
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "<script>" not in response.text and " style=" not in response.text
    static = await harness.client.get("/static/style.css")
    assert static.status_code == 200 and static.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(("base_url", "secure"), [("http://testserver", False), ("https://testserver", True)])
async def test_session_cookie_flags(harness: Harness, base_url: str, secure: bool) -> None:
    await make_user(harness, "dev@example.com", "developer")
    answer = await sign_in(harness, "dev@example.com", base_url=base_url)
    assert answer.status_code == 303 and answer.headers["location"] == "/console"
    name = "__Host-op_session" if secure else "op_session"  # SPEC §9: __Host- over https
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{name}="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert ("secure" in flags) is secure


async def test_sign_in_form_needs_its_token(harness: Harness) -> None:
    await make_user(harness, "dev@example.com", "developer")
    credentials = {"email": "dev@example.com", "password": PASSWORD}
    refused = await harness.client.post("/login", data=credentials)
    assert refused.status_code == 403 and "op_session" not in refused.headers.get("set-cookie", "")
    form = await harness.client.get("/login")
    wrong = await harness.client.post("/login", data={**credentials, "csrf_token": csrf_in(form.text) + "x"})
    assert wrong.status_code == 403


@pytest.mark.parametrize(
    ("token", "headers"),
    [(None, {}), ("forged-token", {}), ("valid", {"Origin": "https://evil.example"})],
    ids=["missing", "wrong", "cross-origin"],
)
async def test_state_changing_forms_without_a_valid_token_get_403(
    harness: Harness, people: MakePerson, token: str | None, headers: dict[str, str]
) -> None:
    dev = await people("dev@example.com", "developer")
    data: dict[str, str | list[str]] = dict(APP_FORM)
    if token is not None:
        data["csrf_token"] = dev.csrf if token == "valid" else token
    answer = await dev.client.post("/console/apps/new", data=data, headers=headers)
    assert answer.status_code == 403
    assert "refused" in answer.text or "another site" in answer.text
    assert await harness.admin.db.list_apps() == []


async def test_signed_out_visitors_are_sent_to_sign_in_and_back(harness: Harness) -> None:
    answer = await harness.client.get("/console/apps/new")
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/console/apps/new"
    form = await harness.client.get("/login", params={"next": "/console/apps/new"})
    assert 'name="next" value="/console/apps/new"' in form.text
    await make_user(harness, "dev@example.com", "developer")
    for target, expected in [("/console/apps/new", "/console/apps/new"), ("//evil.example/x", "/console"),
                             ("https://evil.example/", "/console"), ("/\\evil.example", "/console")]:  # fmt: skip
        signed = await sign_in(harness, "dev@example.com", next_path=target)
        assert signed.headers["location"] == expected


@pytest.mark.parametrize(
    ("role", "path"),
    [("developer", "/portal"), ("developer", "/admin"), ("spe-admin", "/console"), ("admin", "/console/apps/new")],
)
async def test_each_role_sees_only_its_area(harness: Harness, people: MakePerson, role: str, path: str) -> None:
    xspe = (await harness.admin.create_spe("Acme")).xspe if role == "spe-admin" else None
    someone = await people(f"{role}@example.com", role, xspe)
    assert (await someone.get(path)).status_code == 403


async def test_a_developer_cannot_reach_another_developers_app(harness: Harness, people: MakePerson) -> None:
    alice = await people("alice@example.com", "developer")
    mallory = await people("mallory@example.com", "developer")
    created = await alice.post("/console/apps/new", {**APP_FORM, "name": "Alice private app"})
    app_id = created.headers["location"].split("/")[3]
    assert (await alice.get(f"/console/apps/{app_id}")).status_code == 200
    for method, path in [("GET", ""), ("GET", "/edit"), ("GET", "/secret"), ("POST", "/edit"),
                         ("POST", "/status"), ("POST", "/rotate")]:  # fmt: skip
        url = f"/console/apps/{app_id}{path}"
        answer = await (mallory.get(url) if method == "GET" else mallory.post(url, {"status": "suspended"}))
        assert answer.status_code == 404, (method, path)
        assert app_id not in answer.text and "Alice private app" not in answer.text
    assert "Alice private app" not in (await mallory.get("/console")).text
    assert (await harness.admin.require_app(app_id)).active


async def test_lock_out_shows_on_the_sign_in_page_and_an_admin_unlocks(harness: Harness, people: MakePerson) -> None:
    user = await make_user(harness, "dev@example.com", "developer")
    for _ in range(4):
        wrong = await sign_in(harness, "dev@example.com", "not the password")
        assert "The e-mail or the password is wrong." in wrong.text
    locked = await sign_in(harness, "dev@example.com", "not the password")
    assert "locked from your address for 3 more minutes" in locked.text  # 5 per 15 minutes: 1 more in 3
    assert "locked" in (await sign_in(harness, "dev@example.com")).text  # the right password is refused too
    admin = await people("root@example.com", "admin")
    listing = await admin.get("/admin/users")
    assert f"/admin/users/{user.user_id}/unlock" in listing.text
    assert (await admin.post(f"/admin/users/{user.user_id}/unlock")).status_code == 303
    assert (await sign_in(harness, "dev@example.com")).status_code == 303


async def test_sign_out_ends_the_session(harness: Harness, people: MakePerson) -> None:
    dev = await people("dev@example.com", "developer")
    cookie = dev.client.cookies["op_session"]
    out = await dev.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login?notice=signed-out"
    transport = httpx.ASGITransport(app=harness.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as stolen:
        stolen.cookies.set("op_session", cookie)
        assert (await stolen.get("/console")).status_code == 303


async def test_every_form_on_every_page_carries_the_session_token(harness: Harness, people: MakePerson) -> None:
    world = await harness.world()
    admin = await people("root@example.com", "admin")
    dev = await people("dev@example.com", "developer")
    spe = await people("ops@example.com", "spe-admin", world.xspe)
    created = await dev.post("/console/apps/new", APP_FORM)
    app_id = created.headers["location"].split("/")[3]
    await spe.post("/portal/install", {"app_id": app_id, "customer_id": world.customer_id})
    pages = {
        admin: ["/admin", "/admin/users", "/admin/apps", f"/console/apps/{app_id}", "/account/password",
                f"/admin/users/{dev.user.user_id}/password"],
        dev: ["/console", "/console/apps/new", f"/console/apps/{app_id}", f"/console/apps/{app_id}/edit",
              "/account/password"],
        spe: ["/portal", "/portal/apps", "/portal/customers/new", f"/portal/customers/{world.customer_id}",
              f"/portal/customers/{world.customer_id}/edit", f"/portal/uninstall?app_id={app_id}"],
    }  # fmt: skip
    for someone, paths in pages.items():
        for path in paths:
            page = await someone.get(path)
            assert page.status_code == 200, path
            forms = re.findall(r'<form method="post".*?</form>', page.text, re.S)
            assert forms, path  # at least the sign-out form
            for form in forms:
                assert f'name="csrf_token" value="{someone.csrf}"' in form, (path, form[:120])


async def test_cookies_are_secure_behind_a_tls_proxy_when_the_issuer_is_https(harness: Harness) -> None:
    harness.platform.settings.issuer = "https://console.example.com"
    form = await harness.client.get("/login")  # plain http between the proxy and the server
    cookie = next(c for c in form.headers.get_list("set-cookie") if c.startswith("__Host-op_login="))
    assert "secure" in cookie.lower()
