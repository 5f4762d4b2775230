"""`openplatform` command line (SPEC §5; the names are a contract scripts rely on).

Commands work on the configured database directly (no running server needed);
running servers see their changes within ``invalidation_poll_seconds``.
Commands that create or change something print one JSON object on stdout;
errors go to stderr with a non-zero exit status.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer
from pydantic import ValidationError as PydanticValidationError

from openplatform.config import Settings, configured_names, unknown_variables
from openplatform.services.validation import NotFound, ValidationError

if TYPE_CHECKING:  # imported lazily: a short command should not pay for the whole server
    from openplatform.services.admin import Admin

T = TypeVar("T")

# Plain click help (rich_markup_mode=None): Typer's rich help shows Python types (<str>, <bool>,
# <list[str]>) next to every option and drops text in [brackets]; every option names a METAVAR instead.
app = typer.Typer(help="openplatform: open-platform authorization server.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)  # fmt: skip
db_app = typer.Typer(help="Database schema and maintenance.", no_args_is_help=True, rich_markup_mode=None)
spe_app = typer.Typer(help="Service providers (SPEs).", no_args_is_help=True, rich_markup_mode=None)
customer_app = typer.Typer(help="Customers of an SPE.", no_args_is_help=True, rich_markup_mode=None)
apps_app = typer.Typer(help="Apps registered by developers.", no_args_is_help=True, rich_markup_mode=None)
user_app = typer.Typer(help="Accounts for the web screens.", no_args_is_help=True, rich_markup_mode=None)
install_app = typer.Typer(help="Install an app (installing is consenting); `install list` lists installations.",
                          rich_markup_mode=None)  # fmt: skip
admin_key_app = typer.Typer(help="Admin keys for operators' systems (/metrics, the admin API).", no_args_is_help=True,
                            rich_markup_mode=None)  # fmt: skip
app.add_typer(db_app, name="db")
app.add_typer(spe_app, name="spe")
app.add_typer(customer_app, name="customer")
app.add_typer(apps_app, name="app")
app.add_typer(user_app, name="user")
app.add_typer(admin_key_app, name="admin-key")
app.add_typer(install_app, name="install")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"openplatform {version('openplatform')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """openplatform: open-platform authorization server."""
    for line in unknown_variables(configured_names()):  # a misspelt setting would be silently ignored
        typer.echo(f"warning: {line}", err=True)


def _app_json(found: Any) -> dict[str, Any]:
    """An app as the list/show commands print it (never a secret)."""
    return {"app_id": found.app_id, "name": found.name, "host_url": found.host_url, "status": found.status,
            "scopes": list(found.scopes), "ip_whitelist": list(found.ip_whitelist), "webhook_url": found.webhook_url,
            "owner_id": found.owner_id, "created_at": int(found.created_at)}  # fmt: skip


async def _user_id(admin: Admin, email: str) -> str:
    """The account with this e-mail (raises NotFound)."""
    from openplatform.services.accounts import build_accounts

    user = await build_accounts(admin.stores, admin.keyring).store.find_by_email(email.strip().lower())
    if user is None:
        raise NotFound("no account with the e-mail", email)
    return str(user.user_id)


def _installation_json(found: Any) -> dict[str, Any]:
    return {"installation_id": found.installation_id, "app_id": found.app_id, "xspe": found.xspe,
            "customer_id": found.customer_id, "installed_at": int(found.installed_at),
            "uninstalled_at": int(found.uninstalled_at) if found.uninstalled_at is not None else None}  # fmt: skip


def fail(message: str, status: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(status)


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


def setting_problems(exc: PydanticValidationError) -> list[str]:
    """One line per bad setting: its environment variable's name and why (never its value, which
    may be a key or a password), e.g. ``OPENPLATFORM_ACCESS_TOKEN_TTL: Input should be a valid integer``."""
    prefix = Settings.model_config.get("env_prefix", "")
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        reason = error["msg"].removeprefix("Value error, ").splitlines()[0]
        lines.append(f"{prefix}{field.upper()}: {reason}" if field else f"configuration: {reason}")
    return lines


def settings() -> Settings:
    """The settings (SPEC §5); a bad one ends the command with exit status 7, each named on stderr."""
    named = os.environ.get("OPENPLATFORM_CONFIG_FILE")
    if named is not None and not (os.path.isfile(named) and os.access(named, os.R_OK)):
        # pydantic-settings skips a missing env file: the command would run on the defaults (a new
        # SQLite file, a newly generated server key) when the operator meant their own settings.
        reason = "no such file" if not os.path.exists(named) else "unreadable"
        if os.path.exists(named) and not os.path.isfile(named):
            reason = "not a file"
        fail(f"OPENPLATFORM_CONFIG_FILE: cannot read {named!r} ({reason})", 7)
    try:
        return Settings()
    except PydanticValidationError as exc:
        for line in setting_problems(exc):
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(7) from None
    except Exception as exc:  # e.g. an unreadable OPENPLATFORM_CONFIG_FILE
        fail(f"configuration: {_first_line(exc)}", 7)
        raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def prepare_database(config: Settings, *, force: bool = False) -> None:
    """Apply pending migrations (``force``: run Alembic even if the schema looks current).

    ``memory://`` is refused (exit 7): it lives inside the one process that built the app
    (``create_app(Settings(database_url="memory://"))``), so what a command changed, or a
    server it started, could not be reached by any other command.
    """
    if config.is_memory:
        fail(
            "OPENPLATFORM_DATABASE_URL: memory:// lives inside one Python process (create_app in tests); "
            "the openplatform command needs sqlite:///path or postgresql://user@host/db",
            7,
        )
    from openplatform.storage.sql.migrate import ensure_schema, upgrade

    try:
        upgrade(config) if force else ensure_schema(config)
    except Exception as exc:
        fail(f"cannot prepare the database at {_safe_url(config)} (OPENPLATFORM_DATABASE_URL): {_first_line(exc)}", 3)


def _safe_url(config: Settings) -> str:
    url = config.database_url
    if "@" in url:  # hide a password in the URL
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


def run_admin(action: Callable[[Admin], Awaitable[T]]) -> T:
    """Run one management action, turning known failures into clean exits."""
    from openplatform.runtime import build_admin, make_fanout

    config = settings()
    prepare_database(config)

    async def go() -> T:
        fanout = make_fanout(config)  # with Redis, every node hears of a change at once (SPEC §8)
        admin = build_admin(config, announce=fanout.publish_many if fanout is not None else None)
        try:
            return await action(admin)
        finally:
            await admin.db.close()
            if fanout is not None:
                await fanout.close()

    try:
        return asyncio.run(go())
    except ValidationError as exc:
        fail(f"{exc.field}: {exc.message}", 2)
    except NotFound as exc:
        fail(str(exc), 4)
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------- server


@app.command()
def serve(
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, metavar="N", help="Worker processes; /metrics sums them all.")
    ] = 1,
) -> None:
    """Serve the HTTP API (migrates the database first)."""
    config = settings()
    prepare_database(config)
    config.resolved_secret_key()  # create the key file once, before workers race for it
    from openplatform.web.serve import run

    run(host, port, workers, config.log_level, config.log_format)


@app.command()
def demo(
    host: Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT", help="Port to listen on.")] = 8000,
    partner_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            metavar="PORT",
            help="Port of the example app: the demo app's host_url is http://localhost:PORT/ [default: 9000]",
        ),
    ] = None,
    app_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL", help="Where the example app will run, instead of --partner-port: the demo app's host_url."
        ),
    ] = None,
) -> None:
    """Seed an SPE, a customer and an installed demo app (or reuse an earlier run's), print them, then serve.

    stdout gets one JSON object with the identifiers (for scripts); stderr the guide with curl commands.
    A busy --port fails with exit status 6 before the database is touched.
    """
    from openplatform.demo import APP_URL, allow_private_webhooks, port_problem, seed_and_describe

    if partner_port is not None and app_url is not None:
        fail("give --partner-port or --app-url, not both", 2)
    problem = port_problem(host, port)
    if problem is not None:
        fail(problem, 6)
    app_url = app_url or (f"http://localhost:{partner_port}" if partner_port is not None else APP_URL)
    note = allow_private_webhooks()  # before the settings are read, here and by the server
    config = settings()
    prepare_database(config)
    config.resolved_secret_key()
    try:
        facts, guide = asyncio.run(seed_and_describe(config, host, port, app_url))
    except ValidationError as exc:  # a bad --app-url
        fail(f"--app-url: {exc.message}", 2)
        raise
    emit(facts)  # one JSON object on stdout, like every command that creates something
    typer.echo(guide, err=True)
    typer.echo(note, err=True)
    from openplatform.web.serve import run

    run(host, port, 1, config.log_level, config.log_format)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    config = settings()
    prepare_database(config, force=True)
    emit({"database": _safe_url(config), "schema": "up to date"})


@db_app.command("cleanup")
def db_cleanup() -> None:
    """Run one cleanup pass now (SPEC §8): expired codes, tokens and invalidation records,
    old audit events and finished webhook deliveries; in small batches, so running servers
    are not held up."""
    config = settings()
    prepare_database(config)
    from openplatform.runtime import make_driver
    from openplatform.storage.sql.store import SqlStore

    async def go() -> dict[str, int]:
        store = SqlStore(make_driver(config))
        await store.start()
        try:
            return await store.cleanup(
                audit_retention_seconds=config.audit_retention_days * 86400, batch_size=config.cleanup_batch_size
            )
        finally:
            await store.close()

    try:
        counts = asyncio.run(go())
    except Exception as exc:
        fail(f"cleanup failed: {exc}")
        raise
    emit(counts)


@db_app.command("reencrypt")
def db_reencrypt() -> None:
    """Encrypt every app secret again under OPENPLATFORM_SECRET_KEY (SPEC §10; docs/deployment.md,
    "Rotating the server key"): prints {"reencrypted": N}, the secrets moved off old keys (0 when
    none was left). Exit status 5, changing nothing, when a secret no configured key opens."""
    from openplatform.services.admin import UndecryptableSecret

    try:
        count = run_admin(lambda admin: admin.reencrypt_secrets())
    except UndecryptableSecret as exc:
        fail(
            f"the secret of app {exc.app_id} cannot be decrypted with OPENPLATFORM_SECRET_KEY or any key in "
            "OPENPLATFORM_OLD_SECRET_KEYS; nothing was changed (add the key it was made under to "
            "OPENPLATFORM_OLD_SECRET_KEYS)",
            5,
        )
        raise
    emit({"reencrypted": count})


# ------------------------------------------------------------ SPEs and customers


@spe_app.command("create")
def spe_create(name: Annotated[str, typer.Option(metavar="NAME", help="Display name.")]) -> None:
    """Create an SPE: prints {"xspe", "name"}."""
    spe = run_admin(lambda admin: admin.create_spe(name))
    emit({"xspe": spe.xspe, "name": spe.name})


@customer_app.command("create")
def customer_create(
    xspe: Annotated[str, typer.Option(metavar="XSPE", help="The SPE the customer belongs to.")],
    name: Annotated[str, typer.Option(metavar="NAME", help="Display name.")],
    contact: Annotated[str, typer.Option(metavar="TEXT", help="Contact (e-mail or phone).")] = "",
) -> None:
    """Create a customer of an SPE: prints {"customer_id", "xspe", "name"}."""
    customer = run_admin(lambda admin: admin.create_customer(xspe, name, contact))
    emit({"customer_id": customer.customer_id, "xspe": customer.xspe, "name": customer.name})


# -------------------------------------------------------------------------- apps


@apps_app.command("create")
def app_create(
    name: Annotated[str, typer.Option(metavar="NAME", help="Display name.")],
    host_url: Annotated[str, typer.Option("--host-url", metavar="URL", help="The app's entrance URL.")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", metavar="SCOPE", help="Scope to register (repeat).")
    ] = None,
    ip_whitelist: Annotated[
        list[str] | None, typer.Option("--ip-whitelist", metavar="CIDR", help="Allowed IP or CIDR (repeat).")
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option("--webhook-url", metavar="URL", help="Install and uninstall events go here.")
    ] = None,
    owner: Annotated[
        str | None, typer.Option(metavar="EMAIL", help="The developer whose console shows the app.")
    ] = None,
) -> None:
    """Register an app: prints {"app_id", "secret", ...}; the secret is shown this once."""

    async def creating(admin: Admin) -> tuple[Any, str]:
        from openplatform.services.accounts import app_owner, build_accounts

        owner_id = None
        if owner is not None:  # a developer: their console shows the app (SPEC §11)
            owner_id = (await app_owner(build_accounts(admin.stores, admin.keyring).store, owner)).user_id
        return await admin.create_app(name, host_url, scope or [], ip_whitelist or [], webhook_url, owner_id=owner_id)

    created, secret = run_admin(creating)
    emit({"app_id": created.app_id, "secret": secret, "name": created.name, "host_url": created.host_url,
          "scopes": list(created.scopes), "ip_whitelist": list(created.ip_whitelist)})  # fmt: skip


@apps_app.command("rotate-secret")
def app_rotate_secret(
    app_id: Annotated[str, typer.Option("--app-id", metavar="ID", help="The app.")],
    grace_seconds: Annotated[
        int, typer.Option("--grace-seconds", metavar="SECONDS", help="How long the old secret keeps working.")
    ] = 0,
) -> None:
    """Give an app a new secret: prints {"app_id", "secret", "grace_seconds"}; shown this once."""
    secret = run_admin(lambda admin: admin.rotate_secret(app_id, grace_seconds))
    emit({"app_id": app_id, "secret": secret, "grace_seconds": grace_seconds})


@apps_app.command("suspend")
def app_suspend(app_id: Annotated[str, typer.Option("--app-id", metavar="ID", help="The app.")]) -> None:
    """Suspend an app: its tokens and codes stop working at once, its installations stay (SPEC §8)."""
    changed = run_admin(lambda admin: admin.set_status(app_id, "suspended"))
    emit({"app_id": changed.app_id, "status": changed.status})


@apps_app.command("resume")
def app_resume(app_id: Annotated[str, typer.Option("--app-id", metavar="ID", help="The app.")]) -> None:
    """Resume a suspended app (tokens issued before the suspension stay revoked)."""
    changed = run_admin(lambda admin: admin.set_status(app_id, "active"))
    emit({"app_id": changed.app_id, "status": changed.status})


# -------------------------------------------------------- look-ups (SPEC §11)


@spe_app.command("list")
def spe_list() -> None:
    """Every SPE: {"items": [{"xspe", "name", "created_at"}]}."""
    spes = run_admin(lambda admin: admin.db.list_spes())
    emit({"items": [{"xspe": x.xspe, "name": x.name, "created_at": int(x.created_at)} for x in spes]})


@customer_app.command("list")
def customer_list(
    xspe: Annotated[str, typer.Option(metavar="XSPE", help="The SPE whose customers to list.")],
) -> None:
    """The customers of one SPE: {"items": [customer, ...]}."""

    async def listing(admin: Admin) -> list[Any]:
        from openplatform.records import CustomerFilter

        if await admin.db.get_spe(xspe) is None:
            raise NotFound("no SPE", xspe)
        items, _total = await admin.stores.directory.list_customers(CustomerFilter(xspe), 1_000_000, 0)
        return items

    emit({"items": [c.public() for c in run_admin(listing)]})


@apps_app.command("list")
def app_list(
    owner: Annotated[str | None, typer.Option(metavar="EMAIL", help="Only this developer's apps.")] = None,
) -> None:
    """Apps, all or one developer's: {"items": [app, ...]} (never a secret)."""

    async def listing(admin: Admin) -> list[Any]:
        return await admin.db.list_apps(await _user_id(admin, owner) if owner is not None else None)

    emit({"items": [_app_json(found) for found in run_admin(listing)]})


@apps_app.command("show")
def app_show(app_id: Annotated[str, typer.Option("--app-id", metavar="ID", help="The app.")]) -> None:
    """One app (never its secret)."""
    emit(_app_json(run_admin(lambda admin: admin.require_app(app_id))))


@install_app.command("list")
def install_list(
    app_id: Annotated[
        str | None, typer.Option("--app-id", metavar="ID", help="The app whose installations to list.")
    ] = None,
    xspe: Annotated[str | None, typer.Option(metavar="XSPE", help="The SPE whose installations to list.")] = None,
) -> None:
    """Installations of one app or in one SPE: {"items": [installation, ...]}."""
    if (app_id is None) == (xspe is None):
        fail("give exactly one of --app-id or --xspe", 2)

    async def listing(admin: Admin) -> list[Any]:
        # An unknown id is "not found" (status 4), as in customer list, never "installed nowhere".
        if app_id is not None:
            await admin.require_app(app_id)
        if xspe is not None and await admin.db.get_spe(xspe) is None:
            raise NotFound("no SPE", xspe)
        return await admin.db.list_installations(app_id=app_id, xspe=xspe)

    found = run_admin(listing)
    emit({"items": [_installation_json(i) for i in found]})


@user_app.command("list")
def user_list() -> None:
    """Accounts of the web screens: {"items": [{"user_id", "email", "role", "xspe", "status"}]}."""
    from openplatform.services.accounts import build_accounts

    users = run_admin(lambda admin: build_accounts(admin.stores, admin.keyring).store.list_users())
    emit({"items": [{"user_id": u.user_id, "email": u.email, "role": u.role, "xspe": u.xspe, "status": u.status}
                    for u in users]})  # fmt: skip


# ------------------------------------------------------------------ admin keys


@admin_key_app.command("create")
def admin_key_create(
    name: Annotated[str, typer.Option(metavar="NAME", help="What the key is for (e.g. prometheus, spe-portal).")],
    xspe: Annotated[
        str | None, typer.Option(metavar="XSPE", help="Bind the key to one SPE's customers and installations.")
    ] = None,
    metrics_only: Annotated[
        bool,
        typer.Option("--metrics-only", help="A key for /metrics alone (Prometheus); the admin API refuses it."),
    ] = False,
) -> None:
    """A new admin key (SPEC §10), printed once; only a keyed digest of it is stored."""
    from openplatform.services.admin_keys import AdminKeys

    created, key = run_admin(lambda admin: AdminKeys(admin.stores, admin.keyring).create(name, xspe, metrics_only))
    emit({"key_id": created.key_id, "key": key, "name": created.name, "xspe": created.xspe})


@admin_key_app.command("list")
def admin_key_list() -> None:
    """Every admin key, revoked ones too: {"items": [{"key_id", "name", "xspe", "metrics_only",
    "created_at", "revoked_at", "last_used_at"}]} (UNIX seconds; last_used_at up to a minute behind).
    Never the key or its digest."""
    from openplatform.services.admin_keys import AdminKeys

    keys = run_admin(lambda admin: AdminKeys(admin.stores, admin.keyring).list_keys())
    emit({"items": [{"key_id": k.key_id, "name": k.name, "xspe": k.xspe, "metrics_only": k.metrics_only,
                     "created_at": int(k.created_at), "revoked_at": _seconds(k.revoked_at),
                     "last_used_at": _seconds(k.last_used_at)} for k in keys]})  # fmt: skip


def _seconds(at: float | None) -> int | None:
    return None if at is None else int(at)


@admin_key_app.command("revoke")
def admin_key_revoke(
    key_id: Annotated[str | None, typer.Option("--key-id", metavar="ID", help="The key's key_id.")] = None,
    key_stdin: Annotated[
        bool,
        typer.Option("--key-stdin", help="Read the key itself from stdin (a leaked key whose id is unknown)."),
    ] = False,
) -> None:
    """The key stops working at once: give --key-id ID, or --key-stdin and the key on stdin."""
    from openplatform.services.admin_keys import AdminKeys

    if (key_id is None) == (not key_stdin):
        fail("give exactly one of --key-id ID and --key-stdin", 2)
    if key_id is not None:
        run_admin(lambda admin: AdminKeys(admin.stores, admin.keyring).revoke(key_id))
        emit({"key_id": key_id, "revoked": True})
        return
    value = sys.stdin.readline().strip()  # the key never goes on the command line (shell history, ps)
    revoked = run_admin(lambda admin: AdminKeys(admin.stores, admin.keyring).revoke_key(value))
    emit({"key_id": revoked, "revoked": True})


# ---------------------------------------------------------------- web accounts


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(metavar="EMAIL", help="Sign-in e-mail address.")],
    role: Annotated[str, typer.Option(metavar="ROLE", help="developer, spe-admin or admin.")],
    xspe: Annotated[str | None, typer.Option(metavar="XSPE", help="The SPE an spe-admin administers.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin.")
    ] = False,
) -> None:
    """Create an account for the management screens (the password never goes on the command line)."""
    from openplatform.services.accounts import build_accounts

    if not password_stdin:
        fail("give the password on stdin with --password-stdin (never as an argument)", 2)
    password = sys.stdin.readline().rstrip("\r\n")
    user = run_admin(lambda admin: build_accounts(admin.stores, admin.keyring).create_user(email, role, password, xspe))
    emit({"user_id": user.user_id, "email": user.email, "role": user.role, "xspe": user.xspe})


