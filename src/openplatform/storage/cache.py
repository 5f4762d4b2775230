"""In-process caches in front of a Store that still see every revocation.

Apps, installations, customers, the lifecycle state behind user tokens (SPEC
§8) and access tokens are read on every request but change rarely. This
wrapper keeps them in memory and follows the ``invalidations`` log that every
revoking write appends to (in the same transaction): each process polls it
every ``invalidation_poll_seconds`` and drops what changed, so a revocation
made by the CLI or by another node reaches every cache within that delay; with
Redis, the process that made the change also publishes it and every node drops
it within milliseconds. If the log cannot be read, the caches are emptied
rather than trusted.

The poll follows the log by id, page after page until a short page, so no
burst of revocations can stall it (a capped page of a re-read time window
could; issue 8). On PostgreSQL ids are not committed in order: an id missing
below newer ones (a transaction still open, or one rolled back) is waited for
up to ``GAP_WAIT`` seconds, re-reading only the records above it meanwhile;
passing over it empties the caches (what it said is unknown), and in any case
no entry lives longer than ``CACHE_MAX_AGE`` seconds.

Metrics (``web/metrics.py`` lists them all): each cache counts its hits and misses in two
plain integers (a lookup costs no more than that), added to
``openplatform_cache_lookups_total{cache, result}`` after every poll; the poller and the
Redis listener observe ``openplatform_revocation_lag_seconds{path}``, the time from an
invalidation record's creation (on any node) to its application here.

An access token enters the cache when it is first checked, not when it is
issued: with several workers it is mostly checked by another process anyway,
and an app fetching a token per call would otherwise evict the tokens other
apps are using (measured: caching on issue cost the app-token grant about 3 µs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Counter, Histogram

from openplatform.core.store import Backend, RotatedBefore
from openplatform.errors import StorageUnavailable
from openplatform.models import App, AuthorizationCode, Backing, Customer, Installation, Installations, TokenRecord

log = logging.getLogger("openplatform.cache")

PAGE = 5000  # invalidation records read per query; a poll reads pages until a short one
GAP_WAIT = 5.0  # seconds to wait for a missing invalidation id (an open or rolled-back transaction)
# No entry is trusted longer than this, whatever the log says: a revoking transaction that commits
# its record later than GAP_WAIT after taking its id, or a change made in SQL by hand, is seen then.
CACHE_MAX_AGE = 30.0

CACHE_LOOKUPS = Counter(
    "openplatform_cache_lookups", "In-process cache lookups by cache and result (hit, miss)", ["cache", "result"]
)
REVOCATION_LAG = Histogram(
    "openplatform_revocation_lag_seconds",
    "From an invalidation record's creation to its application in this process, by path (poll, fanout)",
    ["path"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
POLL_LAG = REVOCATION_LAG.labels("poll")
FANOUT_LAG = REVOCATION_LAG.labels("fanout")


class BoundedCache(OrderedDict[Any, Any]):
    """A dict that forgets its oldest entries beyond ``limit`` (cheaper than an LRU).

    An OrderedDict, not a dict: ``del d[next(iter(d))]`` on a plain dict walks
    past every slot freed since its last resize, which measured 35 µs per insert
    once a 100,000-entry cache was full (0.5 µs with ``popitem(last=False)``).
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.hits = 0  # lookups since the last report (CachedStore.report_lookups)
        self.misses = 0

    def put(self, key: Any, value: Any) -> None:
        if self.limit <= 0:
            return
        if len(self) >= self.limit and key not in self:
            self.popitem(last=False)
        self[key] = value


