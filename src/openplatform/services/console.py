"""What the management screens may do, for whom (SPEC §4), on top of ``Admin``.

Every lookup goes through the signed-in user: a developer reaches only the apps
they own, an SPE admin only their SPE's customers and installations, a platform
admin everything. Something out of reach is reported as *not found*, never as
*forbidden*, so ids cannot be probed. Form input is checked field by field with
the same rules as the CLI and API (services.validation), and all errors are
reported at once so each can be shown next to its field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from openplatform import events
from openplatform.core.redirect_uri import ascii_url
from openplatform.core.signing import sign_launch
from openplatform.models import ACTIVE, App, Customer, Installation
from openplatform.services import validation as check
from openplatform.services.admin import Admin
from openplatform.services.validation import NotFound, ValidationError
from openplatform.storage.sql.accounts import User
from openplatform.storage.sql.console import ConsoleQueries
from openplatform.storage.sql.directory import DirectoryDb, VersionConflict

CUSTOMER_STATUSES = ("active", "disabled")
CHANGED_MEANWHILE = "someone else saved this customer meanwhile; the form now shows their version"


class FormErrors(Exception):
    """Field name → message, for every field that failed."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def validate(checks: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each field's check; raise FormErrors naming every field that failed."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, run in checks.items():
        try:
            values[name] = run()
        except ValidationError as exc:
            errors[exc.field if exc.field in checks else name] = exc.message
    if errors:
        raise FormErrors(errors)
    return values


def app_checks(form: dict[str, list[str]], private_networks: bool = False) -> dict[str, Callable[[], Any]]:
    def first(name: str) -> str:
        return (form.get(name) or [""])[0]

    return {
        "name": lambda: check.text("name", first("name")),
        "host_url": lambda: check.url("host_url", first("host_url")),
        "webhook_url": lambda: check.webhook_url(first("webhook_url"), private_networks),
        "scope": lambda: check.scopes(form.get("scope", [])),
        "ip_whitelist": lambda: check.whitelist(form.get("ip_whitelist", [])),
    }


def customer_checks(name: str, contact: str) -> dict[str, Callable[[], Any]]:
    return {
        "name": lambda: check.text("name", name),
        "contact": lambda: check.text("contact", contact, 320, required=False),
    }


def launch_url(host_url: str, params: dict[str, str]) -> str:
    """host_url with the signed launch parameters added to its query (an ASCII URL: SPEC §9)."""
    parts = urlsplit(ascii_url(host_url))
    query = "&".join(filter(None, (parts.query, urlencode(params))))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))


