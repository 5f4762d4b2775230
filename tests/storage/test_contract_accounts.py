"""Accounts and admin keys (``services.stores.AccountStore``, ``AdminKeyStore``), the same tests on
memory, SQLite and PostgreSQL.

What the screens and the admin API rely on: an e-mail address (and a user_id) is held by one
account; lists come oldest first with the totals of what matches; disabling an account or
changing its password ends its sessions, a rehash does not; a session is found only while its
idle deadline and its absolute age allow and its user is active, with the user joined; expired
sessions are cleaned up when a new one is made; an admin key's digest is held by one key,
revoking it takes effect once, and ``touch`` never moves ``last_used_at`` back.
"""

from __future__ import annotations

import asyncio

import pytest

from openplatform.records import ACTIVE, DISABLED, METRICS, AdminKey, DuplicateEmail, User, WebSession
from tests.storage.side_stores import REFUSED, START, Side

HOUR = 3600.0
DAY = 86400.0


def draft(user_id: str, email: str, role: str = "developer", xspe: str | None = None) -> User:
    """A user as the service hands it over: status and counters are the store's to set."""
    return User(user_id, email, role, xspe, "whatever", 7, 123.0, 0.0, password_hash="$argon2id$" + user_id)


async def new_session(side: Side, digest: str, user_id: str, idle: float = HOUR) -> None:
    await side.accounts.create_session(digest, user_id, "csrf-" + digest, side.clock() + idle)


# -------------------------------------------------------------------- users


async def test_a_new_user_is_active_and_found_by_id_and_by_email(side: Side) -> None:
    await side.add_spe("spe_a")
    created = await side.accounts.create_user(draft("usr_1", "ann@example.com", "spe-admin", "spe_a"))
    assert created == User(
        "usr_1", "ann@example.com", "spe-admin", "spe_a", ACTIVE, 0, None, START, password_hash="$argon2id$usr_1"
    )
    assert await side.accounts.get_user("usr_1") == created
    assert await side.accounts.find_by_email("ann@example.com") == created
    assert await side.accounts.find_by_email("ANN@example.com") is None  # callers case-fold; the store matches exactly
    assert await side.accounts.get_user("usr_2") is None


@pytest.mark.parametrize(
    "second",
    [
        draft("usr_2", "ann@example.com"),
        draft("usr_1", "bob@example.com"),
        draft("usr_2", "bob@example.com", "spe-admin", "spe_none"),
    ],
    ids=["same-email", "same-user-id", "unknown-spe"],
)
async def test_a_taken_email_or_id_or_an_unknown_spe_is_refused_as_a_duplicate(side: Side, second: User) -> None:
    first = await side.accounts.create_user(draft("usr_1", "ann@example.com"))
    with pytest.raises(DuplicateEmail):
        await side.accounts.create_user(second)
    assert await side.accounts.list_users() == [first]


async def test_users_are_listed_oldest_first_and_paged_per_spe_with_totals(side: Side) -> None:
    for xspe in ("spe_a", "spe_b"):
        await side.add_spe(xspe)
    made = {}
    for user_id, xspe in [("usr_5", "spe_a"), ("usr_3", "spe_b"), ("usr_4", "spe_a"), ("usr_1", None)]:
        made[user_id] = await side.accounts.create_user(draft(user_id, f"{user_id}@example.com", "spe-admin", xspe))
        side.clock.advance(1)
    assert [u.user_id for u in await side.accounts.list_users()] == ["usr_5", "usr_3", "usr_4", "usr_1"]
    page, total = await side.accounts.users_page("spe_a", 1, 1)
    assert (page, total) == ([made["usr_4"]], 2)
    page, total = await side.accounts.users_page(None, 2, 1)
    assert ([u.user_id for u in page], total) == (["usr_3", "usr_4"], 4)
    assert await side.accounts.users_page("spe_b", 10, 5) == ([], 1)  # past the end: no rows, the same total
    assert await side.accounts.users_page("spe_none", 10, 0) == ([], 0)


async def test_users_made_at_the_same_time_are_paged_by_user_id(side: Side) -> None:
    for user_id in ("usr_c", "usr_a", "usr_b"):
        await side.accounts.create_user(draft(user_id, f"{user_id}@example.com"))
    page, total = await side.accounts.users_page(None, 2, 0)
    assert ([u.user_id for u in page], total) == (["usr_a", "usr_b"], 3)


async def test_emails_are_given_for_the_users_that_exist(side: Side) -> None:
    await side.accounts.create_user(draft("usr_1", "ann@example.com"))
    await side.accounts.create_user(draft("usr_2", "bob@example.com"))
    found = await side.accounts.emails({"usr_1", "usr_2", "usr_9"})
    assert found == {"usr_1": "ann@example.com", "usr_2": "bob@example.com"}
    assert await side.accounts.emails(set()) == {}


