"""The management screens' reads and app edits in memory, as ``storage/sql/console.py``.

The twin of the SQL ``SqlConsole`` (``tests/storage/test_contract_directory.py``
runs the same tests on both): customer search and paging, app edits (with their
invalidation record), installations with names, token activity and audit events. The
activity comes from ``MemoryStore.audit_events``, where every event is one row: the SQL
twin sums ``occurrences`` (identical events of one group commit are one row there),
which gives the same counts. Audit rows read back as the SQL backend stores them
(``AuditEvent.row``: ``detail`` a JSON text).

Atomicity: each method yields to the event loop once (a round trip), then reads and
writes without awaiting, so it is one step as the SQL transaction is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from openplatform import events
from openplatform.models import App, Customer
from openplatform.records import InstallRow, TokenCounts
from openplatform.storage.memory.directory import contains
from openplatform.storage.memory.store import AuditEvent, MemoryStore, page

# Audit events that issue an access token (a refresh retried within the leeway, token.refresh_retried,
# gets the pair already issued: not counted).
ISSUING_EVENTS = (events.TOKEN_ISSUED, events.TOKEN_REFRESHED)
# The apps columns update_app may set, and how a column's value becomes the App field.
APP_LISTS = ("scopes", "ip_whitelist")  # space-separated in the column, tuples on App
APP_COLUMNS = ("name", "host_url", "webhook_url", "status", "owner_id", *APP_LISTS)


class MemoryConsole:
    """Implements ``services.stores.ConsoleStore`` on a ``MemoryStore``; ``clock`` gives UNIX seconds."""

    def __init__(self, store: MemoryStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # ------------------------------------------------------------------ customers

    async def search_customers(
        self, xspe: str, text: str = "", limit: int = 20, offset: int = 0
    ) -> tuple[list[Customer], int]:
        """A page of the SPE's customers whose name, contact or id contains ``text`` (any case),
        by name then customer_id, and how many match in all."""
        await asyncio.sleep(0)
        found = [
            c for c in self.store.customers.values()
            if c.xspe == xspe and (not text or any(contains(v, text) for v in (c.name, c.contact, c.customer_id)))
        ]  # fmt: skip
        found.sort(key=lambda c: (c.name, c.customer_id))
        return page(found, limit, offset)

    # ----------------------------------------------------------------------- apps

    async def update_app(self, app_id: str, **values: object) -> None:
        """Set the app's columns ``values`` (``name``, ``host_url``, ``webhook_url``, ``status``,
        ``owner_id``; ``scopes`` and ``ip_whitelist`` space-separated) and record ``("app", id)``
        in the invalidation log, whether the app exists or not (as the SQL twin). ValueError
        for another column."""
        await asyncio.sleep(0)
        unknown = sorted(set(values) - set(APP_COLUMNS))
        if unknown:
            raise ValueError(f"apps has no column {', '.join(unknown)}")
        now = self.clock()
        app = self.store.apps.get(app_id)
        if app is not None:
            self.store.apps[app_id] = _app_with(app, values)
        self.store.invalidate("app", app_id, now)

    async def current_secret_created_at(self, app_id: str) -> float | None:
        """When the app's current secret (the one without an end) was made; None without one."""
        await asyncio.sleep(0)
        current = [r for r in self.store.secret_rows.values() if r.app_id == app_id and r.expires_at is None]
        return min(current, key=lambda r: r.id).created_at if current else None

    async def count_events_since(self, app_id: str, event: str, since: float) -> int:
        """The app's audit events ``event`` at ``since`` (UNIX seconds) or later."""
        await asyncio.sleep(0)
        return sum(1 for e in self._events(app_id) if e.event == event and e.at >= since)

    def _events(self, app_id: str) -> Iterator[AuditEvent]:
        return (e for e in self.store.audit_events if e.fields.get("app_id") == app_id)

    # ------------------------------------------------------------- installations

    async def installs(
        self, app_id: str | None = None, xspe: str | None = None, customer_id: str | None = None
    ) -> list[InstallRow]:
        """Active installations of an app, at an SPE, or for a customer (with SPE-wide ones, of any
        SPE unless ``xspe`` is given too), oldest first (installed_at), with the names of their
        app, SPE and customer. As the SQL joins: one whose app or SPE is missing is left out."""
        await asyncio.sleep(0)
        rows = []
        for i in self.store.installations.values():
            app, spe = self.store.apps.get(i.app_id), self.store.spes.get(i.xspe)
            if i.uninstalled_at is not None or app is None or spe is None:
                continue
            if (app_id is not None and i.app_id != app_id) or (xspe is not None and i.xspe != xspe):
                continue
            if customer_id is not None and i.customer_id not in (customer_id, None):
                continue
            customer = self.store.customers.get(i.customer_id) if i.customer_id is not None else None
            rows.append(
                InstallRow(
                    i.installation_id,
                    i.app_id,
                    app.name,
                    app.host_url,
                    app.status,
                    i.xspe,
                    spe.name,
                    i.customer_id,
                    customer.name if customer is not None else None,
                    i.installed_at,
                )  # fmt: skip
            )
        rows.sort(key=lambda r: r.installed_at)
        return rows

    # ------------------------------------------------------------ token activity

    async def token_counts(self, app_id: str, since: float) -> TokenCounts:
        """Access tokens issued since ``since``, from the audit log: user tokens (with a customer)
        and app tokens."""
        await asyncio.sleep(0)
        issued = [e for e in self._events(app_id) if e.event in ISSUING_EVENTS and e.at >= since]
        app_tokens = sum(1 for e in issued if e.fields.get("customer_id") is None)
        return TokenCounts(len(issued) - app_tokens, app_tokens)

    async def last_token_at(self, app_ids: Iterable[str]) -> dict[str, float]:
        """When each app last got an access token (from the audit log); apps without one are left out."""
        await asyncio.sleep(0)
        wanted = set(app_ids)
        result: dict[str, float] = {}
        for e in self.store.audit_events:
            app_id = e.fields.get("app_id")
            if isinstance(app_id, str) and app_id in wanted and e.event in ISSUING_EVENTS:
                result[app_id] = max(result.get(app_id, e.at), e.at)
        return result

    async def recent_events(self, app_id: str, limit: int = 20, event: str | None = None) -> list[dict[str, object]]:
        """An app's newest audit rows (of one ``event`` when given), newest first (at, then id): each
        a dict of the ``audit_events`` columns (``at`` in UNIX seconds, ``detail`` a JSON text)."""
        await asyncio.sleep(0)
        found = [e for e in self._events(app_id) if event is None or e.event == event]
        found.sort(key=lambda e: (e.at, e.id), reverse=True)
        return [e.row() for e in found[:limit]]

    async def grants_per_bucket(self, app_id: str, ranges: Sequence[tuple[float, float]]) -> list[int]:
        """Access tokens issued (``ISSUING_EVENTS``) in each ``[start, end)`` of ``ranges`` (UNIX
        seconds), in that order."""
        await asyncio.sleep(0)
        issued = [e.at for e in self._events(app_id) if e.event in ISSUING_EVENTS]
        return [sum(1 for at in issued if start <= at < end) for start, end in ranges]

    async def denials_per_bucket(self, app_id: str, since: float, width: int) -> list[tuple[int, str, int]]:
        """Refused token requests (``token.denied``) since ``since``: ``(bucket, detail, count)`` rows,
        ``bucket`` = ``floor(at / width)`` (UNIX seconds / width), ``detail`` the row's JSON text
        (its ``error`` is the reason); by bucket, then detail (the SQL twin's order is unspecified)."""
        await asyncio.sleep(0)
        counts: dict[tuple[int, str], int] = {}
        for e in self._events(app_id):
            if e.event == events.TOKEN_DENIED and e.at >= since:
                key = (math.floor(e.at / int(width)), e.detail_text())
                counts[key] = counts.get(key, 0) + 1
        return [(bucket, detail, n) for (bucket, detail), n in sorted(counts.items())]


def _app_with(app: App, values: dict[str, object]) -> App:
    """``app`` with the columns ``values`` set, read as ``storage/sql/rows.py`` ``app_from_row`` reads them."""
    fields: dict[str, Any] = {k: (tuple(str(v or "").split()) if k in APP_LISTS else v) for k, v in values.items()}
    return dataclasses.replace(app, **fields)
