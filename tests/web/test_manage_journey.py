"""An operator's whole journey through the admin API alone, with a real server (issue 10, SPEC §10).

The commands are docs/api.md's own ("Admin API"), run as printed: the CLI line with the
real ``openplatform`` command, each ``curl`` line with the real curl binary and the
shell variables the page tells the reader to keep (``# XSPE=result.xspe``). Between the
page's install and uninstall the app gets tokens through the documented OAuth endpoints;
after the uninstall they stop working.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from openplatform.config import Settings
from tests.conftest import LiveServer, run_cli

# A live server and the CLI sharing one database (the openplatform command refuses memory://).
pytestmark = pytest.mark.sql

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def admin_api_commands() -> list[str]:
    """The lines of the shell block of docs/api.md's "Admin API" section, and the command after it."""
    section = DOC.read_text(encoding="utf-8").split("## Admin API", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    after = re.search(r"\(`(openplatform admin-key create [^`]+)`\)", section.replace("\n", " "))
    assert after is not None
    return [*block.splitlines(), after.group(1)]


def curl(line: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(["bash", "-c", line], env={**os.environ, **env}, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, (line, done.stderr)
    body: dict[str, Any] = json.loads(done.stdout)
    assert body["code"] == 0 and body["msg"] == "success", (line, body)
    return body


def keep(annotation: str, body: dict[str, Any], env: dict[str, str]) -> None:
    """``# XSPE=result.xspe APP_ID=result.app_id``: the variables the reader keeps from the last answer."""
    for name, path in re.findall(r"([A-Z_]+)=result\.([a-z_]+)", annotation):
        env[name] = body["result"][path]


def cli_words(line: str, env: dict[str, str]) -> list[str]:
    words = shlex.split(line.split("#", 1)[0])
    assert words[0] == "openplatform"
    return [env.get(w[1:], w) if w.startswith("$") else w for w in words[1:]]


def test_an_operator_journey_through_the_admin_api_alone(live_server: LiveServer, settings: Settings) -> None:
    lines = admin_api_commands()
    create, export = lines[0], lines[1]
    assert create.startswith("openplatform admin-key create") and export.startswith("export BASE=")
    created = json.loads(run_cli(settings, *cli_words(create, {})).stdout)
    env = {"BASE": str(live_server), "KEY": created["key"]}

    uninstall = next(i for i, line in enumerate(lines) if "DELETE" in line and "/installations/" in line)
    last: dict[str, Any] = {}
    for line in lines[2:uninstall]:
        if line.startswith("curl "):
            last = curl(line, env)
        elif line.startswith("# "):
            keep(line, last, env)
    assert {"XSPE", "CUSTOMER_ID", "APP_ID", "SECRET", "INSTALLATION_ID"} <= set(env)

    with httpx.Client(base_url=str(live_server), timeout=10) as http:
        # The app, installed through the admin API, gets tokens through the documented endpoints.
        redirect_uri = "https://analytics.example.com/callback"
        connect = http.get("/oauth/connect", params={
            "app_id": env["APP_ID"], "redirect_uri": redirect_uri, "response_type": "code", "scope": "install_login",
            "xspe": env["XSPE"], "customer_id": env["CUSTOMER_ID"], "state": "journey",
        })  # fmt: skip
        assert connect.status_code == 302, connect.text
        code = parse_qs(urlsplit(connect.headers["location"]).query)["code"][0]
        credentials = {"app_id": env["APP_ID"], "secret": env["SECRET"]}  # the first secret, within its grace
        tokens = http.post("/oauth/access_token", data={**credentials, "code": code,
                                                        "grant_type": "authorization_code"}).json()  # fmt: skip
        assert tokens["code"] == 0, tokens
        user = {"Authorization": f"Bearer {tokens['result']['access_token']}"}
        customer = f"/api/spe/customer/{env['CUSTOMER_ID']}"
        assert http.get(customer, headers=user).json()["result"]["customer_id"] == env["CUSTOMER_ID"]

        for line in lines[uninstall:-1]:  # the uninstall, then the audit look-up
            if line.startswith("curl "):
                last = curl(line, env)
                if "/installations/" in line:
                    assert last["result"]["uninstalled_at"] is not None
        assert [e["event"] for e in last["result"]["items"]] == ["app.uninstalled"]

        # The tokens stop at once: the Open API, the refresh token and introspection all say so.
        refused = http.get(customer, headers=user)
        assert (refused.status_code, refused.json()["code"]) == (401, 40102)
        refresh = http.post(
            "/oauth/refresh_token",
            data={
                "app_id": env["APP_ID"],
                "grant_type": "refresh_code",
                "refresh_token": tokens["result"]["refresh_token"],
            },
        )
        assert refresh.json()["code"] == 40006
        introspection = http.post("/oauth/introspect", data={**credentials, "token": tokens["result"]["access_token"]})
        assert introspection.json()["active"] is False

        # The page's last command: a key bound to the SPE, which needs no xspe and sees only that SPE.
        bound = json.loads(run_cli(settings, *cli_words(lines[-1], env)).stdout)
        assert bound["xspe"] == env["XSPE"]
        listed = http.get("/api/manage/customers", headers={"Authorization": f"Bearer {bound['key']}"}).json()
        assert [c["customer_id"] for c in listed["result"]["items"]] == [env["CUSTOMER_ID"]]
        other = http.get("/api/manage/spes", headers={"Authorization": f"Bearer {bound['key']}"}).json()
        assert [s["xspe"] for s in other["result"]["items"]] == [env["XSPE"]]

    # Revoked with the CLI, the key stops at once on the running server.
    run_cli(settings, "admin-key", "revoke", "--key-id", created["key_id"])
    gone = httpx.get(f"{live_server}/api/manage/spes", headers={"Authorization": f"Bearer {created['key']}"})
    assert (gone.status_code, gone.json()["code"]) == (401, 40102)
