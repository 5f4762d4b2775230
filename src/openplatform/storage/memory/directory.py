"""Customers and sites for the Open APIs (SPEC §2.5) in memory, as ``storage/sql/directory.py``.

The twin of the SQL ``SqlDirectory`` (``tests/storage/test_contract_directory.py`` runs
the same tests on both): the same orderings (oldest first, ties by id), paging totals,
optimistic updates (``expected_version`` raises ``VersionConflict``), invalidation
records and outbox rows. Rows live on the shared ``MemoryStore``: ``customers``,
``sites``, ``installations``, ``tokens``, ``apps`` (for the webhook URLs).

What the database's foreign keys refuse is refused here too: ``create_site`` for a
customer that is gone returns None (as the SQL twin does on its IntegrityError), and
``create_customers`` at an SPE that does not exist raises
``openplatform.errors.IntegrityError``, as the SQL twin's driver does.

Atomicity: each method yields to the event loop once (a round trip), then reads and
writes without awaiting, so it is one step as the SQL transaction is.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from openplatform.errors import IntegrityError
from openplatform.models import ACTIVE, Customer, Installation, Site
from openplatform.records import CustomerFilter, Invalidation, Notify, VersionConflict
from openplatform.storage.memory.store import MemoryStore, page

_Versioned = TypeVar("_Versioned", Customer, Site)
_Row = TypeVar("_Row")


def contains(value: str, text: str) -> bool:
    """SQL's ``icontains``: ``text`` (taken literally, no wildcards) anywhere in ``value``, any case."""
    return text.lower() in value.lower()


