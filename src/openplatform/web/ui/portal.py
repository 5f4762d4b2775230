"""SPE admin portal (SPEC §4): customers, installations, and "Open app" (signed launch, SPEC §3).

An SPE admin sees only their own SPE. "Open app" is a form (POST, CSRF-checked)
whose answer sends the browser to the app's host_url with the signed launch
parameters; the page's CSP ``form-action`` names those apps' origins, because
browsers apply it to the redirect that follows a form.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from openplatform.models import Customer
from openplatform.records import InstallRow
from openplatform.services.console import FormErrors
from openplatform.web.ui.pages import Confirm, Ctx, confirm_page, origin_of, page, page_number, redirect, render

PAGE_SIZE = 20
DISABLED = "disabled"


def _origins(installs: list[InstallRow]) -> set[str]:
    return {origin_of(i.host_url) for i in installs}


@page("spe-admin")
async def customers(ctx: Ctx) -> Response:
    text = ctx.request.query_params.get("q", "").strip()[:200]
    number = page_number(ctx)
    queries = ctx.console.queries
    xspe = ctx.user.xspe or ""
    found, total = await queries.search_customers(xspe, text, PAGE_SIZE, (number - 1) * PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    if number > pages:  # past the end (e.g. an old link after deletions): show the last page
        number = pages
        found, total = await queries.search_customers(xspe, text, PAGE_SIZE, (number - 1) * PAGE_SIZE)
    spe = await ctx.console.admin.db.get_spe(ctx.user.xspe or "")
    return render(ctx, "portal/customers.html", customers=found, total=total, q=text, page=number,
                  pages=pages, spe=spe)  # fmt: skip


def _values_of(customer: Customer) -> dict[str, str]:
    return {"name": customer.name, "contact": customer.contact, "status": customer.status}


def _customer_form(ctx: Ctx, customer: object, values: dict[str, str], errors: dict[str, str]) -> Response:
    status = 400 if errors else 200
    return render(ctx, "portal/customer_form.html", status, customer=customer, values=values, errors=errors)


@page("spe-admin")
async def customer_new(ctx: Ctx) -> Response:
    values = {"name": ctx.value("name"), "contact": ctx.value("contact"), "status": "active"}
    if ctx.request.method == "GET":
        return _customer_form(ctx, None, values, {})
    try:
        customer = await ctx.console.create_customer(ctx.user, values["name"], values["contact"])
    except FormErrors as exc:
        return _customer_form(ctx, None, values, exc.errors)
    return redirect(ctx, f"/portal/customers/{customer.customer_id}?notice=customer-created")


@page("spe-admin")
async def customer_edit(ctx: Ctx) -> Response:
    customer = await ctx.console.customer_of(ctx.user, ctx.param("customer_id"))
    if ctx.request.method == "GET":
        return _customer_form(ctx, customer, _values_of(customer), {})
    values = {"name": ctx.value("name"), "contact": ctx.value("contact"), "status": ctx.value("status")}
    version = ctx.value("version")
    try:
        await ctx.console.edit_customer(
            ctx.user, customer.customer_id, values, int(version) if version.isdigit() else None
        )
    except FormErrors as exc:
        if "version" in exc.errors:  # show what the other person saved, and say so
            return _customer_form(ctx, customer, _values_of(customer), exc.errors)
        return _customer_form(ctx, customer, values, exc.errors)
    return redirect(ctx, f"/portal/customers/{customer.customer_id}?notice=customer-updated")


@page("spe-admin")
async def customer_status(ctx: Ctx) -> Response:
    """GET ?status=disabled: the confirmation page; POST: disable or enable (enabling needs no confirmation)."""
    customer = await ctx.console.customer_of(ctx.user, ctx.param("customer_id"))
    back = f"/portal/customers/{customer.customer_id}"
    if ctx.request.method == "GET":
        if ctx.request.query_params.get("status") != DISABLED or customer.status == DISABLED:
            return redirect(ctx, back)  # nothing to confirm
        return confirm_page(ctx, Confirm(
            title=f"Disable {customer.name}?",
            lines=("Its installations and data stay; enable it again to undo this.",),
            warning=(
                "At once, every user token and code that apps hold for this customer stops working, apps get "
                "no new ones, and no app can be opened for it."
            ),
            action=f"/portal/customers/{customer.customer_id}/status", fields={"status": DISABLED},
            button="Disable", cancel=back,
        ))  # fmt: skip
    status = ctx.value("status")
    await ctx.console.set_customer_status(ctx.user, customer.customer_id, status)
    return redirect(ctx, f"{back}?notice=customer-{'disabled' if status == DISABLED else 'enabled'}")


async def _catalogue(ctx: Ctx, installed: list[InstallRow]) -> list[object]:
    """Active apps that could still be installed here."""
    have = {i.app_id for i in installed}
    return [a for a in await ctx.console.admin.db.list_apps() if a.active and a.app_id not in have]


@page("spe-admin")
async def customer_detail(ctx: Ctx) -> Response:
    customer = await ctx.console.customer_of(ctx.user, ctx.param("customer_id"))
    installs = await ctx.console.queries.installs(xspe=ctx.user.xspe, customer_id=customer.customer_id)
    own = [i for i in installs if i.customer_id]
    return render(
        ctx, "portal/customer.html", form_origins=_origins(installs), customer=customer, own=own,
        spe_wide=[i for i in installs if not i.customer_id], catalogue=await _catalogue(ctx, installs),
    )  # fmt: skip


@page("spe-admin")
async def spe_apps(ctx: Ctx) -> Response:
    installs = [i for i in await ctx.console.queries.installs(xspe=ctx.user.xspe) if not i.customer_id]
    return render(ctx, "portal/apps.html", form_origins=_origins(installs), installs=installs,
                  catalogue=await _catalogue(ctx, installs))  # fmt: skip


def _back(customer_id: str | None, notice: str) -> str:
    return f"/portal/customers/{customer_id}?notice={notice}" if customer_id else f"/portal/apps?notice={notice}"


@page("spe-admin")
async def install(ctx: Ctx) -> Response:
    customer_id = ctx.value("customer_id") or None
    await ctx.console.install(ctx.user, ctx.value("app_id"), customer_id)
    return redirect(ctx, _back(customer_id, "installed"))


@page("spe-admin")
async def uninstall(ctx: Ctx) -> Response:
    customer_id = (ctx.value("customer_id") if ctx.form else ctx.request.query_params.get("customer_id")) or None
    app_id = ctx.value("app_id") if ctx.form else ctx.request.query_params.get("app_id", "")
    app = await ctx.console.installable_app(app_id)
    customer = await ctx.console.customer_of(ctx.user, customer_id) if customer_id else None
    if ctx.request.method == "GET":
        return render(ctx, "portal/uninstall.html", app=app, customer=customer)
    await ctx.console.uninstall(ctx.user, app.app_id, customer_id)
    return redirect(ctx, _back(customer_id, "uninstalled"))


@page("spe-admin")
async def launch(ctx: Ctx) -> Response:
    url = await ctx.console.launch(ctx.user, ctx.value("app_id"), ctx.value("customer_id") or None)
    return redirect(ctx, url)


routes = [
    Route("/portal", customers, methods=["GET"], name="portal.customers"),
    Route("/portal/customers/new", customer_new, methods=["GET", "POST"], name="portal.customer_new"),
    Route("/portal/customers/{customer_id}", customer_detail, methods=["GET"], name="portal.customer"),
    Route("/portal/customers/{customer_id}/edit", customer_edit, methods=["GET", "POST"]),
    Route("/portal/customers/{customer_id}/status", customer_status, methods=["GET", "POST"]),
    Route("/portal/apps", spe_apps, methods=["GET"], name="portal.apps"),
    Route("/portal/install", install, methods=["POST"], name="portal.install"),
    Route("/portal/uninstall", uninstall, methods=["GET", "POST"], name="portal.uninstall"),
    Route("/portal/launch", launch, methods=["POST"], name="portal.launch"),
]
