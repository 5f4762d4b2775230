"""What the fuzz tests (test_fuzz_openapi.py, test_fuzz_asgi.py) found, each kept as a plain case.

Every one answered 500 (and logged a traceback) before its fix; now each is a 4xx.
"""

from __future__ import annotations

import logging

import pytest

from tests.conftest import Harness
from tests.ui.support import person
from tests.web.fuzz_support import asgi_call, assert_envelope
from tests.web.open_api_support import bearer

FORM = (b"content-type", b"application/x-www-form-urlencoded")


@pytest.fixture
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def assert_no_error_logged(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("length", [b"\xb2", b"1\xb9", b"\xb3"])  # "²", "1¹", "³" read as latin-1
async def test_a_content_length_of_non_ascii_digits_is_malformed(
    harness: Harness, length: bytes, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    """web/lean.py and web/http.py read Content-Length as latin-1 text and checked it with
    str.isdigit(), which is true for "²"; int("²") then raised: 50001 on every POST."""
    world = await harness.world(spe_wide=True)
    token = await harness.app_token(world)
    lean = await asgi_call(harness.app, "POST", b"/oauth/credit/token", headers=[FORM, (b"content-length", length)])
    routed = await asgi_call(harness.app, "POST", b"/api/spe/customers", headers=[
        FORM, (b"content-length", length), (b"authorization", f"Bearer {token}".encode())])  # fmt: skip
    for answer in (lean, routed):
        assert answer.status == 400 and assert_envelope(answer)["msg"] == "Content-Length is malformed."
    assert_no_error_logged(no_tracebacks)


async def test_raw_bytes_above_ascii_in_the_query_string(
    harness: Harness, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    """Starlette builds request.url by decoding the raw query string as strict UTF-8: every page
    (and a slash redirect) answered 500 to ``?\\xff``. The app's entry now percent-encodes such
    bytes, so they reach the parameter parsers, which refuse invalid UTF-8."""
    world = await harness.world(spe_wide=True)
    token = await harness.app_token(world)
    page = await asgi_call(harness.app, "GET", b"/login", b"next=\xff")
    assert page.status == 200 and page.media == "text/html"
    redirect = await asgi_call(harness.app, "GET", b"/api/spe/customers/", b"x=\xff",
                               [(b"authorization", f"Bearer {token}".encode())])  # fmt: skip
    assert redirect.status == 307 and redirect.header(b"location") == b"http://testserver/api/spe/customers?x=%FF"
    token_endpoint = await asgi_call(harness.app, "POST", b"/oauth/credit/token", b"app_id=\xff", [FORM])
    assert token_endpoint.status == 400 and "not valid UTF-8" in assert_envelope(token_endpoint)["msg"]
    valid = await asgi_call(harness.app, "GET", b"/api/spe/customers", "name=Ünïcode".encode(),
                            [(b"authorization", f"Bearer {token}".encode())])  # fmt: skip
    assert valid.status == 200  # raw UTF-8 still means what it meant
    assert_no_error_logged(no_tracebacks)


async def test_a_client_leaving_mid_body_on_a_starlette_route(
    harness: Harness, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    """The lean endpoints said 40001 when the client went away mid-body; the Starlette ones
    (Open API writes, every management form) let ClientDisconnect through: 500 and a traceback."""
    world = await harness.world(spe_wide=True)
    token = await harness.app_token(world)
    api = await asgi_call(harness.app, "POST", b"/api/spe/customers", body=[b"name=half", b""], complete=False,
                          headers=[FORM, (b"authorization", f"Bearer {token}".encode())])  # fmt: skip
    assert api.status == 400 and "went away" in assert_envelope(api)["msg"]
    login = await asgi_call(harness.app, "POST", b"/login", body=[b"email=a", b""], complete=False, headers=[FORM])
    assert login.status == 400 and login.media == "text/html"
    assert_no_error_logged(no_tracebacks)
    assert (await harness.client.get("/api/spe/customers", headers=bearer(token))).status_code == 200


async def test_a_status_button_with_a_bad_status_is_a_400_page(
    harness: Harness, no_tracebacks: pytest.LogCaptureFixture
) -> None:
    """POST /portal/customers/{id}/status with a status other than active/disabled (or none):
    the handler let the form's FormErrors through, and the page frame answered 500."""
    world = await harness.world()
    admin = await person(harness, "spe@example.com", "spe-admin", world.xspe)
    try:
        for status in ("bogus", ""):
            answer = await admin.post(f"/portal/customers/{world.customer_id}/status", {"status": status})
            assert answer.status_code == 400 and "Status must be active or disabled." in answer.text, answer.text
    finally:
        await admin.client.aclose()
    assert_no_error_logged(no_tracebacks)
