"""Platform admin (issue 3 item 4): SPEs, user accounts (a new password for anyone, SPEC §9), and every app."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from openplatform.records import ACTIVE, DISABLED
from openplatform.services.accounts import ROLES, check_email, check_password
from openplatform.services.console import FormErrors, validate
from openplatform.services.validation import NotFound, ValidationError
from openplatform.services.validation import text as check_text
from openplatform.web.ui.pages import Confirm, Ctx, confirm_page, page, redirect, render

ROLE_NAMES = {"admin": "Platform admin", "developer": "Developer", "spe-admin": "SPE admin"}


@page("admin")
async def spes(ctx: Ctx) -> Response:
    errors: dict[str, str] = {}
    name = ctx.value("name")
    if ctx.request.method == "POST":
        try:
            validate({"name": lambda: check_text("name", name)})
            await ctx.console.admin.create_spe(name)
            return redirect(ctx, "/admin?notice=spe-created")
        except FormErrors as exc:
            errors = exc.errors
    found = await ctx.console.admin.db.list_spes()
    return render(ctx, "admin/spes.html", 400 if errors else 200, spes=found, errors=errors, name=name)


async def _users_page(ctx: Ctx, values: dict[str, str], errors: dict[str, str]) -> Response:
    users = await ctx.accounts.store.list_users()
    spe_list = await ctx.console.admin.db.list_spes()
    return render(
        ctx, "admin/users.html", 400 if errors else 200, users=users, spes=spe_list,
        spe_names={s.xspe: s.name for s in spe_list}, roles=ROLES, role_names=ROLE_NAMES,
        values=values, errors=errors, now=ctx.accounts.now(),
    )  # fmt: skip


@page("admin")
async def users(ctx: Ctx) -> Response:
    values = {k: ctx.value(k) for k in ("email", "role", "xspe")}
    if ctx.request.method == "GET":
        return await _users_page(ctx, values, {})
    xspe = values["xspe"] if values["role"] == "spe-admin" else None
    password = ctx.value("password")
    try:
        validate({
            "email": lambda: check_email(values["email"]),
            "role": lambda: _role(values["role"]),
            "xspe": lambda: _spe_given(values["role"], xspe),
            "password": lambda: check_password(password),
        })  # fmt: skip
        await ctx.accounts.create_user(values["email"], values["role"], password, xspe)
    except FormErrors as exc:
        return await _users_page(ctx, values, exc.errors)
    except ValidationError as exc:
        return await _users_page(ctx, values, {exc.field: exc.message})
    except NotFound:
        return await _users_page(ctx, values, {"xspe": "choose an existing SPE"})
    return redirect(ctx, "/admin/users?notice=user-created")


def _role(role: str) -> str:
    if role not in ROLES:
        raise ValidationError("role", "choose a role")
    return role


def _spe_given(role: str, xspe: str | None) -> str | None:
    if role == "spe-admin" and not xspe:
        raise ValidationError("xspe", "choose the SPE this SPE admin will manage")
    return xspe


@page("admin")
async def user_status(ctx: Ctx) -> Response:
    """GET ?status=disabled: the confirmation page; POST: disable or enable (enabling needs no confirmation)."""
    user_id = ctx.param("user_id")
    if user_id == ctx.user.user_id:
        raise ValidationError("status", "you cannot disable your own account")
    if ctx.request.method == "GET":
        target = await ctx.accounts.store.get_user(user_id)
        if target is None:
            raise NotFound("no user", user_id)
        if ctx.request.query_params.get("status") != DISABLED or target.status == DISABLED:
            return redirect(ctx, "/admin/users")  # nothing to confirm
        sessions = await ctx.accounts.store.count_sessions(target.user_id)
        plural = "s" if sessions != 1 else ""
        signed_in = f"signed out of its {sessions} open session{plural}" if sessions else "not signed in now"
        return confirm_page(ctx, Confirm(
            title=f"Disable {target.email}?",
            lines=(f"The account will be {signed_in}." if sessions else f"The account is {signed_in}.",
                   "Enable it again to undo this."),
            warning="It cannot sign in while disabled, and every session it has ends at once.",
            action=f"/admin/users/{target.user_id}/status", fields={"status": DISABLED},
            button="Disable", cancel="/admin/users",
        ))  # fmt: skip
    status = ctx.value("status")
    await ctx.accounts.set_status(user_id, status if status in (ACTIVE, DISABLED) else "")
    return redirect(ctx, f"/admin/users?notice=user-{'enabled' if status == ACTIVE else 'disabled'}")


@page("admin")
async def user_unlock(ctx: Ctx) -> Response:
    user_id = ctx.param("user_id")
    if await ctx.accounts.store.get_user(user_id) is None:
        raise NotFound("no user", user_id)
    await ctx.accounts.unlock(user_id)
    return redirect(ctx, "/admin/users?notice=user-unlocked")


@page("admin")
async def user_password(ctx: Ctx) -> Response:
    """A new password for someone else's account: typed, then confirmed on a second page."""
    target = await ctx.accounts.store.get_user(ctx.param("user_id"))
    if target is None:
        raise NotFound("no user", ctx.param("user_id"))
    if target.user_id == ctx.user.user_id:  # one's own: with the current password
        return redirect(ctx, "/account/password")
    errors: dict[str, str] = {}
    if ctx.request.method == "POST":
        password = ctx.value("password")
        try:
            validate({"password": lambda: check_password(password)})
        except FormErrors as exc:
            errors = exc.errors
        else:
            if ctx.value("confirmed") == "yes":
                await ctx.accounts.set_password(target.user_id, password, by=ctx.user.user_id)
                return redirect(ctx, "/admin/users?notice=password-set")
            sessions = await ctx.accounts.store.count_sessions(target.user_id)
            return render(ctx, "admin/password_confirm.html", target=target, password=password, sessions=sessions)
    return render(ctx, "admin/password.html", 400 if errors else 200, target=target, errors=errors)


@page("admin")
async def all_apps(ctx: Ctx) -> Response:
    apps = await ctx.console.admin.db.list_apps()
    owners = await ctx.accounts.store.emails({a.owner_id for a in apps if a.owner_id})
    last = await ctx.console.queries.last_token_at(a.app_id for a in apps)
    return render(ctx, "admin/apps.html", apps=apps, owners=owners, last=last)


routes = [
    Route("/admin", spes, methods=["GET", "POST"], name="admin.spes"),
    Route("/admin/users", users, methods=["GET", "POST"], name="admin.users"),
    Route("/admin/users/{user_id}/status", user_status, methods=["GET", "POST"]),
    Route("/admin/users/{user_id}/unlock", user_unlock, methods=["POST"]),
    Route("/admin/users/{user_id}/password", user_password, methods=["GET", "POST"]),
    Route("/admin/apps", all_apps, methods=["GET"], name="admin.apps"),
]
