"""Wiring: build the store, platform and admin services from Settings."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from openplatform.config import Settings
from openplatform.core.context import Platform
from openplatform.core.ratelimit import Limiter, RateLimiter
from openplatform.security import Keyring
from openplatform.services.admin import Admin
from openplatform.storage.cache import CachedStore
from openplatform.storage.sql.driver import Driver
from openplatform.storage.sql.manage import Announce, Management, make_engine
from openplatform.storage.sql.postgres import PostgresDriver
from openplatform.storage.sql.sqlite import SqliteDriver
from openplatform.storage.sql.store import SqlStore

if TYPE_CHECKING:
    from openplatform.storage.redis_fanout import RedisFanout


def make_driver(settings: Settings) -> Driver:
    if settings.is_sqlite:
        return SqliteDriver(settings.sqlite_path, settings.sqlite_synchronous)
    return PostgresDriver(settings.postgres_dsn, settings.postgres_pool_size)


def build_platform(settings: Settings) -> Platform:
    """A platform whose store must still be started (``await platform.store.start()``)."""
    store = CachedStore(
        SqlStore(make_driver(settings)),
        poll_seconds=settings.invalidation_poll_seconds,
        token_cache_size=settings.token_cache_size,
        fanout=make_fanout(settings),
    )
    return Platform(
        settings=settings,
        store=store,
        keyring=make_keyring(settings),
        limiter=make_limiter(settings),
    )


def make_keyring(settings: Settings) -> Keyring:
    """The current server key, and the previous ones to find and decrypt what they made (SPEC §10)."""
    return Keyring(settings.resolved_secret_key(), settings.old_secret_key_list)


def make_fanout(settings: Settings) -> RedisFanout | None:
    if not settings.redis_url:
        return None
    from openplatform.storage.redis_fanout import RedisFanout

    return RedisFanout(settings.redis_url)


def make_limiter(settings: Settings) -> Limiter:
    """Buckets in Redis when configured (limits hold across nodes), else in the process."""
    if settings.redis_url:
        from openplatform.storage.redis_limits import RedisRateLimiter

        return RedisRateLimiter(settings.rate_limits, settings.redis_url)
    return RateLimiter(settings.rate_limits, clock=time.monotonic)


def build_admin(settings: Settings, announce: Announce | None = None) -> Admin:
    """The management services; ``announce`` takes the changes they commit (see storage.sql.manage)."""
    return Admin(
        Management(make_engine(settings), announce=announce), make_keyring(settings),
        webhook_private_networks=settings.webhook_private_networks == "allow",
    )  # fmt: skip
