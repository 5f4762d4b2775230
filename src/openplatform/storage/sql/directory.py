"""Customers and sites for the Open APIs (SPEC §2.5), on SQLAlchemy Core (``storage.sql.database``).

Each method is one transaction. A change to a customer appends a ``customer``
row to ``invalidations`` in that transaction and returns the invalidations it
wrote, so the caller applies them to its own caches at once (other processes
follow the log). Updates are optimistic: ``expected_version`` turns into a
``WHERE version = ?`` so two writers can never silently overwrite each other.
Input is validated by ``openplatform.services.directory``; this layer trusts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, update

from openplatform.errors import IntegrityError
from openplatform.models import ACTIVE, Customer, Installation, Site
from openplatform.records import CustomerFilter, Invalidation, Notify, VersionConflict
from openplatform.storage.sql.changes import enqueue_webhook, invalidate
from openplatform.storage.sql.database import Conn, Database
from openplatform.storage.sql.rows import customer_from_row, installation_from_row
from openplatform.storage.sql.schema import apps, customers, installations, sites


def site_from_row(row: Any) -> Site:
    return Site(
        site_id=row["site_id"], customer_id=row["customer_id"], xspe=row["xspe"], name=row["name"],
        domain=row["domain"], status=row["status"], created_at=row["created_at"],
        updated_at=row["updated_at"], version=row["version"],
    )  # fmt: skip


def _customer_where(spec: CustomerFilter) -> list[Any]:
    where: list[Any] = [customers.c.xspe == spec.xspe]
    if spec.via_app is not None:
        installed = select(installations.c.customer_id).where(
            installations.c.app_id == spec.via_app,
            installations.c.xspe == spec.xspe,
            installations.c.uninstalled_at.is_(None),
            installations.c.customer_id.is_not(None),
        )
        where.append(customers.c.customer_id.in_(installed))
    if spec.customer_id is not None:
        where.append(customers.c.customer_id == spec.customer_id)
    if spec.status is not None:
        where.append(customers.c.status == spec.status)
    if spec.name:
        where.append(customers.c.name.icontains(spec.name, autoescape=True))
    return where


class SqlDirectory:
    def __init__(self, database: Database, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock

    # ----------------------------------------------------------------- customers

    async def list_customers(self, spec: CustomerFilter, limit: int, offset: int) -> tuple[list[Customer], int]:
        where = _customer_where(spec)
        page = select(customers).where(*where).order_by(customers.c.created_at, customers.c.customer_id)
        count = select(func.count()).select_from(customers).where(*where)
        rows = await self.database.read(page.limit(limit).offset(offset))
        total = await self.database.scalar(count) or 0
        return [customer_from_row(r) for r in rows], int(total)

    async def create_customers(self, xspe: str, entries: Iterable[Mapping[str, str]]) -> list[Customer]:
        """Insert customers (``customer_id``, ``name``, ``contact``, ``status``) in one transaction.

        No invalidation is needed: the caches never remember a missing customer.
        """
        now = self.clock()
        created = [_new_customer(xspe, entry, now) for entry in entries]
        if created:

            async def transaction(conn: Conn) -> None:
                for customer in created:
                    await conn.execute(insert(customers).values(_customer_values(customer)))

            await self.database.transaction(transaction)
        return created

    async def update_customer(
        self, customer_id: str, changes: Mapping[str, object], expected_version: int | None
    ) -> tuple[Customer | None, list[Invalidation]]:
        now = self.clock()

        async def transaction(conn: Conn) -> Any:
            row = await _update_versioned(conn, customers, "customer_id", customer_id, changes, expected_version, now)
            if row is not None and changes:
                await invalidate(conn, "customer", customer_id, now)
            return row

        row = await self.database.transaction(transaction)
        if row is None:
            return None, []
        return customer_from_row(row), ([("customer", customer_id)] if changes else [])

    async def delete_customer(self, customer_id: str, notify: Notify | None = None) -> tuple[bool, list[Invalidation]]:
        """Delete the customer, its sites and its own installations, which ends its codes and tokens.

        The installations made for this customer alone cannot outlive it (they
        reference it), so they go too. Its codes and tokens (through any installation)
        are not updated: each use reads the customer with them (SPEC §8's backing,
        ``core.lifecycle``), which refuses them once it is gone, and customer ids are
        never reused (migration 0010 dropped the index that found them).
        For each active one whose app has a webhook, ``notify`` builds the
        uninstall notification, queued in that same transaction.
        """
        now = self.clock()

        async def transaction(conn: Conn) -> tuple[bool, list[Invalidation]]:
            # Lock the row first (PostgreSQL): a site or installation being added
            # for it concurrently waits, then fails its foreign key, instead of
            # slipping in between our deletes. SQLite serialises writers anyway.
            exists = select(customers.c.customer_id).where(customers.c.customer_id == customer_id).with_for_update()
            if await conn.fetchrow(exists) is None:
                return False, []
            installs = await _installations_of(conn, customer_id)
            for installation, webhook_url in installs:
                if notify is not None and webhook_url and installation.active:
                    await enqueue_webhook(conn, installation.app_id, "uninstall", notify(installation, now), now)
            await conn.execute(delete(sites).where(sites.c.customer_id == customer_id))
            await conn.execute(delete(installations).where(installations.c.customer_id == customer_id))
            await conn.execute(delete(customers).where(customers.c.customer_id == customer_id))
            changes = [("customer", customer_id)]
            changes += [("installation", i.installation_id) for i, _ in installs]
            changes += [("app", app_id) for app_id in sorted({i.app_id for i, _ in installs})]
            for kind, key in changes:
                await invalidate(conn, kind, key, now)
            return True, changes

        return await self.database.transaction(transaction)

    # --------------------------------------------------------------------- sites

    async def list_sites(self, customer_id: str, status: str | None, limit: int, offset: int) -> tuple[list[Site], int]:
        where: list[Any] = [sites.c.customer_id == customer_id]
        if status is not None:
            where.append(sites.c.status == status)
        page = select(sites).where(*where).order_by(sites.c.created_at, sites.c.site_id)
        count = select(func.count()).select_from(sites).where(*where)
        rows = await self.database.read(page.limit(limit).offset(offset))
        total = await self.database.scalar(count) or 0
        return [site_from_row(r) for r in rows], int(total)

    async def get_site(self, site_id: str) -> Site | None:
        row = await self.database.read_one(select(sites).where(sites.c.site_id == site_id))
        return site_from_row(row) if row else None

    async def create_site(self, site_id: str, customer: Customer, name: str, domain: str, status: str) -> Site | None:
        """The new site, or None when the customer was deleted meanwhile or ``site_id`` is taken."""
        now = self.clock()
        site = Site(
            site_id=site_id, customer_id=customer.customer_id, xspe=customer.xspe, name=name,
            domain=domain, status=status, created_at=now, updated_at=now, version=1,
        )  # fmt: skip
        try:
            await self.database.execute(insert(sites).values(_site_values(site)))
        except IntegrityError:
            return None
        return site

    async def update_site(
        self, site_id: str, changes: Mapping[str, object], expected_version: int | None
    ) -> Site | None:
        now = self.clock()
        row = await self.database.transaction(
            lambda conn: _update_versioned(conn, sites, "site_id", site_id, changes, expected_version, now)
        )
        return site_from_row(row) if row else None

    async def delete_site(self, site_id: str) -> bool:
        return bool(await self.database.execute(delete(sites).where(sites.c.site_id == site_id)))


async def _installations_of(conn: Conn, customer_id: str) -> list[tuple[Installation, str | None]]:
    query = (
        select(installations, apps.c.webhook_url)
        .join(apps, apps.c.app_id == installations.c.app_id)
        .where(installations.c.customer_id == customer_id)
    )
    return [(installation_from_row(r), r["webhook_url"]) for r in await conn.fetch(query)]


def _new_customer(xspe: str, entry: Mapping[str, str], now: float) -> Customer:
    return Customer(
        customer_id=entry["customer_id"], xspe=xspe, name=entry["name"], contact=entry.get("contact", ""),
        status=entry.get("status", ACTIVE), created_at=now, updated_at=now, version=1,
    )  # fmt: skip


def _customer_values(c: Customer) -> dict[str, object]:
    return dict(
        customer_id=c.customer_id, xspe=c.xspe, name=c.name, contact=c.contact, status=c.status,
        created_at=c.created_at, updated_at=c.updated_at, version=c.version,
    )  # fmt: skip


def _site_values(s: Site) -> dict[str, object]:
    return dict(
        site_id=s.site_id, customer_id=s.customer_id, xspe=s.xspe, name=s.name, domain=s.domain,
        status=s.status, created_at=s.created_at, updated_at=s.updated_at, version=s.version,
    )  # fmt: skip


async def _update_versioned(
    conn: Conn,
    table: Table,
    key: str,
    value: str,
    changes: Mapping[str, object],
    expected: int | None,
    now: float,
) -> Any:
    """Apply ``changes`` and bump the version, if ``expected`` (when given) still holds.

    The version test is part of the UPDATE's WHERE clause, so it is atomic on
    both databases. Returns the new row, None if there is no such row, and
    raises VersionConflict if the precondition failed. No changes: a pure
    precondition check that leaves the row as it is.
    """
    column = table.c[key]
    applied = 0
    if changes:
        where = [column == value] + ([table.c.version == expected] if expected is not None else [])
        bump = {**changes, "updated_at": now, "version": table.c.version + 1}
        applied = await conn.execute(update(table).where(*where).values(**bump))
    row = await conn.fetchrow(select(table).where(column == value))
    if row is None:
        return None
    stale = not applied if changes else expected is not None and row["version"] != expected
    if stale:
        raise VersionConflict(row["version"])
    return row
