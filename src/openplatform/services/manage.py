"""The admin API's use cases (SPEC §10): what one admin key may see and change.

The admin API is the third door to the same rules as the command line and the
screens: every change goes through ``Admin``, ``Accounts`` and the directory's
storage, which validate, audit and announce it (a revocation reaches every node
at once, SPEC §8). This module adds only the reach of the key:

- a key of the whole platform (``xspe`` None) may do everything the CLI does;
- a key bound to an SPE sees and changes only that SPE: its customers, its
  installations, its spe-admin accounts and its audit events. Objects of another
  SPE answer 404 ``not_found``, exactly like objects that do not exist, so no
  identifier can be probed; operations such a key may never do (creating SPEs,
  creating or changing apps, which are platform-wide, accounts of another role)
  answer 403 ``access_denied`` whatever their target. Apps may be read as a
  catalogue (the SPE's portal installs from it: ``catalogue_json``), never what the
  developer keeps for themselves: the secret, the webhook URL (its query often
  carries the receiver's credential, SPEC §9), the IP whitelist and the owner; nor
  may such a key look accounts up by e-mail address (``owner``).

Input arrives as parsed JSON (``Fields``): strings, whole numbers, lists of
strings; every refusal is an ``invalid_request`` naming the ``field``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openplatform import events
from openplatform.errors import OAuthError
from openplatform.models import ACTIVE, SUSPENDED, App, Customer, Installation, Spe
from openplatform.records import AdminKey, AuditFilter, CustomerFilter, User, VersionConflict
from openplatform.services import directory_input as read
from openplatform.services import validation as check
from openplatform.services.accounts import Accounts, app_owner
from openplatform.services.admin import MAX_GRACE_SECONDS, Admin
from openplatform.services.console import event_meanings
from openplatform.services.directory import Page, conflict, uninstall_notice
from openplatform.services.directory_input import CONTACT_MAX, CUSTOMER_STATUSES, NAME_MAX, Fields
from openplatform.services.validation import NotFound, ValidationError

MAX_LIST_ITEMS = 100  # scopes, whitelist entries: the whitelist's own limit


def spe_json(spe: Spe) -> dict[str, object]:
    return {"xspe": spe.xspe, "name": spe.name, "created_at": int(spe.created_at)}


def app_json(app: App) -> dict[str, object]:
    """An app as the admin API (and ``openplatform app show``) shows it: never a secret."""
    return {
        "app_id": app.app_id, "name": app.name, "host_url": app.host_url, "status": app.status,
        "scopes": list(app.scopes), "ip_whitelist": list(app.ip_whitelist), "webhook_url": app.webhook_url,
        "owner_id": app.owner_id, "created_at": int(app.created_at),
    }  # fmt: skip


CATALOGUE_FIELDS = ("app_id", "name", "host_url", "status", "scopes", "created_at")


def catalogue_json(app: App) -> dict[str, object]:
    """An app as a key bound to an SPE sees it (what the SPE portal's screens show): ``app_json``
    without ``webhook_url``, ``ip_whitelist`` and ``owner_id``, which are the developer's own."""
    shown = app_json(app)
    return {name: shown[name] for name in CATALOGUE_FIELDS}


def installation_json(found: Installation) -> dict[str, object]:
    return {
        "installation_id": found.installation_id, "app_id": found.app_id, "xspe": found.xspe,
        "customer_id": found.customer_id, "installed_at": int(found.installed_at),
        "uninstalled_at": int(found.uninstalled_at) if found.uninstalled_at is not None else None,
    }  # fmt: skip


def user_json(user: User) -> dict[str, object]:
    """An account without its password hash or lock-out counters."""
    return {"user_id": user.user_id, "email": user.email, "role": user.role, "xspe": user.xspe,
            "status": user.status, "created_at": int(user.created_at)}  # fmt: skip


def as_oauth_error(exc: ValidationError | NotFound) -> OAuthError:
    """The services' own refusals as the envelope's: 400 naming the field, or 404."""
    if isinstance(exc, ValidationError):
        return read.invalid(exc.field, exc.message)
    return OAuthError("not_found", f"Not found: {exc}.")


def string_list(fields: Fields, name: str) -> list[str] | None:
    """A list of strings, or one string of space- or comma-separated values (as the CLI takes them)."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise read.invalid(name, "must be a list of strings")
    if len(value) > MAX_LIST_ITEMS:
        raise read.invalid(name, f"must have at most {MAX_LIST_ITEMS} entries")
    return value


def seconds(fields: Fields, name: str, high: int) -> int:
    value = fields.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise read.invalid(name, f"must be a whole number of seconds from 0 to {high}")
    return value


class Manage:
    """The admin API's operations for one authenticated admin key."""

    def __init__(self, admin: Admin, accounts: Accounts, key: AdminKey) -> None:
        self.admin = admin
        self.db = admin.db
        self.accounts = accounts
        self.key = key
        self.directory = admin.stores.directory
        self.queries = admin.stores.console

    # ------------------------------------------------------------------ reach

    @property
    def bound(self) -> bool:
        return self.key.xspe is not None

    def platform_only(self, what: str) -> None:
        """Refuse what a key bound to an SPE may never do (403, whatever the target)."""
        if self.bound:
            raise OAuthError("access_denied", f"{what} needs an admin key of the whole platform.")

    def reach(self, xspe: str | None) -> str | None:
        """The SPE a request acts on: a bound key's own (another SPE does not exist for it)."""
        if not self.bound:
            return xspe
        if xspe is not None and xspe != self.key.xspe:
            raise OAuthError("not_found", "No such SPE.")
        return self.key.xspe

    def require_reach(self, xspe: str, what: str) -> None:
        if self.bound and xspe != self.key.xspe:
            raise OAuthError("not_found", f"No such {what}.")

    async def _announce(self, changes: list[tuple[str, str]]) -> None:
        """Drop the changed objects from this node's caches and tell the others (SPEC §8)."""
        if changes and self.db.announce is not None:
            await self.db.announce(changes)

    # ------------------------------------------------------------------- SPEs

    async def create_spe(self, fields: Fields) -> dict[str, object]:
        self.platform_only("Creating an SPE")
        read.only(fields, ("name",))
        return spe_json(await self.admin.create_spe(read.string(fields, "name") or ""))

    async def list_spes(self, page: Page) -> dict[str, object]:
        """One page of SPEs, oldest first (a bound key: its own only): ``Page.result``'s shape."""
        spes, total = await self.db.spes_page(self.key.xspe if self.bound else None, page.size, page.offset)
        return page.result([spe_json(s) for s in spes], total)

    async def get_spe(self, xspe: str) -> dict[str, object]:
        self.require_reach(xspe, "SPE")
        spe = await self.db.get_spe(xspe)
        if spe is None:
            raise OAuthError("not_found", "No such SPE.")
        return spe_json(spe)

    # -------------------------------------------------------------- customers

    async def customer(self, customer_id: str) -> Customer:
        found = await self.db.get_customer(customer_id)
        if found is None or (self.bound and found.xspe != self.key.xspe):
            raise OAuthError("not_found", "No such customer.")
        return found

    async def create_customer(self, fields: Fields) -> Customer:
        read.only(fields, ("xspe", "name", "contact"))
        xspe = self.reach(read.string(fields, "xspe"))
        if xspe is None:
            raise read.invalid("xspe", "is required")
        name = read.text(fields, "name", NAME_MAX, required=True) or ""
        contact = read.text(fields, "contact", CONTACT_MAX) or ""
        return await self.admin.create_customer(xspe, name, contact)

    async def list_customers(
        self, xspe: str | None, status: str | None, name: str | None, page: Page
    ) -> dict[str, object]:
        xspe = self.reach(xspe)
        if xspe is None:
            raise read.invalid("xspe", "is required: the SPE whose customers to list")
        status = read.choice({"status": status}, "status", CUSTOMER_STATUSES)
        name = read.filter_text(name, "name")
        if await self.db.get_spe(xspe) is None:
            raise OAuthError("not_found", "No such SPE.")
        items, total = await self.directory.list_customers(CustomerFilter(xspe, status=status, name=name),
                                                           page.size, page.offset)  # fmt: skip
        return {**page.result([c.public() for c in items], total), "xspe": xspe}

    async def update_customer(self, customer_id: str, fields: Fields, if_match: str | None) -> Customer:
        """Only the fields given change; ``version`` or ``If-Match`` guard against lost updates (409)."""
        await self.customer(customer_id)
        given, expected = read.customer_changes(fields, if_match)
        try:
            updated, changed = await self.directory.update_customer(customer_id, given, expected)
        except VersionConflict as exc:
            raise conflict(exc.current) from exc
        await self._announce(changed)  # a disabled customer's tokens stop at once (SPEC §8)
        if updated is None:
            raise OAuthError("not_found", "No such customer.")
        await self.db.audit(events.CUSTOMER_UPDATED, xspe=updated.xspe, customer_id=customer_id, fields=sorted(given))
        return updated

    async def delete_customer(self, customer_id: str) -> dict[str, object]:
        """Deletes the customer, its sites and its own installations; its codes and tokens end at once."""
        customer = await self.customer(customer_id)
        deleted, changed = await self.directory.delete_customer(customer_id, uninstall_notice)
        await self._announce(changed)
        if not deleted:
            raise OAuthError("not_found", "No such customer.")
        await self.db.audit(events.CUSTOMER_DELETED, xspe=customer.xspe, customer_id=customer_id)
        return {"customer_id": customer_id, "deleted": True}

    # ------------------------------------------------------------------- apps

    async def app(self, app_id: str) -> App:
        found = await self.db.get_app(app_id) if len(app_id) <= 64 else None
        if found is None:
            raise OAuthError("not_found", "No such app.")
        return found

    def show_app(self, app: App) -> dict[str, object]:
        """``app_json`` for a key of the whole platform, ``catalogue_json`` for one bound to an SPE."""
        return catalogue_json(app) if self.bound else app_json(app)

    async def list_apps(self, owner: str | None, page: Page) -> dict[str, object]:
        """One page of apps, oldest first (of one developer with ``owner``, an e-mail address)."""
        owner_id = None
        if owner is not None:
            self.platform_only("Listing the apps of an account")  # else an oracle of e-mail addresses
            user = await self.accounts.store.find_by_email(owner.strip().lower())
            if user is None:
                raise OAuthError("not_found", "No account with that e-mail address.")
            owner_id = user.user_id
        found, total = await self.db.apps_page(owner_id, page.size, page.offset)
        return page.result([self.show_app(a) for a in found], total)

    async def create_app(self, fields: Fields) -> tuple[App, str]:
        self.platform_only("Creating an app")
        read.only(fields, ("name", "host_url", "scopes", "ip_whitelist", "webhook_url", "owner"))
        owner_id = None
        owner = read.string(fields, "owner")
        if owner is not None:  # a developer: their console shows the app (SPEC §11)
            try:
                owner_id = (await app_owner(self.accounts.store, owner)).user_id
            except NotFound:
                raise read.invalid("owner", "is not the e-mail address of an account") from None
        created, secret = await self.admin.create_app(
            read.string(fields, "name") or "", read.string(fields, "host_url") or "",
            string_list(fields, "scopes") or [], string_list(fields, "ip_whitelist") or [],
            read.string(fields, "webhook_url"), owner_id=owner_id,
        )  # fmt: skip
        return await self.app(created.app_id), secret  # as stored: with its creation time

    async def update_app(self, app_id: str, fields: Fields) -> App:
        """Only the fields given change (``webhook_url: ""`` removes it); tokens see the change at once."""
        self.platform_only("Changing an app")
        await self.app(app_id)
        read.only(fields, ("name", "host_url", "scopes", "ip_whitelist", "webhook_url"))
        values: dict[str, Any] = {}
        if "name" in fields:
            values["name"] = check.text("name", read.string(fields, "name") or "")
        if "host_url" in fields:
            values["host_url"] = check.url("host_url", read.string(fields, "host_url") or "")
        if "webhook_url" in fields:
            given = read.string(fields, "webhook_url") or ""
            values["webhook_url"] = check.webhook_url(given, self.admin.webhook_private_networks)
        if "scopes" in fields:
            values["scopes"] = " ".join(check.scopes(string_list(fields, "scopes") or []))
        if "ip_whitelist" in fields:
            values["ip_whitelist"] = " ".join(check.whitelist(string_list(fields, "ip_whitelist") or []))
        if values:
            await self.queries.update_app(app_id, **values)
            await self._announce([("app", app_id)])
            await self.db.audit(events.APP_UPDATED, app_id=app_id, fields=sorted(values))
        return await self.app(app_id)

    async def rotate_secret(self, app_id: str, fields: Fields) -> dict[str, object]:
        self.platform_only("Rotating an app's secret")
        read.only(fields, ("grace_seconds",))
        grace = seconds(fields, "grace_seconds", MAX_GRACE_SECONDS)
        await self.app(app_id)
        secret = await self.admin.rotate_secret(app_id, grace)  # announced by the admin service
        return {"app_id": app_id, "secret": secret, "grace_seconds": grace}

    async def set_app_status(self, app_id: str, status: str) -> App:
        self.platform_only("Suspending or resuming an app")
        await self.app(app_id)
        assert status in (ACTIVE, SUSPENDED)
        return await self.admin.set_status(app_id, status)  # announced by the admin service

    # ---------------------------------------------------------- installations

    async def install(self, fields: Fields) -> Installation:
        """For one customer (``customer_id``) or the whole SPE (``xspe``); installing twice is a no-op."""
        read.only(fields, ("app_id", "customer_id", "xspe"))
        app_id = read.string(fields, "app_id")
        if not app_id:
            raise read.invalid("app_id", "is required")
        customer_id, xspe = read.string(fields, "customer_id"), read.string(fields, "xspe")
        if bool(customer_id) == bool(xspe):
            raise read.invalid("customer_id", "or xspe: give exactly one")
        if customer_id:
            await self.customer(customer_id)
        else:
            self.require_reach(xspe or "", "SPE")
        await self.app(app_id)
        return await self.admin.install(app_id, customer_id=customer_id, xspe=xspe)  # announced

    async def uninstall(self, installation_id: str) -> Installation:
        """Every code and token of the installation stops working at once (SPEC §8)."""
        found = await self.db.get_installation(installation_id) if len(installation_id) <= 64 else None
        if found is None or (self.bound and found.xspe != self.key.xspe):
            raise OAuthError("not_found", "No such installation.")
        if not found.active:
            raise OAuthError("not_found", "The installation was already uninstalled.")
        xspe = None if found.customer_id else found.xspe
        done = await self.admin.uninstall(found.app_id, customer_id=found.customer_id, xspe=xspe)  # announced
        return await self.db.get_installation(done.installation_id) or done

    async def list_installations(self, app_id: str | None, xspe: str | None, page: Page) -> dict[str, object]:
        """One page of installations, oldest first: of one app, in one SPE, or both (a bound key:
        only its SPE's).

        An unknown app or SPE is 404, as on the customers' list: never "installed nowhere".
        """
        if app_id is None and xspe is None and not self.bound:
            raise read.invalid("app_id", "or xspe: give at least one")
        if app_id is not None:
            await self.app(app_id)
        xspe = self.reach(xspe)
        if xspe is not None and await self.db.get_spe(xspe) is None:
            raise OAuthError("not_found", "No such SPE.")
        found, total = await self.db.installations_page(app_id, xspe, page.size, page.offset)
        return page.result([installation_json(i) for i in found], total)

    # ------------------------------------------------------------------ users

    async def user(self, user_id: str) -> User:
        found = await self.accounts.store.get_user(user_id) if len(user_id) <= 64 else None
        if found is None or (self.bound and found.xspe != self.key.xspe):
            raise OAuthError("not_found", "No such user.")
        return found

    async def create_user(self, fields: Fields) -> User:
        """An account for the screens; a bound key creates only spe-admins of its own SPE."""
        read.only(fields, ("email", "role", "password", "xspe"))
        role = read.string(fields, "role") or ""
        if self.bound and role != "spe-admin":
            raise OAuthError("access_denied", "A key bound to an SPE creates only spe-admin accounts of its SPE.")
        xspe = self.reach(read.string(fields, "xspe"))
        return await self.accounts.create_user(
            read.string(fields, "email") or "", role, read.string(fields, "password") or "", xspe
        )

    async def list_users(self, page: Page) -> dict[str, object]:
        """One page of accounts, oldest first (a bound key: its SPE's spe-admins only)."""
        xspe = self.key.xspe if self.bound else None
        users, total = await self.accounts.store.users_page(xspe, page.size, page.offset)
        return page.result([user_json(u) for u in users], total)

    async def set_password(self, user_id: str, fields: Fields) -> User:
        """A new password: the account's sessions end and its lock-outs are lifted (SPEC §9)."""
        read.only(fields, ("password",))
        await self.user(user_id)
        return await self.accounts.set_password(user_id, read.string(fields, "password") or "")

    # ------------------------------------------------------------------ audit

    async def audit_events(self, spec: AuditFilter, page: Page) -> dict[str, object]:
        """Newest first; a bound key sees only its SPE's events. ``event`` is a name of docs/events.md
        (as the console's filter): a typo is a 400 naming ``event``, not an empty page."""
        if spec.event is not None and spec.event not in event_meanings():
            raise read.invalid("event", "is not an audit event name (docs/events.md lists them)")
        if self.bound:
            spec = AuditFilter(spec.app_id, self.reach(spec.xspe), spec.event, spec.since, spec.until)
        items, total = await self.db.audit_page(spec, page.size, page.offset)
        return page.result(items, total)


def fields_of(data: Mapping[str, object]) -> Fields:
    """null means "not given", as on the Open APIs."""
    return {name: value for name, value in data.items() if value is not None}