class TokenCache(BoundedCache):
    """Access token records by digest, with an index from each family, installation, app and
    customer to its cached tokens, so a revocation drops exactly its tokens without scanning
    the cache (a full scan of 100,000 entries per revoked family, on every node: issue 8)."""

    INDEXED = ("family_id", "installation_id", "app_id", "customer_id")

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.index: dict[tuple[str, str], set[str]] = {}

    def put(self, key: str, value: TokenRecord) -> None:
        if self.limit <= 0:
            return
        if len(self) >= self.limit and key not in self:
            digest, old = self.popitem(last=False)
            self._unindex(digest, old)
        self[key] = value
        for field in self.INDEXED:
            tag = getattr(value, field)
            if tag is not None:
                self.index.setdefault((field, tag), set()).add(key)

    def _unindex(self, digest: str, record: TokenRecord) -> None:
        for field in self.INDEXED:
            tag = getattr(record, field)
            members = self.index.get((field, tag)) if tag is not None else None
            if members is not None:
                members.discard(digest)
                if not members:
                    del self.index[(field, tag)]

    def drop(self, digest: str) -> None:
        record = self.pop(digest, None)
        if record is not None:
            self._unindex(digest, record)

    def drop_by(self, field: str, tag: str) -> None:
        """Forget every cached token whose ``field`` is ``tag``."""
        for digest in list(self.index.get((field, tag), ())):
            self.drop(digest)

    def clear(self) -> None:
        super().clear()
        self.index.clear()


Changes = Sequence[tuple[str, str]]  # (kind, key) as in the invalidations table


