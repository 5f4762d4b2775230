"""Developer console (SPEC §4): my apps, create, edit, rotate the secret, suspend/resume, and what
happens to an app: token charts, its audit events and its webhook deliveries (send again).

A developer reaches only apps whose owner they are; a platform admin may open
any app's page too (from the admin's list of all apps).
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from openplatform.models import ACTIVE, REGISTRABLE_SCOPES, SUSPENDED, App
from openplatform.services.console import FormErrors, app_event_choices, event_filter
from openplatform.services.validation import NotFound, ValidationError
from openplatform.services.webhooks import MAX_ATTEMPTS
from openplatform.web.ui import secret_once
from openplatform.web.ui.charts import activity_charts
from openplatform.web.ui.pages import Confirm, Ctx, confirm_page, page, redirect, render

DAY = 86400.0
GRACE_CHOICES = (("0", "Immediately"), ("3600", "After 1 hour"), ("86400", "After 24 hours"))
SCOPE_HELP = {
    "customer:read": "Read the SPE's customers (app token)",
    "customer:write": "Create, edit and delete customers (app token)",
    "site:read": "Read customers' sites",
    "site:write": "Create, edit and delete customers' sites",
}


@page("developer")
async def apps_list(ctx: Ctx) -> Response:
    apps = await ctx.console.admin.db.list_apps(owner_id=ctx.user.user_id)
    last = await ctx.console.queries.last_token_at(a.app_id for a in apps)
    return render(ctx, "console/apps.html", apps=apps, last=last)


def _form_values(ctx: Ctx, app: App | None = None) -> dict[str, object]:
    if ctx.request.method == "POST":
        return {
            "name": ctx.value("name"), "host_url": ctx.value("host_url"),
            "webhook_url": ctx.value("webhook_url"), "scope": ctx.form.get("scope", []),
            "ip_whitelist": ctx.value("ip_whitelist"),
        }  # fmt: skip
    if app is None:
        return {"name": "", "host_url": "", "webhook_url": "", "scope": [], "ip_whitelist": ""}
    return {
        "name": app.name, "host_url": app.host_url, "webhook_url": app.webhook_url or "",
        "scope": list(app.scopes), "ip_whitelist": "\n".join(app.ip_whitelist),
    }  # fmt: skip


def _app_form(ctx: Ctx, app: App | None, errors: dict[str, str] | None = None) -> Response:
    return render(
        ctx, "console/app_form.html", 400 if errors else 200, app=app, values=_form_values(ctx, app),
        errors=errors or {}, scopes=REGISTRABLE_SCOPES, scope_help=SCOPE_HELP,
    )  # fmt: skip


@page("developer")
async def app_new(ctx: Ctx) -> Response:
    if ctx.request.method == "GET":
        return _app_form(ctx, None)
    try:
        app, _secret = await ctx.console.create_app(ctx.user, ctx.form)
    except FormErrors as exc:
        return _app_form(ctx, None, exc.errors)
    secret_once.grant(ctx, app.app_id)  # the secret is shown by the next page, once
    return redirect(ctx, f"/console/apps/{app.app_id}/secret")


@page("developer", "admin")
async def app_detail(ctx: Ctx) -> Response:
    """The app page: credentials, token counts and charts, settings, installations, recent events
    (``?event=`` filters them: an unknown type answers 400 with every event and the error next to
    the filter) and webhook deliveries."""
    app = await ctx.console.app_of(ctx.user, ctx.param("app_id"))
    console, queries, now = ctx.console, ctx.console.queries, ctx.accounts.now()
    chosen = ctx.request.query_params.get("event", "")
    errors: dict[str, str] = {}
    try:
        event = event_filter(chosen)
    except ValidationError as exc:
        event, errors = None, {exc.field: exc.message}
    activity = await console.activity(app.app_id, now)
    charts, reason_classes = activity_charts(activity)
    return render(
        ctx, "console/app.html", 400 if errors else 200, app=app, installs=await queries.installs(app_id=app.app_id),
        counts=await queries.token_counts(app.app_id, now - DAY), charts=charts, reasons=activity.reasons,
        reason_classes=reason_classes, events=await console.app_events(app.app_id, event),
        event=event, event_choices=app_event_choices(), errors=errors,
        deliveries=await console.deliveries(app.app_id), max_attempts=MAX_ATTEMPTS,
        last=(await queries.last_token_at([app.app_id])).get(app.app_id),
        old_secret_until=_grace_end(app), grace_choices=GRACE_CHOICES,
    )  # fmt: skip


@page("developer")
async def webhook_resend(ctx: Ctx) -> Response:
    """POST (CSRF-checked): queue one of the app's webhook notifications again, then back to the list."""
    app = await ctx.console.app_of(ctx.user, ctx.param("app_id"))
    delivery = ctx.param("delivery_id")
    if not delivery.isascii() or not delivery.isdigit() or len(delivery) > 18:
        raise NotFound("no such notification")
    await ctx.console.resend(ctx.user, app.app_id, int(delivery))
    return redirect(ctx, f"/console/apps/{app.app_id}?notice=webhook-resent#h-webhooks")


def _grace_end(app: App) -> float | None:
    return max((s.expires_at for s in app.secrets if s.expires_at is not None), default=None)


