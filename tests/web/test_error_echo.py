"""An error message repeats at most 64 characters of the caller's input, then ``…`` (issue 10's
attacker review: "no SPE 'xxx…'" sent back up to 4 KB of it, to the client, the logs, the terminal).

``errors.echo`` is the one place: ``NotFound("no SPE", xspe)``, the field names of
``directory_input.invalid`` and the other messages that quote input go through it. On memory, SQLite
and PostgreSQL (the CLI's on the last two).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from openplatform.errors import MAX_ECHO, echo
from tests.conftest import Harness, run_cli
from tests.web.manage_support import admin_key, manage

LONG = "x" * 4000
SHOWN = "'" + "x" * MAX_ECHO + "…'"


def test_echo_quotes_and_caps() -> None:
    assert echo("spe_1") == "'spe_1'"
    assert echo(LONG) == SHOWN and MAX_ECHO == 64
    assert echo("a\nb") == "'a\\nb'"  # a control character cannot start a new log line


def assert_capped(body: dict[str, Any]) -> None:
    assert "x" * (MAX_ECHO + 1) not in str(body) and len(body["msg"]) < 300, body


async def test_the_admin_api_repeats_at_most_64_characters(harness: Harness) -> None:
    _key_id, key = await admin_key(harness)
    for path in (f"/spes/{LONG}", f"/apps/{LONG}", f"/customers/{LONG}"):
        body = await manage(harness, key, "GET", path, 404)
        assert_capped(body)
    app = {"name": "A", "host_url": "https://a.example.com/"}
    refused = [
        ("/apps", 400, {**app, LONG: "1"}, "x" * MAX_ECHO + "…"),  # a 4 KB field name, also in "field"
        ("/apps", 400, {**app, "scopes": [LONG[:2000]]}, SHOWN),
        ("/apps", 400, {**app, "ip_whitelist": [LONG[:2000]]}, SHOWN),
        ("/customers", 404, {"xspe": LONG[:2000], "name": "Shop"}, SHOWN),
        ("/users", 404, {"email": "a@example.com", "role": "spe-admin", "xspe": LONG[:2000],
                         "password": "a long password"}, SHOWN),
    ]  # fmt: skip
    for path, status, payload, shown in refused:
        body = await manage(harness, key, "POST", path, status, json=payload)
        assert_capped(body)
        assert shown in body["msg"] and len(body.get("field") or "") <= MAX_ECHO + 1, body


async def test_an_unknown_scope_is_repeated_capped(harness: Harness) -> None:
    world = await harness.world()
    response = await harness.connect(world, scope="customer:read " + "y" * 400)
    assert response.status_code == 302  # back to the app with the error (RFC 6749 §4.1.2.1)
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_scope"]
    (description,) = query["error_description"]
    assert "'" + "y" * MAX_ECHO + "…'" in description and "y" * (MAX_ECHO + 1) not in description


@pytest.mark.sql  # the CLI, another process (the openplatform command refuses memory://)
def test_the_cli_repeats_at_most_64_characters(harness: Harness) -> None:
    settings = harness.platform.settings
    for args in (("app", "show", "--app-id", LONG), ("customer", "list", "--xspe", LONG),
                 ("admin-key", "revoke", "--key-id", LONG)):  # fmt: skip
        result = run_cli(settings, *args, check=False)
        assert result.returncode == 4 and SHOWN in result.stderr and len(result.stderr) < 300, result.stderr
