"""Accounts: argon2id hashes, lock-out after repeated failures, sessions kept as digests."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from openplatform.services.accounts import LOCK_SECONDS, MAX_FAILED_SIGN_INS, SignInRefused, build_accounts
from openplatform.services.validation import NotFound, ValidationError
from openplatform.storage.sql.schema import users, web_sessions
from tests.conftest import Harness
from tests.ui.support import PASSWORD


def accounts_of(harness: Harness):  # type: ignore[no-untyped-def]
    return build_accounts(harness.admin.stores, harness.admin.keyring)


@pytest.mark.sql  # secrets at rest: what the database rows hold
async def test_password_is_stored_as_argon2id_and_session_as_digest(harness: Harness) -> None:
    accounts = accounts_of(harness)
    user = await accounts.create_user("Dev@Example.com", "developer", PASSWORD)
    assert user.email == "dev@example.com"
    new = await accounts.sign_in("dev@example.com", PASSWORD)
    stored = await harness.admin.db.database.scalar(select(users.c.password_hash))
    sessions = await harness.admin.db.database.read(select(web_sessions))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert [s["digest"] for s in sessions] == [harness.admin.keyring.digest(new.cookie_value)]
    assert new.cookie_value not in str([dict(s) for s in sessions])
    assert (await accounts.session(new.cookie_value)).user.user_id == user.user_id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("email", "role", "password", "xspe", "field"),
    [
        ("not-an-address", "developer", PASSWORD, None, "email"),
        ("a@example.com", "root", PASSWORD, None, "role"),
        ("a@example.com", "developer", "short", None, "password"),
        ("a@example.com", "developer", PASSWORD, "spe_x", "xspe"),
        ("a@example.com", "spe-admin", PASSWORD, None, "xspe"),
    ],
)
async def test_bad_account_input_names_the_field(
    harness: Harness, email: str, role: str, password: str, xspe: str | None, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await accounts_of(harness).create_user(email, role, password, xspe)
    assert caught.value.field == field


async def test_spe_admin_needs_an_existing_spe_and_emails_are_unique(harness: Harness) -> None:
    accounts = accounts_of(harness)
    with pytest.raises(NotFound):
        await accounts.create_user("s@example.com", "spe-admin", PASSWORD, "spe_missing")
    await accounts.create_user("d@example.com", "developer", PASSWORD)
    with pytest.raises(ValidationError) as caught:
        await accounts.create_user("D@example.com", "admin", PASSWORD)
    assert caught.value.field == "email"


async def test_lock_out_after_repeated_failures_then_unlock_in_time(harness: Harness) -> None:
    accounts = accounts_of(harness)
    await accounts.create_user("dev@example.com", "developer", PASSWORD)
    for attempt in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(SignInRefused) as caught:
            await accounts.sign_in("dev@example.com", "wrong password!")
        assert (caught.value.locked_seconds > 0) == (attempt == MAX_FAILED_SIGN_INS - 1)
    with pytest.raises(SignInRefused) as caught:
        await accounts.sign_in("dev@example.com", PASSWORD)  # right password, still locked
    assert "locked" in caught.value.message
    harness.clock.advance(LOCK_SECONDS + 1)
    assert (await accounts.sign_in("dev@example.com", PASSWORD)).user.email == "dev@example.com"


async def test_success_resets_the_failure_count(harness: Harness) -> None:
    accounts = accounts_of(harness)
    await accounts.create_user("dev@example.com", "developer", PASSWORD)
    for _ in range(2):
        for _ in range(MAX_FAILED_SIGN_INS - 1):
            with pytest.raises(SignInRefused):
                await accounts.sign_in("dev@example.com", "wrong password!")
        await accounts.sign_in("dev@example.com", PASSWORD)  # never locked: the count restarts


async def test_unknown_and_disabled_accounts_and_expired_sessions(harness: Harness) -> None:
    accounts = accounts_of(harness)
    with pytest.raises(SignInRefused) as caught:
        await accounts.sign_in("nobody@example.com", PASSWORD)
    assert caught.value.message == "The e-mail or the password is wrong."
    user = await accounts.create_user("dev@example.com", "developer", PASSWORD)
    session = await accounts.sign_in("dev@example.com", PASSWORD)
    await accounts.set_status(user.user_id, "disabled")
    assert await accounts.session(session.cookie_value) is None  # disabling ends the sessions
    with pytest.raises(SignInRefused) as caught:
        await accounts.sign_in("dev@example.com", PASSWORD)
    assert "disabled" in caught.value.message
    await accounts.set_status(user.user_id, "active")
    fresh = await accounts.sign_in("dev@example.com", PASSWORD)
    harness.clock.advance(13 * 3600)
    assert await accounts.session(fresh.cookie_value) is None


def test_password_hash_parameters() -> None:
    """Production hashes are argon2id, t=3, 64 MiB, p=4 (RFC 9106 §4, second recommended option)."""
    from argon2 import PasswordHasher, Type, extract_parameters

    from openplatform.services import accounts

    params = extract_parameters(PasswordHasher(**accounts.ARGON2).hash("x" * 10))  # type: ignore[arg-type]
    assert params.type is Type.ID
    assert (params.time_cost, params.memory_cost, params.parallelism) == (3, 65536, 4)
