"""``__Host-`` cookies under an https ISSUER (SPEC §9; issue 9 finding 6).

The session cookie and the sign-in form's CSRF cookie are then ``__Host-op_session``
and ``__Host-op_login``: Secure, ``Path=/``, no ``Domain`` — a sibling subdomain or
a plain-http page cannot plant or overwrite them. A cookie under the plain name is
not read. Without an https ISSUER (development on http://localhost) the names stay plain.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Harness
from tests.ui.support import PASSWORD, csrf_in, make_user

HTTPS = {"issuer": "https://console.example.com"}


def cookie_line(response: httpx.Response, name: str) -> str:
    lines = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    assert len(lines) == 1, response.headers.get_list("set-cookie")
    return lines[0]


def assert_host_only(line: str) -> None:
    attributes = [a.strip().lower() for a in line.split(";")[1:]]
    assert "secure" in attributes and "path=/" in attributes, line
    assert not any(a.startswith("domain") for a in attributes), line


@pytest.mark.parametrize("settings_overrides", [HTTPS])
async def test_session_and_csrf_cookies_are_host_only(harness: Harness) -> None:
    await make_user(harness, "dev@example.com", "developer")
    # Behind the TLS-terminating proxy the server itself sees plain http.
    async with harness.client_from("127.0.0.1") as client:
        form = await client.get("/login")
        assert_host_only(cookie_line(form, "__Host-op_login"))
        login_csrf = cookie_line(form, "__Host-op_login").split(";")[0].split("=", 1)[1]
        data = {"csrf_token": csrf_in(form.text), "email": "dev@example.com", "password": PASSWORD}
        signed_in = await client.post("/login", data=data, headers={"Cookie": f"__Host-op_login={login_csrf}"})
        assert signed_in.status_code == 303, signed_in.text
        session_line = cookie_line(signed_in, "__Host-op_session")
        assert_host_only(session_line)
        assert "httponly" in session_line.lower()
        session = session_line.split(";")[0].split("=", 1)[1]

        home = await client.get("/console", headers={"Cookie": f"__Host-op_session={session}"})
        assert home.status_code == 200 and "dev@example.com" in home.text
        planted = await client.get("/console", headers={"Cookie": f"op_session={session}"})
        assert planted.status_code == 303 and planted.headers["location"].startswith("/login")

        out = await client.post("/logout", data={"csrf_token": csrf_in(home.text)},
                                headers={"Cookie": f"__Host-op_session={session}"})  # fmt: skip
        assert out.status_code == 303 and "max-age=0" in cookie_line(out, "__Host-op_session").lower()


@pytest.mark.parametrize("settings_overrides", [HTTPS])
async def test_a_plain_login_cookie_does_not_pass_the_csrf_check(harness: Harness) -> None:
    await make_user(harness, "dev@example.com", "developer")
    async with harness.client_from("127.0.0.1") as client:
        form = await client.get("/login")
        token = csrf_in(form.text)
        data = {"csrf_token": token, "email": "dev@example.com", "password": PASSWORD}
        refused = await client.post("/login", data=data, headers={"Cookie": f"op_login={token}"})
        assert refused.status_code == 403


async def test_over_plain_http_the_names_stay_plain(harness: Harness) -> None:
    async with harness.client_from("127.0.0.1") as client:
        form = await client.get("/login")
    line = cookie_line(form, "op_login")
    assert "secure" not in line.lower() and "__Host-" not in str(form.headers.get_list("set-cookie"))
