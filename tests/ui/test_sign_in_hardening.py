"""Sign-in hardening (SPEC §9, issue 9 finding 2): a per-IP limit on /login, lock-out per
(account, IP), at most 4 argon2 computations at once, the same cost for unknown e-mails."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from openplatform.core.ratelimit import RateLimiter
from openplatform.services import accounts
from openplatform.services.accounts import MAX_CONCURRENT_HASHES, MAX_FAILED_SIGN_INS, WRONG, HashGate
from tests.conftest import REDIS_URL, Harness, need, port_open
from tests.ui.conftest import MakePerson
from tests.ui.support import PASSWORD, make_user, sign_in

HOME = "203.0.113.10"  # the attacker's address, or the user's own
ELSEWHERE = "198.51.100.20"


def error_of(html: str) -> str:
    start = html.index('id="sign-in-error">') + len('id="sign-in-error">')
    return html[start : html.index("</p>", start)]


async def lock(harness: Harness, email: str, ip: str) -> None:
    for attempt in range(MAX_FAILED_SIGN_INS):
        answer = await sign_in(harness, email, "not the password", ip=ip)
        assert answer.status_code == 200
        assert ("locked" in error_of(answer.text)) == (attempt == MAX_FAILED_SIGN_INS - 1)


@pytest.mark.parametrize("settings_overrides", [{"rate_limits": "default"}])
async def test_login_takes_20_attempts_per_5_minutes_from_one_address(harness: Harness) -> None:
    harness.platform.limiter = RateLimiter("default", clock=harness.clock)
    for n in range(20):  # a password spray: a different account each time, so no lock-out
        answer = await sign_in(harness, f"victim{n}@example.com", PASSWORD, ip=HOME)
        assert answer.status_code == 200 and error_of(answer.text) == WRONG
    limited = await sign_in(harness, "victim20@example.com", PASSWORD, ip=HOME)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) == 15  # 20 per 300 s: the next one in 15 s
    assert "Too many sign-in attempts from your address" in error_of(limited.text)
    assert limited.headers["content-security-policy"] and limited.headers["cache-control"] == "no-store"
    await make_user(harness, "dev@example.com", "developer")
    assert (await sign_in(harness, "dev@example.com", ip=ELSEWHERE)).status_code == 303  # others are not held up
    assert (await sign_in(harness, "dev@example.com", ip=HOME)).status_code == 429  # even the right password
    harness.clock.advance(15)
    assert (await sign_in(harness, "dev@example.com", ip=HOME)).status_code == 303


@pytest.mark.parametrize("settings_overrides", [{"rate_limits": "login=2/60"}])
async def test_the_login_limit_is_configurable(harness: Harness) -> None:
    answers = [await sign_in(harness, "nobody@example.com", "wrong password", ip=HOME) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["retry-after"] == "30"


async def test_nobody_locks_an_account_from_another_address(harness: Harness, people: MakePerson) -> None:
    """The rate limits are off in this harness; the lock-out is not (it protects accounts)."""
    root = await make_user(harness, "root@example.com", "admin")
    await lock(harness, "root@example.com", HOME)
    assert "locked from your address" in error_of((await sign_in(harness, "root@example.com", ip=HOME)).text)
    elsewhere = await sign_in(harness, "root@example.com", ip=ELSEWHERE)  # the right password from elsewhere
    assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/admin"
    assert "locked" in error_of((await sign_in(harness, "root@example.com", ip=HOME)).text)  # still, from there
    # The admin sees the lock-out and lifts it.
    other_admin = await people("ops@example.com", "admin")
    listing = await other_admin.get("/admin/users")
    assert f"/admin/users/{root.user_id}/unlock" in listing.text
    assert (await other_admin.post(f"/admin/users/{root.user_id}/unlock")).status_code == 303
    assert (await sign_in(harness, "root@example.com", ip=HOME)).status_code == 303


async def test_a_right_password_restarts_the_count_for_that_address(harness: Harness) -> None:
    await make_user(harness, "dev@example.com", "developer")
    for _ in range(3):
        for _ in range(MAX_FAILED_SIGN_INS - 1):
            assert error_of((await sign_in(harness, "dev@example.com", "wrong password", ip=HOME)).text) == WRONG
        assert (await sign_in(harness, "dev@example.com", ip=HOME)).status_code == 303


async def test_the_lock_out_refills_one_try_every_3_minutes(harness: Harness) -> None:
    harness.platform.limiter = RateLimiter("off", clock=harness.clock)
    await make_user(harness, "dev@example.com", "developer")
    await lock(harness, "dev@example.com", HOME)
    harness.clock.advance(179)
    assert "1 more minute" in error_of((await sign_in(harness, "dev@example.com", ip=HOME)).text)
    harness.clock.advance(2)
    assert (await sign_in(harness, "dev@example.com", ip=HOME)).status_code == 303


async def test_unknown_e_mails_look_exactly_like_known_ones(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same message, same lock-out, and the same argon2 verification (against a dummy hash made with
    the same parameters), so neither the page nor the time tells which addresses have accounts."""
    checked: list[str] = []
    real = accounts._verify

    def counting(with_hasher: Any, password_hash: str, password: str) -> bool:
        checked.append(password_hash)
        return real(with_hasher, password_hash, password)

    monkeypatch.setattr(accounts, "_verify", counting)
    user = await make_user(harness, "dev@example.com", "developer")
    pages: dict[str, list[str]] = {}
    for email in ("dev@example.com", "nobody@example.com"):
        checked.clear()
        pages[email] = []
        for _ in range(MAX_FAILED_SIGN_INS + 2):
            answer = await sign_in(harness, email, "not the password", ip=HOME)
            assert answer.status_code == 200
            pages[email].append(error_of(answer.text))
        # one verification per attempt until the lock-out, none while locked
        assert len(checked) == MAX_FAILED_SIGN_INS, email
        known = email == "dev@example.com"
        assert all((h == user.password_hash) == known for h in checked)
    assert pages["dev@example.com"] == pages["nobody@example.com"]
    dummy = accounts._dummy_hash(accounts.hasher)
    from argon2 import extract_parameters

    assert extract_parameters(dummy) == extract_parameters(user.password_hash)