class Console:
    def __init__(
        self, admin: Admin, queries: ConsoleQueries, directory: DirectoryDb,
        changed: Callable[[str, str], None] = lambda kind, key: None,
    ) -> None:  # fmt: skip
        self.admin = admin
        self.queries = queries
        self.directory = directory
        self.changed = changed  # drops a changed object from this process's caches at once

    # ---------------------------------------------------------- developer: apps

    async def app_of(self, user: User, app_id: str) -> App:
        app = await self.admin.db.get_app(app_id) if len(app_id) <= 64 else None
        if app is None or (user.role != "admin" and app.owner_id != user.user_id):
            raise NotFound("no such app")
        return app

    async def create_app(self, user: User, form: dict[str, list[str]]) -> tuple[App, str]:
        v = validate(app_checks(form, self.admin.webhook_private_networks))
        app, secret = await self.admin.create_app(
            v["name"], v["host_url"], v["scope"], v["ip_whitelist"], v["webhook_url"], owner_id=user.user_id
        )
        return app, secret

    async def edit_app(self, user: User, app_id: str, form: dict[str, list[str]]) -> App:
        await self.app_of(user, app_id)
        v = validate(app_checks(form, self.admin.webhook_private_networks))
        await self.queries.update_app(
            app_id, name=v["name"], host_url=v["host_url"], webhook_url=v["webhook_url"],
            scopes=" ".join(v["scope"]), ip_whitelist=" ".join(v["ip_whitelist"]),
        )  # fmt: skip
        self.changed("app", app_id)
        await self.admin.db.audit(events.APP_UPDATED, app_id=app_id, user_id=user.user_id)
        return await self.admin.require_app(app_id)

    async def rotate(self, user: User, app_id: str, grace_seconds: int) -> str:
        await self.app_of(user, app_id)
        return await self.admin.rotate_secret(app_id, grace_seconds)  # announced by the admin service

    async def set_app_status(self, user: User, app_id: str, status: str) -> App:
        await self.app_of(user, app_id)
        return await self.admin.set_status(app_id, status)  # announced by the admin service

    # ------------------------------------------------------- SPE admin: customers

    async def customer_of(self, user: User, customer_id: str) -> Customer:
        customer = await self.admin.db.get_customer(customer_id) if len(customer_id) <= 64 else None
        if customer is None or (user.role != "admin" and customer.xspe != user.xspe):
            raise NotFound("no such customer")
        return customer

    async def create_customer(self, user: User, name: str, contact: str) -> Customer:
        v = validate(customer_checks(name, contact))
        return await self.admin.create_customer(user.xspe or "", v["name"], v["contact"])

    async def edit_customer(
        self, user: User, customer_id: str, values: dict[str, str], version: int | None = None
    ) -> Customer:
        """Save the form; ``version`` (the one the form was loaded with) guards against lost updates."""
        customer = await self.customer_of(user, customer_id)
        checks = customer_checks(values.get("name", ""), values.get("contact", ""))
        checks["status"] = lambda: _status(values.get("status", ""))
        v = validate(checks)
        try:
            saved, changes = await self.directory.update_customer(customer_id, v, version)
        except VersionConflict as exc:
            raise FormErrors({"version": CHANGED_MEANWHILE}) from exc
        for kind, key in changes:
            self.changed(kind, key)
        await self.admin.db.audit(events.CUSTOMER_UPDATED, xspe=customer.xspe, customer_id=customer_id,
                                  user_id=user.user_id, status=v["status"])  # fmt: skip
        return saved or customer

    async def set_customer_status(self, user: User, customer_id: str, status: str) -> Customer:
        customer = await self.customer_of(user, customer_id)
        values = {"name": customer.name, "contact": customer.contact, "status": status}
        return await self.edit_customer(user, customer_id, values)

    # ---------------------------------------------------- installs and launches

    async def installable_app(self, app_id: str) -> App:
        app = await self.admin.db.get_app(app_id) if len(app_id) <= 64 else None
        if app is None:
            raise NotFound("no such app")
        return app

    async def _target(self, user: User, customer_id: str | None) -> Customer | None:
        return await self.customer_of(user, customer_id) if customer_id else None

    async def install(self, user: User, app_id: str, customer_id: str | None) -> Installation:
        app = await self.installable_app(app_id)
        if not app.active:
            raise ValidationError("app_id", "this app is suspended and cannot be installed")
        customer = await self._target(user, customer_id)
        if customer is not None and customer.status != ACTIVE:
            raise ValidationError("customer_id", "this customer is disabled; enable it to install apps for it")
        xspe = None if customer_id else user.xspe
        return await self.admin.install(app_id, customer_id=customer_id, xspe=xspe)  # announced

    async def uninstall(self, user: User, app_id: str, customer_id: str | None) -> Installation:
        await self.installable_app(app_id)
        await self._target(user, customer_id)
        xspe = None if customer_id else user.xspe
        return await self.admin.uninstall(app_id, customer_id=customer_id, xspe=xspe)  # announced

    async def launch(self, user: User, app_id: str, customer_id: str | None) -> str:
        """The signed launch of SPEC §3: where to send the SPE admin's browser."""
        app = await self.installable_app(app_id)
        customer = await self._target(user, customer_id)
        xspe = user.xspe or ""
        own = await self.admin.db.find_installation(app_id, xspe, customer_id) if customer_id else None
        if own is None and await self.admin.db.find_installation(app_id, xspe, None) is None:
            raise NotFound("the app is not installed there")
        if not app.active:
            raise ValidationError("app_id", "this app is suspended; it cannot be opened")
        if customer is not None and customer.status != ACTIVE:
            raise ValidationError("customer_id", "this customer is disabled; enable it to open apps for it")
        params = sign_launch(await self.admin.app_secret(app_id), app_id, xspe, customer_id)
        await self.admin.db.audit(events.APP_LAUNCHED, app_id=app_id, xspe=xspe, customer_id=customer_id,
                                  user_id=user.user_id)  # fmt: skip
        return launch_url(app.host_url, params)


def _status(value: str) -> str:
    if value not in CUSTOMER_STATUSES:
        raise ValidationError("status", "must be active or disabled")
    return value
