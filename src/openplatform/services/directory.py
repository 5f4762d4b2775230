"""The customer and site Open APIs (SPEC §2.5) as use cases over an authenticated Access.

Rules, in the order they are checked:
1. the object must be within the token's reach, otherwise it does not exist
   (404 ``not_found``, never 403, so no token can probe another SPE or customer);
2. the token must carry the scope (403 ``insufficient_scope``);
3. customer writes need an app token; ``/api/specp/...`` needs a user token
   (403 ``access_denied``);
4. the body must be valid (400 ``invalid_request`` naming the ``field``);
5. an update whose version precondition fails is refused (409 ``conflict``).
Every change to a customer drops it from this process's cache at once (and
reaches the other processes through the ``invalidations`` log).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from openplatform import events
from openplatform.core.resources import Access
from openplatform.errors import OAuthError
from openplatform.models import ACTIVE, Customer, Installation, Site
from openplatform.records import CustomerFilter, Invalidation, VersionConflict
from openplatform.security import new_id
from openplatform.services import directory_input as read
from openplatform.services.directory_input import (
    CONTACT_MAX,
    CUSTOMER_STATUSES,
    NAME_MAX,
    SITE_STATUSES,
    Fields,
)
from openplatform.services.stores import DirectoryStore
from openplatform.services.webhooks import UNINSTALL, notification

Audit = Callable[..., Awaitable[None]]  # ManagementStore.audit(event, **fields) (services/stores.py)


def uninstall_notice(installation: Installation, at: float) -> dict[str, object]:
    return notification(UNINSTALL, installation, at)


class CustomerCache(Protocol):
    async def get_customer(self, customer_id: str) -> Customer | None: ...
    def apply(self, kind: str, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Page:
    number: int  # 1-based
    size: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def result(self, items: list[dict[str, object]], total: int) -> dict[str, object]:
        return {"items": items, "total": total, "page": self.number, "page_size": self.size}


def conflict(current: int) -> OAuthError:
    return OAuthError("conflict", f"The object was changed meanwhile (current version {current}); reload it and retry.")


def pick_xspe(access: Access, wanted: str | None) -> str | None:
    """The SPE a list or create acts on: ``xspe`` when given, else the token's only one."""
    reach = access.xspes()
    if wanted is None:
        if len(reach) > 1:
            raise read.invalid("xspe", "is required: the app is installed at several SPEs")
        return reach[0] if reach else None
    if wanted not in reach:
        raise OAuthError("access_denied", "The app is not installed at that SPE.")
    return wanted


def customer_filter(access: Access, xspe: str, status: str | None, name: str | None) -> CustomerFilter:
    """The whole SPE for an SPE-wide install; else only what the token reaches one by one."""
    if xspe in access.spe_reach():
        return CustomerFilter(xspe, status=status, name=name)
    if access.is_app_token:
        return CustomerFilter(xspe, via_app=access.app.app_id, status=status, name=name)
    return CustomerFilter(xspe, customer_id=access.own_customer_id(), status=status, name=name)


