"""Client authentication reads the app past the cache only behind the bad-secret lock-out (SPEC §9).

Before refusing a secret, ``core.client_auth.identify`` reads the app from the database, in case the
cache predates a new secret (docs/deployment.md, Caches and revocation). That read is made only
after the refusal was counted towards the (IP, app_id) lock-out: wrong secrets sent together, all
past ``check_request`` before any was counted, made one database read each; now the lock-out
stops them at its count, before the read.
"""

from __future__ import annotations

import asyncio

import pytest

from openplatform.config import Settings
from openplatform.core.client_auth import authenticate, identify
from openplatform.core.context import Platform
from openplatform.core.ratelimit import RateLimiter
from openplatform.core.requests import TokenRequest
from openplatform.errors import OAuthError
from openplatform.models import ACTIVE, App, AppSecret
from openplatform.security import Keyring
from openplatform.storage.memory import MemoryStore
from tests.conftest import TEST_SECRET_KEY, FakeClock

IP = "203.0.113.7"
LOCK_OUT = 3  # bad secrets per (IP, app_id) before 42901
RACING = 20


class ReadCountingStore(MemoryStore):
    """The memory backend, counting the reads past a cache (``fresh=True``)."""

    fresh_reads = 0

    async def get_app(self, app_id: str, fresh: bool = False) -> App | None:
        self.fresh_reads += fresh
        return await super().get_app(app_id)


def platform_with_app(store: ReadCountingStore) -> tuple[Platform[ReadCountingStore], str]:
    clock = FakeClock()
    settings = Settings(secret_key=TEST_SECRET_KEY)
    keyring = Keyring(settings.resolved_secret_key(), settings.old_secret_key_list)
    limiter = RateLimiter(f"ip=1000/60,bad_secret={LOCK_OUT}/300", clock=clock)
    app_id = "a" * 32
    secrets = (AppSecret(keyring.secret_hash(app_id, "5" * 64), None),)
    store.put_app(App(app_id, "App", "https://app.example.com/", ACTIVE, ("customer:read",), (), secrets=secrets))
    return Platform(settings, store, keyring, limiter, clock=clock), app_id


async def answer(platform: Platform[ReadCountingStore], params: dict[str, str]) -> int:
    try:
        await identify(platform, TokenRequest(params, IP))
    except OAuthError as refused:
        return refused.code
    return 0


@pytest.mark.parametrize("known", [True, False], ids=["wrong secret", "unknown app"])
async def test_refusals_sent_together_read_the_app_only_as_often_as_the_lock_out_allows(known: bool) -> None:
    """An unknown app_id is counted and read as a wrong secret is: one answer, one timing (SPEC §9)."""
    store = ReadCountingStore()
    platform, app_id = platform_with_app(store)
    refused = {"app_id": app_id if known else "b" * 32, "secret": "0" * 64}
    codes = await asyncio.gather(*(answer(platform, refused) for _ in range(RACING)))
    assert sorted(codes) == [40101] * LOCK_OUT + [42901] * (RACING - LOCK_OUT)
    assert store.fresh_reads == LOCK_OUT


async def test_the_right_secret_reads_nothing_past_the_cache_and_counts_nothing() -> None:
    store = ReadCountingStore()
    platform, app_id = platform_with_app(store)
    right = {"app_id": app_id, "secret": "5" * 64}
    codes = await asyncio.gather(*(answer(platform, right) for _ in range(RACING)))
    assert codes == [0] * RACING
    assert store.fresh_reads == 0
    wrong = {"app_id": app_id, "secret": "0" * 64}
    assert [await answer(platform, wrong) for _ in range(LOCK_OUT + 1)] == [40101] * LOCK_OUT + [42901]


class CallCountingLimiter(RateLimiter):
    """The in-process limiter, counting the token endpoints' calls on it."""

    def __init__(self, spec: str, clock: FakeClock) -> None:
        super().__init__(spec, clock=clock)
        self.calls: list[str] = []

    async def check_request(self, ip: str, app_id: str | None) -> None:
        self.calls.append("check_request")
        await super().check_request(ip, app_id)

    async def charge_app(self, app_id: str) -> None:
        self.calls.append("charge_app")
        await super().charge_app(app_id)

    async def charge_bad_secret(self, ip: str, app_id: str) -> None:
        self.calls.append("charge_bad_secret")
        await super().charge_bad_secret(ip, app_id)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("off", []),  # nothing awaited on the hot path (issue 14)
        ("default", ["check_request", "charge_app", "check_request", "charge_bad_secret"]),
    ],
)
async def test_the_limiter_is_asked_only_when_the_limits_are_on(spec: str, expected: list[str]) -> None:
    store = ReadCountingStore()
    platform, app_id = platform_with_app(store)
    platform.limiter = limiter = CallCountingLimiter(spec, FakeClock())
    request = TokenRequest({"app_id": app_id, "secret": "5" * 64}, IP)
    await authenticate(platform, request)
    assert await answer(platform, {"app_id": app_id, "secret": "0" * 64}) == 40101
    assert limiter.calls == expected
