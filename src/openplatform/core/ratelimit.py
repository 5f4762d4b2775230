"""Rate limits on the token endpoints, ``/login`` and admin keys; lock-outs after repeated bad secrets or passwords.

``OPENPLATFORM_RATE_LIMITS`` is ``off``, ``default``, or a comma list of
``name=COUNT/SECONDS`` overriding the defaults below. Each limit is a token
bucket: COUNT requests at once, refilled at COUNT per SECONDS. ``RateLimiter``
keeps the buckets in the process; with ``OPENPLATFORM_REDIS_URL`` set,
``openplatform.storage.redis_limits.RedisRateLimiter`` keeps them in Redis so
the limits hold across every node.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from openplatform.errors import OAuthError

DEFAULTS = {
    "ip": (300, 60.0),  # token-endpoint requests per client IP
    "app": (600, 60.0),  # token-endpoint requests per app
    "bad_secret": (10, 300.0),  # failed secrets per app and IP before lock-out
    "login": (20, 300.0),  # sign-in attempts (POST /login) per client IP
    "login_failures": (5, 900.0),  # wrong passwords per (account, IP): the sign-in lock-out
    "admin": (100, 2.0),  # admin API and /metrics requests per admin key: 50 a second, bursts of 100
}
# Kept under "off" too: the sign-in lock-out protects accounts, it is not a request budget.
ALWAYS_ON = ("login_failures",)
MAX_KEYS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class Limit:
    def __init__(self, capacity: int, seconds: float, clock: Callable[[], float]) -> None:
        self.capacity = capacity
        self.rate = capacity / seconds
        self.clock = clock
        self.buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str) -> _Bucket:
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= MAX_KEYS:
                self.buckets.clear()
            bucket = self.buckets[key] = _Bucket(float(self.capacity), now)
        else:
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        return bucket

    def retry_after(self, key: str) -> int:
        """0 if a request may go now, else whole seconds to wait."""
        bucket = self._bucket(key)
        return 0 if bucket.tokens >= 1 else max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def take(self, key: str) -> int:
        wait = self.retry_after(key)
        if wait == 0:
            self.buckets[key].tokens -= 1
        return wait


def parse_limits(spec: str) -> dict[str, tuple[int, float]] | None:
    spec = spec.strip().lower()
    if spec == "off":
        return None
    limits = dict(DEFAULTS)
    if spec in ("", "default"):
        return limits
    for item in spec.split(","):
        name, _, value = item.partition("=")
        count, _, seconds = value.partition("/")
        name = name.strip()
        if name not in DEFAULTS or not count.strip().isdigit():
            names = ", ".join(sorted(DEFAULTS))
            raise ValueError(f"bad rate limit {item!r}: use name=COUNT/SECONDS with name in {names}")
        limits[name] = (int(count), float(seconds or 1))
    return limits


def active_limits(spec: str) -> tuple[bool, dict[str, tuple[int, float]]]:
    """Whether the request limits are on, and every limit in force (``ALWAYS_ON`` ones even when off)."""
    limits = parse_limits(spec)
    if limits is None:
        return False, {name: DEFAULTS[name] for name in ALWAYS_ON}
    return True, limits


def limited(wait: int) -> OAuthError:
    return OAuthError("rate_limited", headers={"Retry-After": str(wait)})


class Limiter(Protocol):
    # False with the request limits off: check_request, charge_app and charge_bad_secret then do
    # nothing, and core.client_auth does not await them at all (the token endpoints' hot path).
    # ``take`` and ``forget`` still answer for the limits kept on (``ALWAYS_ON``).
    enabled: bool

    async def check_request(self, ip: str, app_id: str | None) -> None: ...
    async def charge_app(self, app_id: str) -> None: ...
    async def charge_bad_secret(self, ip: str, app_id: str) -> None: ...
    async def take(self, name: str, key: str, spend: bool = True) -> int: ...
    async def forget(self, name: str, key: str, prefix: bool = False) -> None: ...
    async def close(self) -> None: ...


class RateLimiter:
    """Token buckets in this process."""

    def __init__(self, spec: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled, limits = active_limits(spec)
        self.limits = {name: Limit(c, s, clock) for name, (c, s) in limits.items()}

    async def check_request(self, ip: str, app_id: str | None) -> None:
        """Before the secret is checked (SPEC §9): the caller's IP budget, and the bad-secret
        lock-out of the (IP, app_id) pair. Raises 42901."""
        if not self.enabled:
            return
        if wait := self.limits["ip"].take(ip):
            raise limited(wait)
        if app_id and (wait := self.limits["bad_secret"].retry_after(f"{app_id}|{ip}")):
            raise limited(wait)

    async def charge_app(self, app_id: str) -> None:
        """The app's own budget, charged only once its secret is verified (SPEC §9). Raises 42901."""
        if self.enabled and (wait := self.limits["app"].take(app_id)):
            raise limited(wait)

    async def charge_bad_secret(self, ip: str, app_id: str) -> None:
        """A secret of the (IP, app_id) pair refused, counted towards its lock-out before anything
        more is read for it (SPEC §9). Raises 42901 when the pair is locked out (nothing counted)."""
        if self.enabled and (wait := self.limits["bad_secret"].take(f"{app_id}|{ip}")):
            raise limited(wait)

    async def take(self, name: str, key: str, spend: bool = True) -> int:
        """One request on the bucket ``name``/``key``: 0 (spent, unless ``spend`` is false) or the
        whole seconds to wait (nothing spent). Always 0 for a limit that is off."""
        limit = self.limits.get(name)
        if limit is None:
            return 0
        return limit.take(key) if spend else limit.retry_after(key)

    async def forget(self, name: str, key: str, prefix: bool = False) -> None:
        """Refill the bucket ``name``/``key`` (with ``prefix``: every bucket whose key starts so)."""
        limit = self.limits.get(name)
        if limit is not None:
            for found in [k for k in limit.buckets if k.startswith(key)] if prefix else [key]:
                limit.buckets.pop(found, None)

    async def close(self) -> None:
        return None
