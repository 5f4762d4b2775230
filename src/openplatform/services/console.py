"""What the management screens may do, for whom (SPEC §4), on top of ``Admin``.

Every lookup goes through the signed-in user: a developer reaches only the apps
they own, an SPE admin only their SPE's customers and installations, a platform
admin everything. Something out of reach is reported as *not found*, never as
*forbidden*, so ids cannot be probed. Form input is checked field by field with
the same rules as the CLI and API (services.validation), and all errors are
reported at once so each can be shown next to its field.
"""

from __future__ import annotations

import ast
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson

from openplatform import events
from openplatform.core.redirect_uri import ascii_url, without_params
from openplatform.core.signing import sign_launch
from openplatform.errors import ERRORS
from openplatform.models import ACTIVE, App, Customer, Installation
from openplatform.records import User, VersionConflict
from openplatform.services import validation as check
from openplatform.services.admin import Admin
from openplatform.services.stores import ConsoleStore, DirectoryStore, WebhookOutbox
from openplatform.services.validation import NotFound, ValidationError
from openplatform.services.webhooks import INSTALL, MAX_ATTEMPTS

CUSTOMER_STATUSES = ("active", "disabled")
CHANGED_MEANWHILE = "someone else saved this customer meanwhile; the form now shows their version"
HOUR, DAY = 3600, 86400
HOURS_SHOWN, DAYS_SHOWN = 24, 30  # the app page's two charts (UTC hours and days, the current one last)
EVENTS_SHOWN = 20
DELIVERIES_SHOWN = 20
# Audit events that never name an app (people, SPEs, admin keys): the app page offers the others as filters.
NOT_ABOUT_APPS = ("user.", "admin_key.", "spe.")


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bar of a chart: ``[start, start + width)`` in UNIX seconds (UTC), the access tokens
    issued in it, and its refused token requests by reason (the OAuth ``error``)."""

    start: int
    width: int
    grants: int
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())


@dataclass(frozen=True, slots=True)
class Activity:
    """An app's token grants and failures: per hour over the last 24 hours and per day over
    the last 30 days (oldest first, the current hour or day last), and every failure reason
    seen in those 30 days, the most frequent first."""

    hours: list[Bucket]
    days: list[Bucket]
    reasons: list[str]


@dataclass(frozen=True, slots=True)
class EventRow:
    """An audit event as the app page shows it: ``label`` says what happened (from events.py's
    meaning), ``reason`` why it failed (an OAuth error with its sentence, or a webhook's error),
    ``details`` the row's other fields."""

    at: float
    event: str
    label: str
    reason: str | None
    details: list[tuple[str, str]]
    occurrences: int
    xspe: str | None
    customer_id: str | None
    ip: str | None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A webhook notification of the app's outbox; ``status`` is ``delivered``, ``pending`` (due
    or waiting to retry at ``next_attempt_at``) or ``failed`` (every attempt failed: abandoned)."""

    id: int
    kind: str  # "install" or "uninstall"
    xspe: str | None
    customer_id: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: float
    delivered_at: float | None
    next_attempt_at: float


@functools.cache
def event_meanings() -> dict[str, str]:
    """Every audit event of events.py → its meaning (the constant's docstring), in events.py's order.

    Read from events.py's source, as docs/events.md is (``tools.gen_docs``): the docstring of a
    constant is not kept at run time.
    """
    body = ast.parse(Path(events.__file__).read_text(encoding="utf-8")).body
    found: dict[str, str] = {}
    for node, following in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Constant):
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                found[str(node.value.value)] = " ".join(str(following.value.value).split())
    return found


@functools.cache
def event_label(event: str) -> str:
    """A short human label: the meaning's first clause, without parentheses or field names
    ("token.denied" → "A token endpoint refused a request"); the code itself if unknown."""
    meaning = event_meanings().get(event)
    if meaning is None:
        return event
    text = re.sub(r"\s*\([^()]*\)", "", re.split(r"; |: |\. ", meaning, maxsplit=1)[0]).rstrip(". ")
    text = re.sub(r" with ``\w+``$", "", text)  # "... refused a request with ``error``": the reason says it
    return text.replace("``", "").rstrip(". ")


def app_event_choices() -> list[tuple[str, str]]:
    """The event types the app page filters on, ``(event, label)`` in events.py's order."""
    return [(event, event_label(event)) for event in event_meanings() if not event.startswith(NOT_ABOUT_APPS)]


def event_filter(value: str) -> str | None:
    """The ``event`` query parameter of the app page: "" is every event; raises ValidationError
    ("event") for anything that is not one of ``app_event_choices()``."""
    if value == "":
        return None
    if value not in dict(app_event_choices()):
        raise ValidationError("event", "Choose an event type from the list.")
    return value


def _reason(error: object) -> str | None:
    if error is None or error == "":
        return None
    kind = ERRORS.get(str(error))
    return f"{kind.error} ({kind.code}): {kind.message}" if kind is not None else str(error)


def event_row(row: dict[str, Any]) -> EventRow:
    """An ``audit_events`` row (a dict of its columns) for the screen."""
    try:
        detail = orjson.loads(str(row.get("detail") or "{}"))
    except orjson.JSONDecodeError:
        detail = {}
    detail = detail if isinstance(detail, dict) else {}
    reason = _reason(detail.pop("error", None))
    details = [(str(k), v if isinstance(v, str) else orjson.dumps(v).decode()) for k, v in detail.items()]
    return EventRow(
        at=float(row["at"]), event=str(row["event"]), label=event_label(str(row["event"])), reason=reason,
        details=details, occurrences=int(row.get("occurrences") or 1), xspe=row.get("xspe"),
        customer_id=row.get("customer_id"), ip=row.get("ip"),
    )  # fmt: skip


def delivery_row(row: dict[str, Any]) -> DeliveryRow:
    """A ``webhook_deliveries`` row (a dict of its columns) for the screen."""
    payload = orjson.loads(str(row["payload"]))
    attempts = int(row["attempts"])
    if row["delivered_at"] is not None:
        status = "delivered"
    elif attempts >= MAX_ATTEMPTS:
        status = "failed"
    else:
        status = "pending"
    return DeliveryRow(
        id=int(row["id"]), kind="install" if payload.get("type") == INSTALL else "uninstall",
        xspe=payload.get("xspe"), customer_id=payload.get("customer_id") or None, status=status,
        attempts=attempts, last_error=row["last_error"], created_at=float(row["created_at"]),
        delivered_at=row["delivered_at"], next_attempt_at=float(row["next_attempt_at"]),
    )  # fmt: skip


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
    """host_url with the signed launch parameters added to its query (an ASCII URL: SPEC §9), in
    place of any of its own pairs of the same names (``core.redirect_uri.without_params``)."""
    parts = urlsplit(ascii_url(host_url))
    query = "&".join(filter(None, (without_params(parts.query, params.keys()), urlencode(params))))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", query, ""))


class Console:
    def __init__(
        self, admin: Admin, queries: ConsoleStore, directory: DirectoryStore,
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

    # ------------------------------------------------------- developer: activity

    async def activity(self, app_id: str, now: float) -> Activity:
        """Grants and failures of the app per UTC hour (the last 24) and per UTC day (the last 30),
        from the audit log: two statements whatever the number of rows (``ConsoleStore``)."""
        hour, day = math.floor(now / HOUR), math.floor(now / DAY)
        hour_starts = [(hour - HOURS_SHOWN + 1 + i) * HOUR for i in range(HOURS_SHOWN)]
        day_starts = [(day - DAYS_SHOWN + 1 + i) * DAY for i in range(DAYS_SHOWN)]
        ranges = [(start, start + HOUR) for start in hour_starts] + [(start, start + DAY) for start in day_starts]
        grants = await self.queries.grants_per_bucket(app_id, ranges)
        hourly: dict[int, dict[str, int]] = {start: {} for start in hour_starts}
        daily: dict[int, dict[str, int]] = {start: {} for start in day_starts}
        totals: dict[str, int] = {}
        reasons_of: dict[str, str] = {}
        for bucket, detail, count in await self.queries.denials_per_bucket(app_id, day_starts[0], HOUR):
            if detail not in reasons_of:
                reasons_of[detail] = _error_of(detail)
            reason, start = reasons_of[detail], bucket * HOUR
            for found in (hourly.get(start), daily.get(start - start % DAY)):
                if found is not None:
                    found[reason] = found.get(reason, 0) + count
            totals[reason] = totals.get(reason, 0) + count
        return Activity(
            hours=[Bucket(s, HOUR, g, hourly[s]) for s, g in zip(hour_starts, grants[:HOURS_SHOWN], strict=True)],
            days=[Bucket(s, DAY, g, daily[s]) for s, g in zip(day_starts, grants[HOURS_SHOWN:], strict=True)],
            reasons=sorted(totals, key=lambda r: (-totals[r], r)),
        )

    async def app_events(self, app_id: str, event: str | None = None, limit: int = EVENTS_SHOWN) -> list[EventRow]:
        """The app's newest audit events (of one type when ``event`` is given), newest first."""
        return [event_row(row) for row in await self.queries.recent_events(app_id, limit, event)]

    def outbox(self) -> WebhookOutbox:
        return self.admin.stores.outbox

    async def deliveries(self, app_id: str, limit: int = DELIVERIES_SHOWN) -> list[DeliveryRow]:
        """The app's newest webhook notifications, newest first."""
        return [delivery_row(row) for row in await self.outbox().list(app_id, limit)]

    async def resend(self, user: User, app_id: str, delivery_id: int) -> None:
        """Queue a notification of the app again (``WebhookOutbox.requeue``): the webhook worker
        sends it at its next poll, with a fresh set of attempts. Audited as ``webhook.resent``.
        Raises NotFound when the app is out of the user's reach or has no such notification."""
        await self.app_of(user, app_id)
        before = await self.outbox().requeue(delivery_id, app_id, self.admin.db.clock(), MAX_ATTEMPTS)
        if before is None:
            raise NotFound("no such notification")
        was = delivery_row(before)
        await self.admin.db.audit(
            events.WEBHOOK_RESENT, app_id=app_id, xspe=was.xspe, customer_id=was.customer_id, user_id=user.user_id,
            delivery_id=delivery_id, previous_attempts=was.attempts, was=was.status,
        )  # fmt: skip

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


def _error_of(detail: str) -> str:
    """The ``error`` of a ``token.denied`` row's detail (JSON text)."""
    try:
        error = orjson.loads(detail).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    return str(error) if error else "unknown"
