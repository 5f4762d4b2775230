"""Rate limits kept in Redis, so they hold across every node (SPEC §7).

The same token buckets as ``core.ratelimit.RateLimiter``, evaluated by one Lua
script per request (one round trip, atomic, on Redis's clock so nodes' clocks
do not matter). If Redis cannot be reached the request is refused with 50301:
limits that cannot be checked are not silently dropped.
"""

from __future__ import annotations

from typing import Any

from openplatform.core.ratelimit import active_limits, limited
from openplatform.errors import StorageUnavailable

# KEYS: bucket keys. ARGV: for each key, capacity, rate (tokens/s) and mode
# (1 = take a token, 0 = only look). Returns 0, or the seconds to wait for the
# first bucket that is empty (later buckets are then left untouched).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[i * 3 - 2])
  local rate = tonumber(ARGV[i * 3 - 1])
  local take = tonumber(ARGV[i * 3])
  local b = redis.call('HMGET', key, 't', 's')
  local tokens = tonumber(b[1]) or capacity
  local stamp = tonumber(b[2]) or now
  tokens = math.min(capacity, tokens + (now - stamp) * rate)
  if tokens < 1 then
    return math.max(1, math.ceil((1 - tokens) / rate))
  end
  if take == 1 then tokens = tokens - 1 end
  redis.call('HSET', key, 't', tostring(tokens), 's', tostring(now))
  redis.call('EXPIRE', key, math.ceil(capacity / rate) + 1)
end
return 0
"""
PREFIX = "openplatform:rl:"


class RedisRateLimiter:
    def __init__(self, spec: str, redis_url: str) -> None:
        import redis.asyncio as redis

        self.enabled, self.limits = active_limits(spec)
        self.client: Any = redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.script = self.client.register_script(_SCRIPT)

    async def _run(self, buckets: list[tuple[str, str, int]]) -> int:
        keys: list[str] = []
        args: list[float] = []
        for name, key, take in buckets:
            capacity, seconds = self.limits[name]
            keys.append(f"{PREFIX}{name}:{key}")
            args += [capacity, capacity / seconds, take]
        try:
            return int(await self.script(keys=keys, args=args))
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise StorageUnavailable(f"redis: {exc}") from exc
        except Exception as exc:
            import redis

            if isinstance(exc, redis.RedisError):
                raise StorageUnavailable(f"redis: {exc}") from exc
            raise

    async def check_request(self, ip: str, app_id: str | None) -> None:
        if not self.enabled:
            return
        buckets = [("ip", ip, 1)]
        if app_id:
            buckets.append(("bad_secret", f"{app_id}|{ip}", 0))
        if wait := await self._run(buckets):
            raise limited(wait)

    async def charge_app(self, app_id: str) -> None:
        if self.enabled and (wait := await self._run([("app", app_id, 1)])):
            raise limited(wait)

    async def charge_bad_secret(self, ip: str, app_id: str) -> None:
        """Like ``RateLimiter.charge_bad_secret``: counted, or 42901 when the pair is locked out."""
        if self.enabled and (wait := await self._run([("bad_secret", f"{app_id}|{ip}", 1)])):
            raise limited(wait)

    async def take(self, name: str, key: str, spend: bool = True) -> int:
        """Like ``RateLimiter.take``: 0, or the whole seconds to wait."""
        if name not in self.limits:
            return 0
        return await self._run([(name, key, 1 if spend else 0)])

    async def forget(self, name: str, key: str, prefix: bool = False) -> None:
        """Like ``RateLimiter.forget``; a prefix is found with SCAN (rare: an admin's unlock)."""
        if name not in self.limits:
            return
        full = f"{PREFIX}{name}:{key}"
        try:
            if not prefix:
                await self.client.delete(full)
                return
            async for found in self.client.scan_iter(match=_glob_escape(full) + "*", count=1000):
                await self.client.delete(found)
        except Exception as exc:
            import redis

            if isinstance(exc, OSError | redis.RedisError):
                raise StorageUnavailable(f"redis: {exc}") from exc
            raise

    async def close(self) -> None:
        await self.client.aclose()


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