async def test_a_lock_out_is_stored_and_cleared_and_keeps_the_sessions(side: Side) -> None:
    await side.accounts.create_user(draft("usr_1", "ann@example.com"))
    await new_session(side, "d1", "usr_1")
    await side.accounts.update_user("usr_1", locked_until=START + 900, failed_logins=3)
    user = await side.accounts.get_user("usr_1")
    assert (user.locked_until, user.failed_logins) == (START + 900, 3)
    await side.accounts.update_user("usr_1", failed_logins=0, locked_until=None)
    user = await side.accounts.get_user("usr_1")
    assert (user.locked_until, user.failed_logins, user.email) == (None, 0, "ann@example.com")
    assert await side.accounts.count_sessions("usr_1") == 1
    await side.accounts.update_user("usr_9", locked_until=START)  # no such user: nothing happens
    assert await side.accounts.get_user("usr_9") is None


@pytest.mark.parametrize(
    "change",
    [{"status": DISABLED}, {"password_hash": "$argon2id$new"}, {"password_hash": "$argon2id$new", "failed_logins": 0}],
    ids=["disabled", "new-password", "reset-password"],
)
async def test_disabling_a_user_or_a_new_password_ends_their_sessions_only(
    side: Side, change: dict[str, object]
) -> None:
    for user_id in ("usr_1", "usr_2"):
        await side.accounts.create_user(draft(user_id, f"{user_id}@example.com"))
    for digest, user_id in [("d1", "usr_1"), ("d2", "usr_1"), ("d3", "usr_2")]:
        await new_session(side, digest, user_id)
    await side.accounts.update_user("usr_1", **change)
    assert await side.accounts.count_sessions("usr_1") == 0
    assert await side.accounts.get_session("d1", DAY) is None
    assert (await side.accounts.get_session("d3", DAY)).user.user_id == "usr_2"
    user = await side.accounts.get_user("usr_1")
    assert all(getattr(user, column) == value for column, value in change.items())


async def test_enabling_a_user_keeps_their_sessions_and_a_rehash_keeps_them_too(side: Side) -> None:
    await side.accounts.create_user(draft("usr_1", "ann@example.com"))
    await new_session(side, "d1", "usr_1")
    await side.accounts.update_user("usr_1", status=ACTIVE)
    await side.accounts.store_rehash("usr_1", "$argon2id$stronger")
    assert (await side.accounts.get_user("usr_1")).password_hash == "$argon2id$stronger"
    found = await side.accounts.get_session("d1", DAY)
    assert found is not None and found.user.password_hash == "$argon2id$stronger"


# ----------------------------------------------------------------- sessions


async def test_a_session_is_found_with_its_user_joined(side: Side) -> None:
    user = await side.accounts.create_user(draft("usr_1", "ann@example.com"))
    await new_session(side, "d1", "usr_1")
    side.clock.advance(60)
    assert await side.accounts.get_session("d1", DAY) == WebSession("d1", user, "csrf-d1", START + HOUR, START)
    assert await side.accounts.get_session("d2", DAY) is None


async def test_a_session_ends_at_its_idle_deadline_unless_touched(side: Side) -> None:
    await side.accounts.create_user(draft("usr_1", "ann@example.com"))
    await new_session(side, "d1", "usr_1", idle=600)
    await new_session(side, "d2", "usr_1", idle=600)
    side.clock.advance(300)
    await side.accounts.touch_session("d1", side.clock() + 600)
    side.clock.advance(300)  # d2's deadline is now: it has passed (the deadline is exclusive)
    assert await side.accounts.get_session("d2", DAY) is None
    found = await side.accounts.get_session("d1", DAY)
    assert found is not None and found.expires_at == START + 900
    await side.accounts.touch_session("d9", START + 900)  # no such session: nothing happens


async def test_a_session_ends_at_its_absolute_age_however_recently_touched(side: Side) -> None:
    await side.accounts.create_user(draft("usr_1", "ann@example.com"))
    await new_session(side, "d1", "usr_1", idle=DAY)
    side.clock.advance(HOUR - 1)
    assert await side.accounts.get_session("d1", HOUR) is not None
    side.clock.advance(1)  # made exactly max_age ago: over
    assert await side.accounts.get_session("d1", HOUR) is None
    assert await side.accounts.get_session("d1", 2 * HOUR) is not None


async def test_a_disabled_users_session_is_not_found(side: Side) -> None:
    await side.accounts.create_user(draft("usr_1", "ann@example.com"))
    await new_session(side, "d1", "usr_1")
    await side.accounts.update_user("usr_1", status=DISABLED)
    await new_session(side, "d2", "usr_1")  # made after the disabling (a race lost by the sign-in)
    assert await side.accounts.get_session("d2", DAY) is None
    assert await side.accounts.count_sessions("usr_1") == 1


