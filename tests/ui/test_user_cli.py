"""`openplatform user create` (SPEC §5) and the demo accounts of `openplatform demo`."""

from __future__ import annotations

import re
import subprocess
import sys

import orjson
import pytest

from openplatform.config import Settings
from openplatform.demo import seed_and_describe
from openplatform.runtime import build_admin
from openplatform.services.accounts import SignInRefused, build_accounts
from tests.conftest import cli_env
from tests.ui.support import PASSWORD

# The real openplatform command, one process a call, on the test's database: the CLI refuses memory://.
pytestmark = pytest.mark.sql


def user_create(settings: Settings, *args: str, stdin: str = PASSWORD + "\n") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openplatform.cli", "user", "create", *args],
        input=stdin, env=cli_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def can_sign_in(settings: Settings, email: str, password: str) -> str:
    admin = build_admin(settings)
    try:
        return (await build_accounts(admin.stores, admin.keyring).sign_in(email, password)).user.role
    finally:
        await admin.db.close()


async def test_user_create_prints_one_json_object_and_the_account_works(settings: Settings) -> None:
    done = user_create(settings, "--email", "Ops@Example.com", "--role", "admin", "--password-stdin")
    assert done.returncode == 0, done.stderr
    printed = orjson.loads(done.stdout)
    assert set(printed) == {"user_id", "email", "role", "xspe"}
    assert (printed["email"], printed["role"], printed["xspe"]) == ("ops@example.com", "admin", None)
    assert re.fullmatch(r"usr_[0-9a-f]{16}", printed["user_id"])
    assert PASSWORD not in done.stdout + done.stderr
    assert await can_sign_in(settings, "ops@example.com", PASSWORD) == "admin"


async def test_an_spe_admin_is_created_for_an_existing_spe(settings: Settings) -> None:
    admin = build_admin(settings)
    try:
        xspe = (await admin.create_spe("Acme")).xspe
    finally:
        await admin.db.close()
    done = user_create(settings, "--email", "spe@example.com", "--role", "spe-admin", "--xspe", xspe,
                       "--password-stdin")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["xspe"] == xspe


@pytest.mark.parametrize(
    ("args", "stdin", "status", "message"),
    [
        (["--role", "developer"], PASSWORD, 2, "--password-stdin"),
        (["--role", "developer", "--password-stdin"], "short\n", 2, "password: must be at least 10 characters"),
        (["--role", "root", "--password-stdin"], PASSWORD, 2, "role: must be one of"),
        (["--role", "spe-admin", "--password-stdin"], PASSWORD, 2, "xspe: an spe-admin needs the SPE"),
        (["--role", "spe-admin", "--xspe", "spe_nope", "--password-stdin"], PASSWORD, 4, "no SPE 'spe_nope'"),
    ],
    ids=["no stdin flag", "short password", "unknown role", "spe-admin without SPE", "unknown SPE"],
)
def test_bad_input_is_a_clean_error(settings: Settings, args: list[str], stdin: str, status: int, message: str) -> None:
    done = user_create(settings, "--email", "x@example.com", *args, stdin=stdin)
    assert (done.returncode, done.stdout) == (status, "")
    assert message in done.stderr


def test_an_email_is_used_once(settings: Settings) -> None:
    assert user_create(settings, "--email", "a@example.com", "--role", "developer", "--password-stdin").returncode == 0
    again = user_create(settings, "--email", "A@example.com", "--role", "admin", "--password-stdin")
    assert again.returncode == 2 and "email: is already used by another account" in again.stderr


async def test_demo_prints_accounts_that_sign_in_and_the_developer_owns_the_demo_app(settings: Settings) -> None:
    facts, guide = await seed_and_describe(settings, "127.0.0.1", 8000)  # a second run: tests/client/test_demo_seed.py
    accounts = {a["role"]: a for a in facts["accounts"]}  # type: ignore[attr-defined]
    assert set(accounts) == {"admin", "developer", "spe-admin"}
    for role, account in accounts.items():
        assert f"{account['email']:<22} {account['password']}" in guide  # the guide shows them too
        assert await can_sign_in(settings, account["email"], account["password"]) == role
    admin = build_admin(settings)
    try:
        store = build_accounts(admin.stores, admin.keyring).store
        developer = await store.find_by_email("developer@example.com")
        spe_admin = await store.find_by_email("spe-admin@example.com")
        app = await admin.db.get_app(str(facts["app_id"]))
    finally:
        await admin.db.close()
    assert developer is not None and app is not None and app.owner_id == developer.user_id
    assert spe_admin is not None and spe_admin.xspe == facts["xspe"]


# ------------------------------------------------------- user set-password (SPEC §11)

NEW_PASSWORD = "a brand new passphrase"


def user_set_password(
    settings: Settings, *args: str, stdin: str = NEW_PASSWORD + "\n"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openplatform.cli", "user", "set-password", *args],
        input=stdin, env=cli_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_user_set_password_prints_one_json_object_and_ends_the_sessions(settings: Settings) -> None:
    created = orjson.loads(user_create(settings, "--email", "ops@example.com", "--role", "admin",
                                       "--password-stdin").stdout)  # fmt: skip
    admin = build_admin(settings)
    try:
        accounts = build_accounts(admin.stores, admin.keyring)
        session = await accounts.sign_in("ops@example.com", PASSWORD)
        done = user_set_password(settings, "--email", "Ops@Example.com", "--password-stdin")
        assert done.returncode == 0, done.stderr
        assert len(done.stdout.splitlines()) == 1
        assert orjson.loads(done.stdout) == {"user_id": created["user_id"], "email": "ops@example.com"}
        assert NEW_PASSWORD not in done.stdout + done.stderr
        assert await accounts.session(session.cookie_value) is None  # signed out everywhere
        with pytest.raises(SignInRefused):
            await accounts.sign_in("ops@example.com", PASSWORD)
    finally:
        await admin.db.close()
    assert await can_sign_in(settings, "ops@example.com", NEW_PASSWORD) == "admin"


@pytest.mark.parametrize(
    ("args", "stdin", "status", "message"),
    [
        (["--email", "nobody@example.com", "--password-stdin"], NEW_PASSWORD, 4,
         "error: no account with the e-mail 'nobody@example.com'"),
        (["--email", "ops@example.com"], NEW_PASSWORD, 2, "--password-stdin"),
        (["--email", "ops@example.com", "--password-stdin"], "short\n", 2, "password: must be at least 10 characters"),
        (["--email", "not an address", "--password-stdin"], NEW_PASSWORD, 2, "email: must be an e-mail address"),
    ],
    ids=["unknown e-mail", "no stdin flag", "short password", "not an e-mail"],
)  # fmt: skip
def test_user_set_password_refuses_cleanly(
    settings: Settings, args: list[str], stdin: str, status: int, message: str
) -> None:
    assert user_create(settings, "--email", "ops@example.com", "--role", "admin", "--password-stdin").returncode == 0
    done = user_set_password(settings, *args, stdin=stdin)
    assert (done.returncode, done.stdout) == (status, "")
    assert message in done.stderr
    assert "Traceback" not in done.stderr