class Directory:
    def __init__(self, db: DirectoryStore, cache: CustomerCache, audit: Audit | None = None) -> None:
        self.db = db
        self.cache = cache
        self.audit = audit

    async def _audit(self, event: str, access: Access, **fields: object) -> None:
        """Who changed what through the Open APIs (the audit log of SPEC §3)."""
        if self.audit is not None:
            await self.audit(event, app_id=access.app.app_id, via="open_api", **fields)

    def _applied(self, changes: list[Invalidation]) -> None:
        for kind, key in changes:
            self.cache.apply(kind, key)

    async def visible_customer(self, access: Access, customer_id: str) -> Customer:
        return access.require_visible(await self.cache.get_customer(customer_id))

    # ----------------------------------------------------------------- customers

    async def list_customers(
        self, access: Access, xspe: str | None, status: str | None, name: str | None, page: Page
    ) -> dict[str, object]:
        # SPEC §2.5: listing is the SPE side's door, for app tokens only; a user token reads its own
        # customer at /api/spe/customer/{customer_id}. The token kind first, so a user token is told
        # what it lacks (an app token), not a scope it could never use here.
        access.require_app_token()
        access.require_scope("customer:read")
        status = read.choice({"status": status}, "status", CUSTOMER_STATUSES)
        name = read.filter_text(name, "name")
        picked = pick_xspe(access, xspe)
        if picked is None:
            return {**page.result([], 0), "xspe": None}
        spec = customer_filter(access, picked, status, name)
        items, total = await self.db.list_customers(spec, page.size, page.offset)
        return {**page.result([c.public() for c in items], total), "xspe": picked}

    async def get_customer(self, access: Access, customer_id: str) -> Customer:
        customer = await self.visible_customer(access, customer_id)
        access.require_read(customer, "customer:read")
        return customer

    async def create_customer(self, access: Access, fields: Fields) -> Customer:
        access.require_scope("customer:write")
        access.require_app_token()
        read.only(fields, ("name", "contact", "status", "xspe"))
        xspe = pick_xspe(access, read.string(fields, "xspe"))
        if xspe is None or xspe not in access.spe_reach():
            raise OAuthError("access_denied", "Creating customers needs the app installed for the whole SPE.")
        entry = {
            "customer_id": new_id("cus_"),
            "name": read.text(fields, "name", NAME_MAX, required=True) or "",
            "contact": read.text(fields, "contact", CONTACT_MAX) or "",
            "status": read.choice(fields, "status", CUSTOMER_STATUSES) or ACTIVE,
        }
        (customer,) = await self.db.create_customers(xspe, [entry])
        await self._audit(events.CUSTOMER_CREATED, access, xspe=xspe, customer_id=customer.customer_id)
        return customer

    async def update_customer(self, access: Access, customer_id: str, fields: Fields, if_match: str | None) -> Customer:
        await self.visible_customer(access, customer_id)
        access.require_scope("customer:write")
        access.require_app_token()
        given, expected = read.customer_changes(fields, if_match)
        try:
            updated, changed = await self.db.update_customer(customer_id, given, expected)
        except VersionConflict as exc:
            raise conflict(exc.current) from exc
        self._applied(changed)
        if updated is None:
            raise OAuthError("not_found", "No such customer.")
        await self._audit(events.CUSTOMER_UPDATED, access, xspe=updated.xspe, customer_id=customer_id)
        return updated

    async def delete_customer(self, access: Access, customer_id: str) -> dict[str, object]:
        """Deletes the customer with its sites; its installations and tokens end with it."""
        customer = await self.visible_customer(access, customer_id)
        access.require_scope("customer:write")
        access.require_app_token()
        deleted, changed = await self.db.delete_customer(customer_id, uninstall_notice)
        self._applied(changed)
        if not deleted:
            raise OAuthError("not_found", "No such customer.")
        await self._audit(events.CUSTOMER_DELETED, access, xspe=customer.xspe, customer_id=customer_id)
        return {"customer_id": customer_id, "deleted": True}

    # --------------------------------------------------------------------- sites

    async def _site_owner(self, access: Access, customer_id: str | None, scope: str) -> Customer:
        """The customer whose sites are touched: from the path, or (None) from a user token."""
        if customer_id is None:
            customer_id = access.own_customer_id()
        customer = await self.visible_customer(access, customer_id)
        access.require_scope(scope)
        return customer

    async def _site_of(self, customer: Customer, site_id: str) -> Site:
        site = await self.db.get_site(site_id)
        if site is None or site.customer_id != customer.customer_id:
            raise OAuthError("not_found", "No such site.")
        return site

    async def list_sites(
        self, access: Access, customer_id: str | None, status: str | None, page: Page
    ) -> dict[str, object]:
        customer = await self._site_owner(access, customer_id, "site:read")
        status = read.choice({"status": status}, "status", SITE_STATUSES)
        items, total = await self.db.list_sites(customer.customer_id, status, page.size, page.offset)
        return page.result([s.public() for s in items], total)

    async def get_site(self, access: Access, customer_id: str | None, site_id: str) -> Site:
        customer = await self._site_owner(access, customer_id, "site:read")
        return await self._site_of(customer, site_id)

    async def create_site(self, access: Access, customer_id: str | None, fields: Fields) -> Site:
        customer = await self._site_owner(access, customer_id, "site:write")
        read.only(fields, ("name", "domain", "status"))
        name = read.text(fields, "name", NAME_MAX, required=True) or ""
        domain = read.hostname(read.string(fields, "domain"))
        status = read.choice(fields, "status", SITE_STATUSES) or ACTIVE
        site = await self.db.create_site(new_id("site_"), customer, name, domain, status)
        if site is None:  # the customer was deleted meanwhile
            raise OAuthError("not_found", "No such customer.")
        await self._audit(
            events.SITE_CREATED, access, xspe=site.xspe, customer_id=site.customer_id, site_id=site.site_id
        )
        return site

    async def update_site(
        self, access: Access, customer_id: str | None, site_id: str, fields: Fields, if_match: str | None
    ) -> Site:
        customer = await self._site_owner(access, customer_id, "site:write")
        await self._site_of(customer, site_id)
        read.only(fields, ("name", "domain", "status", "version"))
        changes = {
            "name": read.text(fields, "name", NAME_MAX, required="name" in fields),
            "domain": read.hostname(read.string(fields, "domain")) if fields.get("domain") is not None else None,
            "status": read.choice(fields, "status", SITE_STATUSES),
        }
        expected = read.expected_version(fields, if_match)
        try:
            site = await self.db.update_site(site_id, {k: v for k, v in changes.items() if v is not None}, expected)
        except VersionConflict as exc:
            raise conflict(exc.current) from exc
        if site is None:
            raise OAuthError("not_found", "No such site.")
        await self._audit(events.SITE_UPDATED, access, xspe=site.xspe, customer_id=site.customer_id, site_id=site_id)
        return site

    async def delete_site(self, access: Access, customer_id: str | None, site_id: str) -> dict[str, object]:
        customer = await self._site_owner(access, customer_id, "site:write")
        await self._site_of(customer, site_id)
        if not await self.db.delete_site(site_id):
            raise OAuthError("not_found", "No such site.")
        await self._audit(
            events.SITE_DELETED, access, xspe=customer.xspe, customer_id=customer.customer_id, site_id=site_id
        )
        return {"site_id": site_id, "deleted": True}