@page("developer")
async def app_edit(ctx: Ctx) -> Response:
    app = await ctx.console.app_of(ctx.user, ctx.param("app_id"))
    if ctx.request.method == "GET":
        return _app_form(ctx, app)
    try:
        await ctx.console.edit_app(ctx.user, app.app_id, ctx.form)
    except FormErrors as exc:
        return _app_form(ctx, app, exc.errors)
    return redirect(ctx, f"/console/apps/{app.app_id}?notice=app-updated")


def _grace(value: str) -> int:
    if value not in dict(GRACE_CHOICES):
        raise ValidationError("grace_seconds", "choose when the current secret stops working")
    return int(value)


@page("developer")
async def app_rotate(ctx: Ctx) -> Response:
    """GET: the confirmation page for the chosen overlap; POST: rotate, then show the new secret once."""
    app = await ctx.console.app_of(ctx.user, ctx.param("app_id"))
    if ctx.request.method == "GET":
        grace = _grace(ctx.request.query_params.get("grace_seconds", "0"))
        return confirm_page(ctx, _rotate_confirm(app, grace))
    await ctx.console.rotate(ctx.user, app.app_id, _grace(ctx.value("grace_seconds", "0")))
    secret_once.grant(ctx, app.app_id)
    return redirect(ctx, f"/console/apps/{app.app_id}/secret")


def _rotate_confirm(app: App, grace: int) -> Confirm:
    if grace == 0:
        warning = (
            "The current secret stops working at once: every server of the app that still uses it is refused "
            "(invalid_client) until it is given the new one."
        )
    else:
        hours = grace // 3600
        warning = (
            f"The current secret keeps working for {hours} hour{'s' if hours != 1 else ''}, then stops: "
            "give the new one to every server of the app before then."
        )
    return Confirm(
        title=f"Rotate the secret of {app.name}?",
        lines=("A new secret is made and shown to you once, on the next page.",),
        warning=warning, action=f"/console/apps/{app.app_id}/rotate", fields={"grace_seconds": str(grace)},
        button="Rotate now" if grace == 0 else "Rotate secret", cancel=f"/console/apps/{app.app_id}",
    )  # fmt: skip


@page("developer", "admin")
async def app_status(ctx: Ctx) -> Response:
    """GET ?status=suspended: the confirmation page; POST: suspend or resume (resuming needs no confirmation)."""
    app = await ctx.console.app_of(ctx.user, ctx.param("app_id"))
    values = ctx.request.query_params if ctx.request.method == "GET" else None
    status = values.get("status", "") if values is not None else ctx.value("status")
    if status not in (ACTIVE, SUSPENDED):
        raise ValidationError("status", "must be active or suspended")
    admin_list = (values.get("back", "") if values is not None else ctx.value("back")) == "admin"
    back = "/admin/apps" if admin_list else f"/console/apps/{app.app_id}"
    if values is not None:
        if status != SUSPENDED or not app.active:
            return redirect(ctx, back)  # nothing to confirm
        return confirm_page(ctx, await _suspend_confirm(ctx, app, back, admin_list))
    await ctx.console.set_app_status(ctx.user, app.app_id, status)
    notice = "app-resumed" if status == ACTIVE else "app-suspended"
    return redirect(ctx, f"{back}?notice={notice}")


async def _suspend_confirm(ctx: Ctx, app: App, back: str, admin_list: bool) -> Confirm:
    installs = len(await ctx.console.queries.installs(app_id=app.app_id))
    where = f"{installs} installation{'s' if installs != 1 else ''}" if installs else "no installation yet"
    return Confirm(
        title=f"Suspend {app.name}?",
        lines=(f"{app.name} is suspended everywhere at once ({where}).",),
        warning=(
            "Every token it holds stops working and it cannot get new ones; SPE admins cannot open it. "
            "Nothing is revoked: resuming it makes its unexpired tokens work again."
        ),
        action=f"/console/apps/{app.app_id}/status",
        fields={"status": SUSPENDED, **({"back": "admin"} if admin_list else {})},
        button="Suspend", cancel=back,
    )  # fmt: skip


@page("developer")
async def app_secret(ctx: Ctx) -> Response:
    app = await ctx.console.app_of(ctx.user, ctx.param("app_id"))
    secret = await secret_once.reveal(ctx, app)
    # The app's first secret is written with the app, at the same instant; a rotated one later.
    first = await ctx.console.queries.current_secret_created_at(app.app_id) == app.created_at
    return render(ctx, "console/secret.html", app=app, secret=secret, old_secret_until=_grace_end(app), first=first)


routes = [
    Route("/console", apps_list, methods=["GET"], name="console.apps"),
    Route("/console/apps/new", app_new, methods=["GET", "POST"], name="console.app_new"),
    Route("/console/apps/{app_id}", app_detail, methods=["GET"], name="console.app"),
    Route("/console/apps/{app_id}/edit", app_edit, methods=["GET", "POST"], name="console.app_edit"),
    Route("/console/apps/{app_id}/rotate", app_rotate, methods=["GET", "POST"], name="console.app_rotate"),
    Route("/console/apps/{app_id}/status", app_status, methods=["GET", "POST"], name="console.app_status"),
    Route("/console/apps/{app_id}/secret", app_secret, methods=["GET"], name="console.app_secret"),
    Route(
        "/console/apps/{app_id}/webhooks/{delivery_id}/resend",
        webhook_resend,
        methods=["POST"],
        name="console.webhook_resend",
    ),
]