@user_app.command("set-password")
def user_set_password(
    email: Annotated[str, typer.Option(metavar="EMAIL", help="The account's e-mail address.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the new password from the first line of stdin.")
    ] = False,
) -> None:
    """Give an account a new password; its sessions end (SPEC §9). A running server's lock-outs of the
    account are not touched: they run out by themselves, or Users → Unlock lifts them."""
    from openplatform.services.accounts import build_accounts

    if not password_stdin:
        fail("give the password on stdin with --password-stdin (never as an argument)", 2)
    password = sys.stdin.readline().rstrip("\r\n")
    user = run_admin(lambda admin: build_accounts(admin.stores, admin.keyring).set_password_by_email(email, password))
    emit({"user_id": user.user_id, "email": user.email})


# ------------------------------------------------------------------ installation


@install_app.callback(invoke_without_command=True)
def install(
    ctx: typer.Context,
    app_id: Annotated[str | None, typer.Option("--app-id", metavar="ID", help="The app to install.")] = None,
    customer_id: Annotated[
        str | None, typer.Option("--customer-id", metavar="ID", help="Install for this customer.")
    ] = None,
    xspe: Annotated[str | None, typer.Option("--xspe", metavar="XSPE", help="Install for this whole SPE.")] = None,
) -> None:
    """Install an app for one customer or for a whole SPE (installing is consenting);
    ``install list`` lists installations."""
    if ctx.invoked_subcommand is not None:
        return
    if app_id is None:
        fail("--app-id is required", 2)
        return
    done = run_admin(lambda admin: admin.install(app_id, customer_id, xspe))
    emit({"installation_id": done.installation_id, "app_id": app_id, "xspe": done.xspe,
          "customer_id": done.customer_id})  # fmt: skip


@app.command()
def uninstall(
    app_id: Annotated[str, typer.Option("--app-id", metavar="ID", help="The app to uninstall.")],
    customer_id: Annotated[
        str | None, typer.Option("--customer-id", metavar="ID", help="Uninstall from this customer.")
    ] = None,
    xspe: Annotated[str | None, typer.Option("--xspe", metavar="XSPE", help="Uninstall from this whole SPE.")] = None,
) -> None:
    """Uninstall: every code and token of that installation stops working at once."""
    done = run_admin(lambda admin: admin.uninstall(app_id, customer_id, xspe))
    emit({"installation_id": done.installation_id, "app_id": app_id, "uninstalled": True})


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    # `serve --workers N` makes its own metrics directory (web.metrics): an inherited one, perhaps
    # holding an earlier run's counts, must not be read, nor written by this process or one worker.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    app(prog_name="openplatform")  # the help reads "Usage: openplatform ..." under python -m too


if __name__ == "__main__":
    main()