class MemoryDirectory:
    """Implements ``services.stores.DirectoryStore`` on a ``MemoryStore``; ``clock`` gives UNIX seconds."""

    def __init__(self, store: MemoryStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # ----------------------------------------------------------------- customers

    def _matches(self, customer: Customer, spec: CustomerFilter) -> bool:
        if customer.xspe != spec.xspe:
            return False
        if spec.via_app is not None and customer.customer_id not in self._installed_for(spec.via_app, spec.xspe):
            return False
        if spec.customer_id is not None and customer.customer_id != spec.customer_id:
            return False
        if spec.status is not None and customer.status != spec.status:
            return False
        return not spec.name or contains(customer.name, spec.name)

    def _installed_for(self, app_id: str, xspe: str) -> set[str]:
        """The customers with an active per-customer installation of ``app_id`` at ``xspe``."""
        return {
            i.customer_id
            for i in self.store.installations.values()
            if i.app_id == app_id and i.xspe == xspe and i.uninstalled_at is None and i.customer_id is not None
        }

    async def list_customers(self, spec: CustomerFilter, limit: int, offset: int) -> tuple[list[Customer], int]:
        """A page of the customers ``spec`` selects, oldest first (created_at, then customer_id),
        and how many it selects in all."""
        await asyncio.sleep(0)
        found = [c for c in self.store.customers.values() if self._matches(c, spec)]
        found.sort(key=lambda c: (c.created_at, c.customer_id))
        return page(found, limit, offset)

    async def create_customers(self, xspe: str, entries: Iterable[Mapping[str, str]]) -> list[Customer]:
        """Insert customers (``customer_id``, ``name``, ``contact`` default "", ``status`` default
        active), all made
        now, all or none. No invalidation: the caches never remember a missing customer.
        IntegrityError (nothing written) when ``xspe`` names no SPE (the column's foreign key) or a
        ``customer_id`` is taken, here or twice among ``entries`` (the primary key)."""
        await asyncio.sleep(0)
        now = self.clock()
        created = [_new_customer(xspe, entry, now) for entry in entries]
        if created and xspe not in self.store.spes:
            raise IntegrityError(f"no SPE {xspe!r}")
        ids = {customer.customer_id for customer in created}
        if len(ids) < len(created) or not ids.isdisjoint(self.store.customers):
            raise IntegrityError("a customer with this customer_id exists")
        for customer in created:
            self.store.customers[customer.customer_id] = customer
        return created

    async def update_customer(
        self, customer_id: str, changes: Mapping[str, object], expected_version: int | None
    ) -> tuple[Customer | None, list[Invalidation]]:
        """Apply ``changes`` (column -> value) if ``expected_version`` (when given) is the stored
        version: the customer as stored and ``[("customer", id)]`` (also recorded in the
        invalidation log) when something changed. ``(None, [])`` when there is no such customer;
        VersionConflict (nothing changed) when the version differs. No changes: a pure check."""
        await asyncio.sleep(0)
        now = self.clock()
        customer = _update_versioned(self.store.customers, customer_id, changes, expected_version, now)
        if customer is None:
            return None, []
        if not changes:
            return customer, []
        self.store.invalidate("customer", customer_id, now)
        return customer, [("customer", customer_id)]

    async def delete_customer(self, customer_id: str, notify: Notify | None = None) -> tuple[bool, list[Invalidation]]:
        """Delete the customer, its sites and its own installations, which ends its tokens.

        Its tokens (through any installation) and unused codes stay as they are, refused by
        ``core.lifecycle`` since the customer is gone (SPEC §8), as the SQL twin's. For each
        active installation whose app has a webhook, ``notify(installation, now)`` builds the
        uninstall notification, queued in the outbox in the same step. Returns whether it
        existed and the invalidations written: the customer, each installation, then each app
        (sorted).
        """
        await asyncio.sleep(0)
        now = self.clock()
        if customer_id not in self.store.customers:
            return False, []
        installs = self._installations_of(customer_id)
        for installation, webhook_url in installs:
            if notify is not None and webhook_url and installation.active:
                self.store.enqueue_webhook(installation.app_id, "uninstall", notify(installation, now), now)
        _delete_where(self.store.sites, lambda s: s.customer_id == customer_id)
        _delete_where(self.store.installations, lambda i: i.customer_id == customer_id)
        del self.store.customers[customer_id]
        changes: list[Invalidation] = [("customer", customer_id)]
        changes += [("installation", i.installation_id) for i, _ in installs]
        changes += [("app", app_id) for app_id in sorted({i.app_id for i, _ in installs})]
        for kind, key in changes:
            self.store.invalidate(kind, key, now)
        return True, changes

    def _installations_of(self, customer_id: str) -> list[tuple[Installation, str | None]]:
        """The customer's installations (ended ones too) with their app's webhook URL; as the SQL
        join, an installation whose app is missing is left out (it is deleted all the same)."""
        found = []
        for installation in self.store.installations.values():
            app = self.store.apps.get(installation.app_id)
            if installation.customer_id == customer_id and app is not None:
                found.append((installation, app.webhook_url))
        return found

    # --------------------------------------------------------------------- sites

    async def list_sites(self, customer_id: str, status: str | None, limit: int, offset: int) -> tuple[list[Site], int]:
        """A page of the customer's sites (of ``status`` when given), oldest first (created_at,
        then site_id), and how many there are in all."""
        await asyncio.sleep(0)
        found = [
            s for s in self.store.sites.values()
            if s.customer_id == customer_id and (status is None or s.status == status)
        ]  # fmt: skip
        found.sort(key=lambda s: (s.created_at, s.site_id))
        return page(found, limit, offset)

    async def get_site(self, site_id: str) -> Site | None:
        await asyncio.sleep(0)
        return self.store.sites.get(site_id)

    async def create_site(self, site_id: str, customer: Customer, name: str, domain: str, status: str) -> Site | None:
        """The new site (version 1, made now), or None when the customer was deleted meanwhile or
        ``site_id`` is taken (as the SQL twin, on its IntegrityError)."""
        await asyncio.sleep(0)
        if customer.customer_id not in self.store.customers or site_id in self.store.sites:
            return None
        now = self.clock()
        site = Site(
            site_id=site_id, customer_id=customer.customer_id, xspe=customer.xspe, name=name,
            domain=domain, status=status, created_at=now, updated_at=now, version=1,
        )  # fmt: skip
        self.store.sites[site.site_id] = site
        return site

    async def update_site(
        self, site_id: str, changes: Mapping[str, object], expected_version: int | None
    ) -> Site | None:
        """As ``update_customer`` for a site (no invalidation: no cache holds sites): the site as
        stored, None when there is no such site, VersionConflict when the version differs."""
        await asyncio.sleep(0)
        return _update_versioned(self.store.sites, site_id, changes, expected_version, self.clock())

    async def delete_site(self, site_id: str) -> bool:
        await asyncio.sleep(0)
        return self.store.sites.pop(site_id, None) is not None


def _new_customer(xspe: str, entry: Mapping[str, str], now: float) -> Customer:
    return Customer(
        customer_id=entry["customer_id"], xspe=xspe, name=entry["name"], contact=entry.get("contact", ""),
        status=entry.get("status", ACTIVE), created_at=now, updated_at=now, version=1,
    )  # fmt: skip


def _update_versioned(
    rows: dict[str, _Versioned], key: str, changes: Mapping[str, object], expected: int | None, now: float
) -> _Versioned | None:
    """Apply ``changes`` and bump the version, if ``expected`` (when given) still holds.

    The row as stored after it, None if there is no such row; VersionConflict (with the
    stored version, nothing changed) if the precondition failed. No changes: a pure
    precondition check that leaves the row as it is (as the SQL twin's conditional UPDATE).
    """
    row = rows.get(key)
    if row is None:
        return None
    if expected is not None and row.version != expected:
        raise VersionConflict(row.version)
    if not changes:
        return row
    bump: dict[str, Any] = {**changes, "updated_at": now, "version": row.version + 1}
    updated = dataclasses.replace(row, **bump)
    rows[key] = updated
    return updated


def _delete_where(rows: dict[str, _Row], doomed: Callable[[_Row], bool]) -> None:
    for key in [key for key, row in rows.items() if doomed(row)]:
        del rows[key]