class CachedStore:
    def __init__(
        self, inner: Backend, poll_seconds: float = 0.5, token_cache_size: int = 100_000, fanout: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.inner = inner
        # The inner store's own method, not one forwarding to it: a ``**fields`` forwarding builds the
        # fields' dict again, about 5,000 instructions an audit event (callgrind; docs/benchmarks.md,
        # "The exchange and the rotation, third pass").
        self.audit: Callable[..., None] = inner.audit
        self.fanout = fanout  # optional RedisFanout
        self.poll_seconds = poll_seconds
        self.clock = clock  # for GAP_WAIT only
        self.apps = BoundedCache(10_000)
        # app_ids looked up and not found: an unknown app_id then costs what a known one does
        # (SPEC §9, one timing), and a flood of them cannot evict the real apps.
        self.missing_apps = BoundedCache(10_000)
        self.installations = BoundedCache(10_000)  # app_id -> Installations
        self.customers = BoundedCache(50_000)
        self.backings = BoundedCache(50_000)  # (app, installation, customer, xspe) -> Backing
        self.tokens = TokenCache(token_cache_size)
        self.named = {"app": self.apps, "installations": self.installations, "customer": self.customers,
                      "backing": self.backings, "token": self.tokens}  # fmt: skip
        for name in self.named:  # every series exists from the start, at 0
            for result in ("hit", "miss"):
                CACHE_LOOKUPS.labels(name, result)
        self._applied_to = 0  # every invalidation id up to this one has been applied
        self._seen: set[int] = set()  # ids above _applied_to already applied
        self._gaps: dict[int, float] = {}  # a missing id -> when it was first missed (self.clock)
        self._cleared_at = clock()  # when the caches were last emptied (CACHE_MAX_AGE)
        self._poller: asyncio.Task[None] | None = None
        # Bumped by every drop (a change applied here). A read puts what it found only if no drop
        # came while it awaited the database: a read begun before a change committed, answered after
        # the change's drop, would otherwise put the state from before it back, and keep it until the
        # next drop or CACHE_MAX_AGE. An uninstall's and a deleted customer's tokens are refused by
        # their backing alone (migration 0010): a stale "installed" revived them all on this node.
        self.generation = 0

    # ------------------------------------------------- straight through: nothing cached

    async def ping(self) -> None:
        await self.inner.ping()

    async def get_code_backed(self, digest: str) -> tuple[AuthorizationCode, Backing] | None:
        """Read from the backend, as ``backing(fresh=True)`` is, and its ``Backing`` cached as that does."""
        generation = self.generation
        found = await self.inner.get_code_backed(digest)
        if found is not None:
            self._backing_read(found[0], found[1], generation)
        return found

    async def get_token_backed(self, digest: str) -> tuple[TokenRecord, Backing] | None:
        """Read from the backend (a refresh token is used once: not cached), its ``Backing`` cached."""
        generation = self.generation
        found = await self.inner.get_token_backed(digest)
        if found is not None and found[0].installation_id is not None:
            self._backing_read(found[0], found[1], generation)
        return found

    def _backing_read(self, bound: AuthorizationCode | TokenRecord, backing: Backing, generation: int) -> None:
        """Cache ``backing``, read when ``self.generation`` was ``generation`` (unless a drop came since)."""
        self.backings.misses += 1
        assert bound.installation_id is not None
        if generation == self.generation:
            self.backings.put((bound.app_id, bound.installation_id, bound.customer_id, bound.xspe), backing)

    async def save_code(self, code: AuthorizationCode) -> None:
        await self.inner.save_code(code)

    async def save_tokens(self, *records: TokenRecord) -> None:
        await self.inner.save_tokens(*records)

    async def cleanup(self, *args: Any, **options: Any) -> dict[str, int]:  # the inner store's defaults hold
        return await self.inner.cleanup(*args, **options)

    async def start(self) -> None:
        await self.inner.start()
        self._applied_to = await self.inner.last_invalidation_id()
        self._poller = asyncio.create_task(self._poll_forever())
        if self.fanout is not None:
            self.fanout.start(self.drop)

    async def close(self) -> None:
        self.report_lookups()
        if self.fanout is not None:
            await self.fanout.close()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self.inner.close()

    # ------------------------------------------------------------- cached reads

    async def get_app(self, app_id: str, fresh: bool = False) -> App | None:
        """The app, cached (a missing one too); ``fresh`` reads the database (and refreshes the cache)."""
        app = None if fresh else self.apps.get(app_id)
        if app is None and (fresh or app_id not in self.missing_apps):
            self.apps.misses += 1
            generation = self.generation
            app = await self.inner.get_app(app_id)
            if generation != self.generation:  # changed meanwhile: answered, not kept
                return app
            if app is not None:
                self.missing_apps.pop(app_id, None)
                self.apps.put(app_id, app)
            else:
                self.apps.pop(app_id, None)
                self.missing_apps.put(app_id, True)
        else:
            self.apps.hits += 1
        return app

    async def active_installations(self, app_id: str, fresh: bool = False) -> Installations:
        """An app's active installations; ``fresh`` reads the database (and refreshes the cache)."""
        found = None if fresh else self.installations.get(app_id)
        if found is None:
            self.installations.misses += 1
            generation = self.generation
            found = await self.inner.active_installations(app_id)
            if generation == self.generation:
                self.installations.put(app_id, found)
        else:
            self.installations.hits += 1
        return found

    async def installation_for(self, app_id: str, xspe: str, customer_id: str) -> Installation | None:
        """Never cached: it issues a code (SPEC §8)."""
        return await self.inner.installation_for(app_id, xspe, customer_id)

    async def get_customer(self, customer_id: str) -> Customer | None:
        customer = self.customers.get(customer_id)
        if customer is None:
            self.customers.misses += 1
            generation = self.generation
            customer = await self.inner.get_customer(customer_id)
            if customer is not None and generation == self.generation:
                self.customers.put(customer_id, customer)
        else:
            self.customers.hits += 1
        return customer

    async def backing(
        self, app_id: str, installation_id: str, customer_id: str | None, xspe: str | None, fresh: bool = False
    ) -> Backing:
        """SPEC §8 state of a user token or code; ``fresh`` reads the database (and refreshes the cache)."""
        key = (app_id, installation_id, customer_id, xspe)
        found: Backing | None = None if fresh else self.backings.get(key)
        if found is None:
            self.backings.misses += 1
            generation = self.generation
            found = await self.inner.backing(app_id, installation_id, customer_id, xspe)
            if generation == self.generation:
                self.backings.put(key, found)
        else:
            self.backings.hits += 1
        return found

    async def get_token(self, digest: str) -> TokenRecord | None:
        record: TokenRecord | None = self.tokens.get(digest)
        if record is None:
            self.tokens.misses += 1
            generation = self.generation
            record = await self.inner.get_token(digest)
            if record is not None and record.kind == "access" and record.revoked_at is None:
                if generation == self.generation:
                    self.tokens.put(digest, record)
        else:
            self.tokens.hits += 1
        return record

    # ------------------------------------------- writes that revoke: apply locally

    async def consume_code(self, digest: str, *records: TokenRecord) -> bool:
        return await self.inner.consume_code(digest, *records)

    async def rotate_refresh(
        self, old: TokenRecord, new_access: TokenRecord, new_refresh: TokenRecord
    ) -> RotatedBefore | None:
        return await self.inner.rotate_refresh(old, new_access, new_refresh)

    async def revoke_family(self, family_id: str, ends: float | None) -> None:
        await self.inner.revoke_family(family_id, ends)
        self.apply("family", family_id)

    async def revoke_token(self, record: TokenRecord) -> None:
        await self.inner.revoke_token(record)
        if record.kind == "refresh" and record.family_id:
            self.apply("family", record.family_id)
        self.apply("token", record.digest)

    # ------------------------------------------------------------ invalidation

    def apply(self, kind: str, key: str) -> None:
        """A change made by this process: drop it here and tell the other nodes."""
        self.drop(kind, key)
        if self.fanout is not None:
            self.fanout.publish(kind, key)

    async def announce(self, changes: Changes) -> None:
        """Changes a management path committed (``services.admin``): drop them here, publish them
        to the other nodes and wait until Redis has them (the caller answers only after that)."""
        for kind, key in changes:
            self.drop(kind, key)
        if self.fanout is not None:
            await self.fanout.publish_many(changes)

    def drop(self, kind: str, key: str) -> None:
        """Forget the cache entries a change affects (and what reads in flight would put back)."""
        self.generation += 1
        if kind == "token":
            self.tokens.drop(key)
        elif kind == "family":
            self.tokens.drop_by("family_id", key)
        elif kind == "installation":
            self.tokens.drop_by("installation_id", key)
            self.installations.clear()
            self.backings.clear()
        elif kind == "app":
            self.apps.pop(key, None)
            self.missing_apps.pop(key, None)
            self.installations.pop(key, None)
            self.backings.clear()
        elif kind == "customer":
            self.customers.pop(key, None)
            self.tokens.drop_by("customer_id", key)  # a deleted customer's tokens are revoked
            self.backings.clear()
        else:
            self.clear()

    def clear(self) -> None:
        self.generation += 1
        self._cleared_at = self.clock()
        for cache in (self.apps, self.missing_apps, self.installations, self.customers, self.backings, self.tokens):
            cache.clear()

    async def poll_once(self) -> None:
        """Apply every invalidation record committed since the last poll (see the module docstring)."""
        try:
            after = self._applied_to
            while True:
                page = await self.inner.invalidations_after(after, PAGE)
                now = time.time()  # the records' times are the wall clock of the node that wrote them
                for change_id, kind, key, at in page:
                    if change_id not in self._seen:
                        self._seen.add(change_id)
                        self.drop(kind, key)
                        POLL_LAG.observe(max(0.0, now - at))
                if len(page) < PAGE:
                    break
                after = page[-1][0]
            if not page and not self._seen and await self.inner.last_invalidation_id() < self._applied_to:
                self._restarted()
        except StorageUnavailable:
            self.clear()  # cannot see revocations: trust nothing cached
            return
        self._advance()
        if self.clock() - self._cleared_at >= CACHE_MAX_AGE:
            self.clear()

    def _advance(self) -> None:
        """Move the applied mark over the ids seen, and over gaps waited for longer than GAP_WAIT."""
        if not self._seen:
            self._gaps.clear()
            return
        now, top, mark = self.clock(), max(self._seen), self._applied_to
        while mark < top:
            following = mark + 1
            if following in self._seen:
                self._seen.discard(following)
            elif now - self._gaps.setdefault(following, now) < GAP_WAIT:
                break
            else:  # passed over: whatever it will say when (if) it commits is unknown, so trust nothing
                del self._gaps[following]
                self.clear()
            mark = following
        self._applied_to = mark
        for gap in [g for g in self._gaps if g <= mark]:
            del self._gaps[gap]

    def _restarted(self) -> None:
        """The log's ids went back (an emptied SQLite table reuses them): start over, trusting nothing."""
        log.warning("invalidation ids restarted below %d; caches cleared", self._applied_to)
        self._applied_to = 0
        self._gaps.clear()
        self.clear()

    def report_lookups(self) -> None:
        """Add the hits and misses counted since the last report to ``openplatform_cache_lookups_total``."""
        for name, cache in self.named.items():
            hits, misses, cache.hits, cache.misses = cache.hits, cache.misses, 0, 0
            if hits:
                CACHE_LOOKUPS.labels(name, "hit").inc(hits)
            if misses:
                CACHE_LOOKUPS.labels(name, "miss").inc(misses)

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.poll_once()
            except Exception:  # never let the poller die silently
                log.exception("invalidation poll failed")
                self.clear()
            self.report_lookups()
