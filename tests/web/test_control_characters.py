"""One definition of a control character (``core.text``) for every input (SPEC §9): the C0 and C1
controls, DEL and U+2028/U+2029 are refused wherever text comes in; other characters, non-ASCII
letters, symbols and bidirectional marks included, pass. Before, six checks disagreed: the
management forms let DEL through, and none refused U+0085 or U+2028."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from openplatform.core.requests import parse_params
from openplatform.core.text import has_control_chars
from openplatform.errors import OAuthError
from openplatform.services import directory_input, validation
from tests.conftest import Harness
from tests.web.manage_support import admin_key, manage

CONTROLS = ["\x00", "\x1f", "\x7f", "\x80", "\x85", "\x9f", "\u2028", "\u2029"]
ALLOWED = ["é", "\xa0", "£", "€", "\u200f", "中", "\U0001f600"]


@pytest.mark.parametrize("char", CONTROLS + ALLOWED)
def test_the_definition(char: str) -> None:
    assert has_control_chars(f"a{char}b") == (char in CONTROLS)


@pytest.mark.parametrize("char", CONTROLS + ALLOWED)
def test_token_endpoint_parameters(char: str) -> None:
    """A form body (the byte-table shortcut), a query string, a percent-encoded body and JSON."""
    sources = [
        (f"state=a{char}b&x=1".encode(), b"", ""),
        (b"", f"state=a{char}b&x=1".encode(), "application/x-www-form-urlencoded"),
        (b"", f"state={quote('a' + char + 'b')}&x=1".encode(), "application/x-www-form-urlencoded"),
        (b"", json.dumps({"state": f"a{char}b"}).encode(), "application/json"),
    ]  # fmt: skip
    for query, body, media in sources:
        if char in CONTROLS:
            with pytest.raises(OAuthError, match="control characters"):
                parse_params(query, body, media)
        else:
            assert parse_params(query, body, media)["state"] == f"a{char}b"


@pytest.mark.parametrize("char", CONTROLS + ALLOWED)
def test_management_input(char: str) -> None:
    """Names from the console, the CLI and the admin API (``services.validation``), the Open APIs'
    filters and domains (``services.directory_input``)."""
    checks = [
        lambda: validation.text("name", f"Shop{char}One"),
        lambda: directory_input.filter_text(f"Shop{char}One", "name"),
    ]
    for check in checks:
        if char in CONTROLS:
            with pytest.raises((validation.ValidationError, OAuthError)):
                check()
        else:
            check()
    if char in CONTROLS:
        with pytest.raises((validation.ValidationError, OAuthError)):
            directory_input.hostname(f"shop{char}.example.com")


@pytest.mark.parametrize("char", ["\x7f", "\x85", "\u2028"])
async def test_the_admin_api_refuses_them_in_json_and_in_a_query(harness: Harness, char: str) -> None:
    _, key = await admin_key(harness)
    body = await manage(harness, key, "POST", "/spes", 400, json={"name": f"Shop{char}One"})
    assert (body["code"], body.get("field")) == (40001, "name")
    body = await manage(harness, key, "GET", "/audit-events", 400, params={"event": f"x{char}"})
    assert (body["code"], body.get("field")) == (40001, "event")
    created = await manage(harness, key, "POST", "/spes", json={"name": "Shop\u200f€One"})
    assert created["name"] == "Shop\u200f€One"
