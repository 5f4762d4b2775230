"""The CLI can look things up (SPEC §11): --version, spe/customer/app/install/user list, app show,
app create --owner. Each list prints one JSON object with an ``items`` list; errors go to stderr."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openplatform.config import Settings
from tests.conftest import run_cli

# The real openplatform command, one process a call, on the test's database: the CLI refuses memory://.
pytestmark = pytest.mark.sql


def cli(settings: Settings, *args: str) -> Any:
    return json.loads(run_cli(settings, *args).stdout)


def test_the_cli_looks_things_up(settings: Settings) -> None:
    assert run_cli(settings, "--version").stdout.startswith("openplatform ")
    xspe = cli(settings, "spe", "create", "--name", "Acme")["xspe"]
    customer = cli(settings, "customer", "create", "--xspe", xspe, "--name", "One")["customer_id"]
    result = run_cli(settings, "user", "create", "--email", "dev@example.com", "--role", "developer",
                     "--password-stdin", check=False)  # fmt: skip
    assert result.returncode != 0  # no password on stdin: refused, nothing created
    created = cli(settings, "app", "create", "--name", "App", "--host-url", "https://app.example.com/")
    install = cli(settings, "install", "--app-id", created["app_id"], "--customer-id", customer)

    assert [s["xspe"] for s in cli(settings, "spe", "list")["items"]] == [xspe]
    assert [c["customer_id"] for c in cli(settings, "customer", "list", "--xspe", xspe)["items"]] == [customer]
    apps = cli(settings, "app", "list")["items"]
    assert [a["app_id"] for a in apps] == [created["app_id"]] and "secret" not in apps[0]
    shown = cli(settings, "app", "show", "--app-id", created["app_id"])
    assert shown["name"] == "App" and "secret" not in shown
    for by in (["--app-id", created["app_id"]], ["--xspe", xspe]):
        items = cli(settings, "install", "list", *by)["items"]
        assert [i["installation_id"] for i in items] == [install["installation_id"]]
    assert cli(settings, "user", "list") == {"items": []}

    for bad in (["install", "list"], ["customer", "list", "--xspe", "spe_nope"], ["app", "show", "--app-id", "x"],
                ["app", "list", "--owner", "nobody@example.com"]):  # fmt: skip
        failed = run_cli(settings, *bad, check=False)
        assert failed.returncode != 0 and failed.stdout == "" and failed.stderr.startswith("error:"), bad


def test_an_app_created_for_a_developer_is_listed_as_theirs(settings: Settings) -> None:
    import subprocess
    import sys

    from tests.conftest import cli_env

    made = subprocess.run([sys.executable, "-m", "openplatform.cli", "user", "create", "--email", "dev@example.com",
                           "--role", "developer", "--password-stdin"], input="a long enough password\n",
                          env=cli_env(settings), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr
    mine = cli(settings, "app", "create", "--name", "Mine", "--host-url", "https://a.example.com/",
               "--owner", "dev@example.com")  # fmt: skip
    cli(settings, "app", "create", "--name", "Other", "--host-url", "https://b.example.com/")
    listed = cli(settings, "app", "list", "--owner", "dev@example.com")["items"]
    assert [a["app_id"] for a in listed] == [mine["app_id"]]
    assert [u["email"] for u in cli(settings, "user", "list")["items"]] == ["dev@example.com"]