async def test_a_deleted_session_is_gone(side: Side) -> None:
    await side.accounts.create_user(draft("usr_1", "ann@example.com"))
    await new_session(side, "d1", "usr_1")
    await new_session(side, "d2", "usr_1")
    await side.accounts.delete_session("d1")
    await side.accounts.delete_session("d9")
    assert await side.accounts.get_session("d1", DAY) is None
    assert await side.accounts.count_sessions("usr_1") == 1


async def test_a_new_session_cleans_up_the_sessions_whose_deadline_has_passed(side: Side) -> None:
    for user_id in ("usr_1", "usr_2"):
        await side.accounts.create_user(draft(user_id, f"{user_id}@example.com"))
    await new_session(side, "gone", "usr_1", idle=60)
    await new_session(side, "edge", "usr_1", idle=120)
    await new_session(side, "live", "usr_1", idle=HOUR)
    side.clock.advance(120)
    assert await side.accounts.count_sessions("usr_1") == 3  # expired rows count until cleaned up
    await new_session(side, "new", "usr_2")
    assert await side.accounts.count_sessions("usr_1") == 2  # "edge" expires exactly now: kept (strictly before)
    assert await side.accounts.count_sessions("usr_2") == 1


async def test_a_session_for_no_user_or_on_a_live_sessions_digest_is_refused(side: Side) -> None:
    await side.accounts.create_user(draft("usr_1", "ann@example.com"))
    await new_session(side, "d1", "usr_1", idle=60)
    with pytest.raises(REFUSED):
        await new_session(side, "d2", "usr_9")
    with pytest.raises(REFUSED):
        await side.accounts.create_session("d1", "usr_1", "other", START + HOUR)
    assert (await side.accounts.get_session("d1", DAY)).csrf_token == "csrf-d1"
    side.clock.advance(61)  # d1 has expired: the clean-up before the insert frees its digest
    await side.accounts.create_session("d1", "usr_1", "again", side.clock() + HOUR)
    assert (await side.accounts.get_session("d1", DAY)).csrf_token == "again"


# --------------------------------------------------------------- admin keys


async def test_admin_keys_are_listed_oldest_first_revoked_ones_included(side: Side) -> None:
    await side.add_spe("spe_a")
    first = await side.admin_keys.create("key_b", "ops", None, "digest-1")
    same_time = await side.admin_keys.create("key_a", "spe", "spe_a", "digest-2")
    side.clock.advance(5)
    metrics = await side.admin_keys.create("key_0", "scraper", None, "digest-3", METRICS)
    assert first == AdminKey("key_b", "ops", None, START)
    assert metrics == AdminKey("key_0", "scraper", None, START + 5, scope=METRICS) and metrics.metrics_only
    assert await side.admin_keys.revoke("key_b")
    revoked = AdminKey("key_b", "ops", None, START, revoked_at=START + 5)
    assert await side.admin_keys.list_keys() == [same_time, revoked, metrics]


@pytest.mark.parametrize(
    ("key_id", "digest", "xspe"),
    [("key_1", "digest-2", None), ("key_2", "digest-1", None), ("key_2", "digest-2", "spe_none")],
    ids=["same-key-id", "same-digest", "unknown-spe"],
)
async def test_a_taken_key_id_or_digest_or_an_unknown_spe_is_refused(
    side: Side, key_id: str, digest: str, xspe: str | None
) -> None:
    first = await side.admin_keys.create("key_1", "ops", None, "digest-1")
    with pytest.raises(REFUSED):
        await side.admin_keys.create(key_id, "another", xspe, digest)
    assert await side.admin_keys.list_keys() == [first]


async def test_a_key_is_found_by_its_digest_until_revoked_and_revoked_once(side: Side) -> None:
    key = await side.admin_keys.create("key_1", "ops", None, "digest-1")
    assert await side.admin_keys.live_by_digest("digest-1") == key
    assert await side.admin_keys.live_by_digest("digest-9") is None
    side.clock.advance(10)
    outcomes = await asyncio.gather(*(side.admin_keys.revoke("key_1") for _ in range(5)))
    assert outcomes.count(True) == 1
    assert await side.admin_keys.live_by_digest("digest-1") is None
    assert (await side.admin_keys.list_keys())[0].revoked_at == START + 10
    assert not await side.admin_keys.revoke("key_9")


async def test_touch_moves_the_last_use_forward_only(side: Side) -> None:
    await side.admin_keys.create("key_1", "ops", None, "digest-1")
    await side.admin_keys.touch("key_1", START + 60)
    await side.admin_keys.touch("key_1", START + 30)  # a slower process's older use
    assert (await side.admin_keys.live_by_digest("digest-1")).last_used_at == START + 60
    await side.admin_keys.touch("key_1", START + 120)
    await side.admin_keys.touch("key_9", START + 120)  # no such key: nothing happens
    assert [k.last_used_at for k in await side.admin_keys.list_keys()] == [START + 120]