async def until(condition: Callable[[], bool], within: float = 60.0) -> None:
    """Wait for what other tasks and threads make true (a guard against a hang, not a measurement)."""
    for _ in range(int(within * 100)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("it never happened")


async def test_at_most_4_argon2_verifications_at_once(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of 12 sign-ins (known and unknown e-mails): the ones that run (4, or a core fewer than
    the machine has: MAX_CONCURRENT_HASHES) are held inside argon2, and the others wait at the gate,
    not in a thread; the token endpoint still answers meanwhile."""
    limit = MAX_CONCURRENT_HASHES
    assert 1 <= limit <= 4
    gate = HashGate(MAX_CONCURRENT_HASHES)
    monkeypatch.setattr(accounts, "hash_gate", gate)
    release = threading.Event()
    lock_ = threading.Lock()
    inside = {"now": 0, "most": 0}
    real = accounts._verify

    def held(with_hasher: Any, password_hash: str, password: str) -> bool:
        with lock_:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        try:
            assert release.wait(60)
            return real(with_hasher, password_hash, password)
        finally:
            with lock_:
                inside["now"] -= 1

    monkeypatch.setattr(accounts, "_verify", held)
    world = await harness.world()
    for n in range(0, 12, 2):
        await make_user(harness, f"user{n}@example.com", "developer")
    flood = [
        asyncio.create_task(sign_in(harness, f"user{n}@example.com", "wrong password", ip=f"10.0.0.{n + 1}"))
        for n in range(12)
    ]
    try:
        await until(lambda: gate.running + gate.waiting == len(flood))  # every sign-in has reached argon2
        await until(lambda: inside["now"] == limit)  # and the threads have started
        assert (gate.running, gate.waiting) == (limit, 12 - limit)
        assert await harness.app_token(world)  # the token endpoint is not held up by the flood
    finally:
        release.set()
    answers = await asyncio.gather(*flood)
    assert all(a.status_code == 200 and error_of(a.text) == WRONG for a in answers)
    assert inside["most"] == gate.peak == limit


def on_redis(rate_limits: str) -> list[dict[str, Any]]:
    return [{"redis_url": REDIS_URL, "rate_limits": rate_limits}]


async def other_node(settings: Any) -> Harness:
    """Another server's worth of app on the same database and Redis (started by the caller)."""
    from openplatform.web.app import create_app

    need(port_open("127.0.0.1", 6379), "Redis is not reachable on 127.0.0.1:6379")
    app = create_app(settings)
    return Harness(app, None, None)  # type: ignore[arg-type]  # only .app is used, by sign_in


def fresh(prefix: str) -> tuple[str, str]:
    """An e-mail and an address never used before: Redis outlives the test database."""
    tag = uuid.uuid4()
    return f"{prefix}-{tag.hex[:10]}@example.com", f"10.{tag.int % 250}.{(tag.int >> 8) % 250}.{(tag.int >> 16) % 250}"


@pytest.mark.sql  # the account is read by two nodes on one database: each memory:// node would have its own
@pytest.mark.parametrize("settings_overrides", on_redis("default"))
async def test_with_redis_a_lock_out_holds_on_every_node_and_an_unlock_lifts_it_everywhere(
    harness: Harness, people: MakePerson, settings: Any
) -> None:
    email, ip = fresh("dev")
    user = await make_user(harness, email, "developer")
    node_b = await other_node(settings)
    async with node_b.app.router.lifespan_context(node_b.app):
        for attempt in range(MAX_FAILED_SIGN_INS):
            node = harness if attempt % 2 else node_b
            answer = await sign_in(node, email, "wrong password", ip=ip)
            assert ("locked" in error_of(answer.text)) == (attempt == MAX_FAILED_SIGN_INS - 1)
        for node in (harness, node_b):
            assert "locked from your address" in error_of((await sign_in(node, email, ip=ip)).text)
        admin = await people(fresh("root")[0], "admin")
        assert (await admin.post(f"/admin/users/{user.user_id}/unlock")).status_code == 303
        assert (await sign_in(node_b, email, ip=ip)).status_code == 303


@pytest.mark.parametrize("settings_overrides", on_redis("login=2/60"))
async def test_with_redis_the_login_limit_is_shared_by_the_nodes(harness: Harness, settings: Any) -> None:
    email, ip = fresh("nobody")
    node_b = await other_node(settings)
    async with node_b.app.router.lifespan_context(node_b.app):
        answers = [await sign_in(node, email, "wrong password", ip=ip) for node in (harness, node_b, harness)]
    assert [a.status_code for a in answers] == [200, 200, 429]
