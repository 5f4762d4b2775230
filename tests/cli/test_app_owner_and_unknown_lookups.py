"""Two findings of the operator review of issue 10, on the command line (SPEC §11, README "Exit status").

- ``app create --owner EMAIL`` accepted any account: an app "owned" by an spe-admin or a platform
  admin appears in no developer console (only developers have one), so the operator's script got
  exit status 0 for an app nobody can manage. The owner must be a developer: anything else is
  bad input (status 2, naming ``owner``) and creates nothing; an unknown e-mail stays status 4.
- ``install list --app-id``/``--xspe`` with an unknown app or SPE printed ``{"items": []}`` with
  status 0, while ``customer list --xspe`` and ``app list --owner`` answer status 4 for what does
  not exist: a typo in an id read as "installed nowhere". Now status 4, like every other lookup.

Runs the real ``openplatform`` command on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from openplatform.config import Settings
from tests.conftest import cli_env, run_cli

# The real openplatform command, one process a call, on the test's database: the CLI refuses memory://.
pytestmark = pytest.mark.sql

PASSWORD = "a long enough password\n"


def cli(settings: Settings, *args: str) -> Any:
    return json.loads(run_cli(settings, *args).stdout)


def make_user(settings: Settings, email: str, role: str, xspe: str | None = None) -> None:
    where = ["--xspe", xspe] if xspe else []
    made = subprocess.run([sys.executable, "-m", "openplatform.cli", "user", "create", "--email", email,
                           "--role", role, *where, "--password-stdin"], input=PASSWORD,
                          env=cli_env(settings), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert made.returncode == 0, made.stderr


def test_an_app_is_owned_only_by_a_developer(settings: Settings) -> None:
    xspe = cli(settings, "spe", "create", "--name", "Acme")["xspe"]
    make_user(settings, "dev@example.com", "developer")
    make_user(settings, "portal@example.com", "spe-admin", xspe)
    make_user(settings, "ops@example.com", "admin")

    for email in ("portal@example.com", "ops@example.com"):
        refused = run_cli(settings, "app", "create", "--name", "Lost", "--host-url", "https://lost.example.com/",
                          "--owner", email, check=False)  # fmt: skip
        assert refused.returncode == 2 and refused.stdout == "", (email, refused.stdout)
        assert refused.stderr.startswith("error: owner: ") and "developer" in refused.stderr, refused.stderr
    unknown = run_cli(settings, "app", "create", "--name", "Lost", "--host-url", "https://lost.example.com/",
                      "--owner", "nobody@example.com", check=False)  # fmt: skip
    assert unknown.returncode == 4 and unknown.stderr.startswith("error: "), unknown.stderr
    assert cli(settings, "app", "list") == {"items": []}  # nothing was created

    mine = cli(settings, "app", "create", "--name", "Mine", "--host-url", "https://a.example.com/",
               "--owner", "dev@example.com")  # fmt: skip
    assert [a["app_id"] for a in cli(settings, "app", "list", "--owner", "dev@example.com")["items"]] == [
        mine["app_id"]
    ]


def test_install_list_of_an_unknown_app_or_spe_is_not_found(settings: Settings) -> None:
    xspe = cli(settings, "spe", "create", "--name", "Acme")["xspe"]
    app = cli(settings, "app", "create", "--name", "App", "--host-url", "https://app.example.com/")["app_id"]
    assert cli(settings, "install", "list", "--app-id", app) == {"items": []}  # known, installed nowhere
    assert cli(settings, "install", "list", "--xspe", xspe) == {"items": []}

    for by, what in ((["--app-id", "0" * 32], "app"), (["--xspe", "spe_nope"], "SPE")):
        failed = run_cli(settings, "install", "list", *by, check=False)
        assert failed.returncode == 4 and failed.stdout == "", (by, failed.stdout)
        assert failed.stderr.startswith(f"error: no {what} "), failed.stderr
