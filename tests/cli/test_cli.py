"""The command line of SPEC §5: exact names, one JSON object on stdout, errors on stderr.

Each command is a real ``python -m openplatform.cli`` process on the test's
database. Independent commands run side by side to keep the file fast.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openplatform.cli import app as cli_app
from openplatform.config import Settings
from openplatform.runtime import build_admin
from openplatform.security import Keyring
from tests.conftest import cli_env, run_cli

# The real openplatform command, one process a call, on the test's database: the CLI refuses memory://.
pytestmark = pytest.mark.sql

APP_ID = re.compile(r"[0-9a-f]{32}")


def one_json_object(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """stdout holds exactly one JSON object (one line) and nothing else."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    return obj


async def cli(settings: Settings, *args: str) -> dict[str, Any]:
    return one_json_object(await asyncio.to_thread(run_cli, settings, *args, check=False))


def assert_secret(secret: object) -> None:
    """≥ 128 bits of randomness: at least 32 hex characters (or 22 URL-safe ones)."""
    assert isinstance(secret, str) and len(secret) >= 32 and secret.isascii() and secret.isprintable()


async def secret_hashes(settings: Settings, app_id: str) -> set[str]:
    admin = build_admin(settings)
    try:
        app = await admin.db.get_app(app_id)
    finally:
        await admin.db.close()
    assert app is not None
    return {s.secret_hash for s in app.secrets}


async def test_every_command_prints_one_json_object(settings: Settings) -> None:
    spe = await cli(settings, "spe", "create", "--name", "Acme")
    xspe = spe["xspe"]
    assert isinstance(xspe, str) and xspe

    customer, app = await asyncio.gather(
        cli(settings, "customer", "create", "--xspe", xspe, "--name", "Customer One"),
        cli(settings, "app", "create", "--name", "CLI App", "--host-url", "https://app.example.com/",
            "--scope", "customer:read", "--scope", "site:read", "--ip-whitelist", "198.51.100.0/24",
            "--ip-whitelist", "2001:db8::/32", "--webhook-url", "https://app.example.com/hook"),
    )  # fmt: skip
    assert customer["xspe"] == xspe and customer["customer_id"]
    app_id, first_secret = app["app_id"], app["secret"]
    assert APP_ID.fullmatch(app_id), app_id
    assert_secret(first_secret)

    installed, rotated, suspended = await asyncio.gather(
        cli(settings, "install", "--app-id", app_id, "--customer-id", customer["customer_id"]),
        cli(settings, "app", "rotate-secret", "--app-id", app_id, "--grace-seconds", "60"),
        cli(settings, "app", "suspend", "--app-id", app_id),
    )
    assert (suspended["app_id"], suspended["status"]) == (app_id, "suspended")
    assert isinstance(installed["installation_id"], str) and installed["installation_id"]
    assert rotated["app_id"] == app_id
    assert_secret(rotated["secret"])
    assert rotated["secret"] != first_secret
    keyring = Keyring(settings.resolved_secret_key())
    both = {keyring.secret_hash(app_id, first_secret), keyring.secret_hash(app_id, rotated["secret"])}
    assert await secret_hashes(settings, app_id) == both  # the old one lives through its grace period

    resumed, uninstalled, upgraded = await asyncio.gather(
        cli(settings, "app", "resume", "--app-id", app_id),
        cli(settings, "uninstall", "--app-id", app_id, "--customer-id", customer["customer_id"]),
        cli(settings, "db", "upgrade"),
    )
    assert (resumed["app_id"], resumed["status"]) == (app_id, "active")
    assert uninstalled["installation_id"] == installed["installation_id"]
    # Every command above migrated first, so this is at least the sixth upgrade: idempotent.
    assert upgraded["schema"] == "up to date"
    assert set(upgraded) == {"database", "schema"}


def error_cases(settings: Settings) -> dict[str, list[str]]:
    async def seed() -> tuple[str, str, str]:
        admin = build_admin(settings)
        try:
            spe = await admin.create_spe("Acme")
            customer = await admin.create_customer(spe.xspe, "Customer One")
            app, _secret = await admin.create_app("App", "https://app.example.com/")
        finally:
            await admin.db.close()
        return spe.xspe, customer.customer_id, app.app_id

    xspe, customer_id, app_id = asyncio.run(seed())
    new_app = ["app", "create", "--name", "X", "--host-url"]
    return {
        "unknown xspe": ["customer", "create", "--xspe", "spe_doesnotexist", "--name", "X"],
        "bad host_url": [*new_app, "not a url"],
        "ftp host_url": [*new_app, "ftp://app.example.com/"],
        "bad scope": [*new_app, "https://a.example/", "--scope", "root"],
        "bad CIDR": [*new_app, "https://a.example/", "--ip-whitelist", "10.0.0.0/33"],
        "both targets": ["install", "--app-id", app_id, "--customer-id", customer_id, "--xspe", xspe],
        "neither target": ["install", "--app-id", app_id],
        "uninstall neither": ["uninstall", "--app-id", app_id],
        "not installed": ["uninstall", "--app-id", app_id, "--xspe", xspe],
        "unknown app": ["app", "rotate-secret", "--app-id", "0" * 32],
        "negative grace": ["app", "rotate-secret", "--app-id", app_id, "--grace-seconds", "-5"],
        "unknown customer": ["install", "--app-id", app_id, "--customer-id", "cus_doesnotexist"],
        "empty name": ["spe", "create", "--name", " "],
        "missing option": ["spe", "create"],
    }


def test_errors_go_to_stderr_with_nothing_on_stdout(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The error table runs in-process (the real command code under Click's runner:
    a process per case would make this file slow); one case runs as a real process."""
    cases = error_cases(settings)
    real = run_cli(settings, *cases["unknown xspe"], check=False)
    assert (real.returncode, real.stdout) == (4, "")
    assert "spe_doesnotexist" in real.stderr and "Traceback" not in real.stderr

    for key, value in cli_env(settings).items():
        if key.startswith("OPENPLATFORM_"):
            monkeypatch.setenv(key, value)
    runner = CliRunner()
    for name, args in cases.items():
        result = runner.invoke(cli_app, args)
        assert result.exit_code != 0, name
        assert result.stdout == "", (name, result.stdout)
        assert result.stderr.strip(), name
        assert result.exception is None or isinstance(result.exception, SystemExit), (name, result.exception)


def test_bad_configuration_is_a_clean_error(tmp_path: Path) -> None:
    """Refused before any database is touched, so this runs once, not per database."""
    env = {**os.environ, "OPENPLATFORM_DATABASE_URL": "mysql://root@localhost/x"}
    result = subprocess.run(
        [sys.executable, "-m", "openplatform.cli", "spe", "create", "--name", "X"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == ""
    assert "OPENPLATFORM_DATABASE_URL" in result.stderr and "Traceback" not in result.stderr
