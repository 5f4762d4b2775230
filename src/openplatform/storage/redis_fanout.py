"""Revocation fan-out over Redis pub/sub (SPEC §7: "revocation fan-out").

The ``invalidations`` table polled by every process is the guarantee (a
revocation reaches every cache within the poll interval, Redis or not). With
Redis configured, the process that makes a revoking change also publishes it
(a serving node, the management screens, the Open APIs and the CLI alike), and
every node drops the affected cache entries within milliseconds. A lost
message costs nothing but the poll delay, so publish failures are only logged.

A message is ``[node, kind, key, at]``: ``at`` (UNIX seconds when it was published) gives
``openplatform_revocation_lag_seconds{path="fanout"}`` on the receiving nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from openplatform.storage.cache import FANOUT_LAG

log = logging.getLogger("openplatform.fanout")
CHANNEL = "openplatform:invalidations"


class RedisFanout:
    def __init__(self, redis_url: str) -> None:
        import redis.asyncio as redis

        self.client: Any = redis.from_url(redis_url, socket_connect_timeout=1.0)
        self.node = f"{os.getpid()}-{secrets.token_hex(4)}"  # skip our own messages
        self._listener: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def start(self, on_change: Callable[[str, str], None]) -> None:
        self._listener = asyncio.create_task(self._listen(on_change))

    async def close(self) -> None:
        for task in [self._listener, *self._pending]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.client.aclose()

    def publish(self, kind: str, key: str) -> None:
        task = asyncio.get_running_loop().create_task(self._publish(kind, key))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def publish_many(self, changes: Sequence[tuple[str, str]]) -> None:
        """Publish ``changes`` now and wait for Redis to take them (the CLI and the management paths)."""
        for kind, key in changes:
            await self._publish(kind, key)

    async def _publish(self, kind: str, key: str) -> None:
        try:
            await self.client.publish(CHANNEL, orjson.dumps([self.node, kind, key, time.time()]))
        except Exception as exc:  # the poller still delivers it
            log.warning("could not publish an invalidation: %s", exc)

    async def _listen(self, on_change: Callable[[str, str], None]) -> None:
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        self._deliver(message, on_change)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("invalidation subscription lost, retrying: %s", exc)
                await asyncio.sleep(1.0)

    def _deliver(self, message: dict[str, Any], on_change: Callable[[str, str], None]) -> None:
        if message.get("type") != "message":
            return
        try:
            node, kind, key, *sent = orjson.loads(message["data"])  # no time from a node before metrics
        except (ValueError, TypeError):
            return
        if node != self.node:
            on_change(str(kind), str(key))
            if sent and isinstance(sent[0], int | float):
                FANOUT_LAG.observe(max(0.0, time.time() - sent[0]))
