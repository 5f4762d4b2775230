"""Wiring: build the store, platform and admin services from Settings.

One database layer per process: ``make_database`` builds the driver (one pool, one
set of SQLite PRAGMAs, SQLite's one writer) that the token store and the management
path share in a serving process (``build_platform`` and ``build_admin`` given the
same ``Database``); a CLI command builds one for its management services alone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from openplatform.config import Settings
from openplatform.core.context import Platform
from openplatform.core.ratelimit import Limiter, RateLimiter
from openplatform.records import Announce
from openplatform.security import Keyring
from openplatform.services.admin import Admin
from openplatform.services.stores import Stores
from openplatform.storage.cache import CachedStore
from openplatform.storage.memory import MemoryStore
from openplatform.storage.memory.accounts import MemoryAccounts
from openplatform.storage.memory.admin_keys import MemoryAdminKeys
from openplatform.storage.memory.console import MemoryConsole
from openplatform.storage.memory.directory import MemoryDirectory
from openplatform.storage.memory.manage import MemoryManagement
from openplatform.storage.memory.webhooks import MemoryOutbox
from openplatform.storage.sql.accounts import SqlAccounts
from openplatform.storage.sql.admin_keys import SqlAdminKeys
from openplatform.storage.sql.console import SqlConsole
from openplatform.storage.sql.database import Database
from openplatform.storage.sql.directory import SqlDirectory
from openplatform.storage.sql.driver import Driver
from openplatform.storage.sql.manage import SqlManagement
from openplatform.storage.sql.postgres import PostgresDriver
from openplatform.storage.sql.sqlite import SqliteDriver
from openplatform.storage.sql.store import SqlStore
from openplatform.storage.sql.webhooks import SqlOutbox

if TYPE_CHECKING:
    from openplatform.storage.redis_fanout import RedisFanout


def make_driver(settings: Settings) -> Driver:
    if settings.is_sqlite:
        return SqliteDriver(settings.sqlite_path, settings.sqlite_synchronous)
    return PostgresDriver(settings.postgres_dsn, settings.postgres_pool_size)


def make_database(settings: Settings) -> Database | MemoryStore:
    """The process's database layer: its driver, and the management path's statements on it;
    or, for ``memory://``, the one ``MemoryStore`` every store of the process shares."""
    if settings.is_memory:
        return MemoryStore()
    return Database(make_driver(settings))


def build_platform(settings: Settings, database: Database | MemoryStore | None = None) -> Platform:
    """A platform whose store must still be started (``await platform.store.start()``); its
    store runs on ``database`` (a new one when None)."""
    database = database or make_database(settings)
    store = CachedStore(
        database if isinstance(database, MemoryStore) else SqlStore(database.driver),
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


def build_stores(database: Database | MemoryStore, announce: Announce | None = None) -> Stores:
    """The management side's stores (``services/stores.py``) on ``database``;
    ``announce`` takes the changes they commit (``ManagementStore.announce``: SPEC §8)."""
    if isinstance(database, MemoryStore):
        return Stores(
            management=MemoryManagement(database, announce=announce), directory=MemoryDirectory(database),
            console=MemoryConsole(database), accounts=MemoryAccounts(database),
            admin_keys=MemoryAdminKeys(database), outbox=MemoryOutbox(database),
        )  # fmt: skip
    return Stores(
        management=SqlManagement(database, announce=announce), directory=SqlDirectory(database),
        console=SqlConsole(database), accounts=SqlAccounts(database), admin_keys=SqlAdminKeys(database),
        outbox=SqlOutbox(database),
    )  # fmt: skip


def build_admin(
    settings: Settings, announce: Announce | None = None, database: Database | MemoryStore | None = None
) -> Admin:
    """The management services, on ``database`` (the serving process's, shared with its token
    store; a new one when None, started on first use and closed by ``admin.stores.close()``);
    ``announce`` takes the changes they commit (``ManagementStore.announce``: SPEC §8)."""
    return Admin(
        build_stores(database or make_database(settings), announce), make_keyring(settings),
        webhook_private_networks=settings.webhook_private_networks == "allow",
    )  # fmt: skip
