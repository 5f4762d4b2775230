"""`openplatform demo`: seed an SPE, a customer and an installed app, and print
ready-to-paste curl commands for the whole documented flow.

A second run on the same database reuses what the first seeded (issue 13): the
same SPE, customer, app (and its secret), installation and accounts, with their
passwords untouched, so a demo still running in another terminal keeps working
as it printed.
"""

from __future__ import annotations

import errno
import os
import secrets
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from openplatform import events
from openplatform.config import Settings
from openplatform.core.signing import sign_launch
from openplatform.models import App, Customer, Spe
from openplatform.records import CustomerFilter, User
from openplatform.runtime import build_admin
from openplatform.services import validation as check
from openplatform.services.accounts import Accounts, build_accounts
from openplatform.services.admin import Admin
from openplatform.services.validation import ValidationError

# The demo app is the example third-party app (examples/partner_app, examples/partner_app_node) on its
# default port; `openplatform demo --partner-port` (or `--app-url`) registers it elsewhere.
PARTNER_PORT = 9000
APP_URL = f"http://localhost:{PARTNER_PORT}"

SPE_NAME, CUSTOMER_NAME, APP_NAME = "Demo SPE", "Demo Customer", "Demo App"
APP_SCOPES = ("customer:read", "customer:write", "site:read", "site:write")

# The examples folder of a source checkout (the demo's printed commands start the example apps from it);
# a server installed from a wheel has none, and the commands then name it relative to a checkout.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PRIVATE_NETWORKS_NOTE = (
    "note: the demo sets OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS=allow, so webhooks may go to localhost and "
    "private networks (the example app's receiver is on localhost). Never set it on a server reachable from outside."
)


def allow_private_webhooks() -> str:
    """Lift SPEC §9's private-network refusal for this process and the server it starts; returns the note to show."""
    os.environ["OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS"] = "allow"
    return PRIVATE_NETWORKS_NOTE


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port``, as one sentence; None when it can.

    Binds and releases a socket the way uvicorn will (SO_REUSEADDR, IPv6 when the host has a colon),
    so the demo can refuse before it touches the database. Another process may still take the port
    in the moment between this check and the server's start; uvicorn then fails on its own.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} is already in use on {host} (another `openplatform demo` or server?): "
                    f"stop it, or choose another port with --port"
                )
            return f"cannot listen on {host} port {port}: {exc.strerror or exc}"
    return None


def launch_url(secret: str, app_id: str, xspe: str, customer_id: str | None, app_url: str = APP_URL) -> str:
    """A signed launch of the example app, as the SPE admin portal's "Open app" makes it (SPEC §3)."""
    return f"{app_url}/?{urlencode(sign_launch(secret, app_id, xspe, customer_id))}"


def example_env(app_id: str, secret: str, base: str, app_url: str) -> str:
    """The environment the example apps need, as shell assignments (PORT only when not their default)."""
    port = urlsplit(app_url).port or 80
    extra = "" if app_url == APP_URL else f" PORT={port}"
    return f"APP_ID={app_id} APP_SECRET={secret} OPENPLATFORM_URL={base}{extra}"


def example_folder(name: str) -> str:
    """Where to ``cd`` for an example: its absolute path in this checkout, so the command works from any shell."""
    folder = EXAMPLES / name if name else EXAMPLES
    return shlex.quote(str(folder)) if EXAMPLES.is_dir() else f"examples/{name}".rstrip("/")


# Accounts of the management screens: made with a random password on the first run, then left alone.
DEMO_ACCOUNTS = (("admin", "admin@example.com"), ("developer", "developer@example.com"),
                 ("spe-admin", "spe-admin@example.com"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Seeded:
    """What the demo shows: reused from an earlier run or made now."""

    spe: Spe
    customer: Customer
    app: App
    secret: str
    users: dict[str, User]  # by demo role
    passwords: dict[str, str]  # only for the accounts made now
    reused: bool  # the SPE was there already
    webhook_refusal: str  # why the app has no webhook_url of the demo's, or ""


async def _demo_spe(admin: Admin, spe_admin: User | None) -> Spe | None:
    """The SPE of an earlier run: the one the demo's SPE admin administers, else the first "Demo SPE"."""
    if spe_admin is not None and spe_admin.xspe:
        spe = await admin.db.get_spe(spe_admin.xspe)
        if spe is not None:
            return spe
    return next((spe for spe in await admin.db.list_spes() if spe.name == SPE_NAME), None)


async def _demo_customer(admin: Admin, xspe: str) -> Customer | None:
    directory = admin.stores.directory
    found, _total = await directory.list_customers(CustomerFilter(xspe, name=CUSTOMER_NAME), 100, 0)
    return next((c for c in found if c.name == CUSTOMER_NAME), None)


def app_name(app_url: str) -> str:
    """The demo app's name at this entrance: "Demo App", or "Demo App (localhost:9100)" at another one.

    The screens list apps by name, so two demo apps must not share one.
    """
    return APP_NAME if app_url == APP_URL else f"{APP_NAME} ({urlsplit(app_url).netloc})"


def demo_webhook_url(admin: Admin, app_url: str) -> tuple[str | None, str]:
    """The demo app's webhook_url: the example app's receiver, ``APP_URL/webhook`` (it verifies the
    signature, SPEC §3), so the console's "Webhook deliveries" and "Send again" have something to
    show from the first run; and why there is none, when the settings refuse it.

    On localhost it needs ``OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS=allow`` (SPEC §9), which
    ``openplatform demo`` sets for itself and the server it starts (``allow_private_webhooks``);
    a caller whose settings refuse private networks gets ``(None, the refusal)``.
    """
    try:
        return check.webhook_url(f"{app_url}/webhook", admin.webhook_private_networks), ""
    except ValidationError as exc:
        return None, exc.message


async def _demo_app(admin: Admin, owner_id: str, app_url: str, webhook: str | None) -> tuple[App, str]:
    """The developer's demo app at this entrance, with its current secret; made when missing.

    One app per entrance: a demo run with another --partner-port gets an app of its own, so the
    app of a demo still running (and its printed redirect_uri) keeps working. An app an earlier
    version named plain "Demo App" at another entrance is reused as it is. A reused app without a
    webhook_url (made by a version that gave none) gets the example app's; one someone set is kept.
    """
    name = app_name(app_url)
    for app in await admin.db.list_apps(owner_id):
        if app.name in (name, APP_NAME) and app.host_url.rstrip("/") == app_url:
            if webhook and not app.webhook_url:
                # The same change as the console's edit: the row and its invalidation in one
                # transaction (a running server drops the cached app), audited.
                await admin.stores.console.update_app(app.app_id, webhook_url=webhook)
                await admin.db.audit(events.APP_UPDATED, app_id=app.app_id, fields=["webhook_url"])
                app = await admin.require_app(app.app_id)
            return app, await admin.app_secret(app.app_id)
    return await admin.create_app(name, f"{app_url}/", list(APP_SCOPES), webhook_url=webhook, owner_id=owner_id)


async def _seed(admin: Admin, accounts: Accounts, app_url: str) -> Seeded:
    found = {role: await accounts.store.find_by_email(email) for role, email in DEMO_ACCOUNTS}
    spe = await _demo_spe(admin, found["spe-admin"])
    reused = spe is not None
    if spe is None:
        spe = await admin.create_spe(SPE_NAME)
    users: dict[str, User] = {}
    passwords: dict[str, str] = {}
    for role, email in DEMO_ACCOUNTS:
        existing = found[role]
        if existing is not None:  # kept as it is: its password, and an SPE admin's SPE
            users[role] = existing
            continue
        passwords[role] = secrets.token_hex(8)
        users[role] = await accounts.create_user(
            email, role, passwords[role], spe.xspe if role == "spe-admin" else None
        )
    customer = await _demo_customer(admin, spe.xspe) if reused else None
    if customer is None:
        customer = await admin.create_customer(spe.xspe, CUSTOMER_NAME, "demo@example.com")
    webhook, refusal = demo_webhook_url(admin, app_url)
    app, secret = await _demo_app(admin, users["developer"].user_id, app_url, webhook)
    # A no-op when installed already; else its install notification waits for the example app.
    await admin.install(app.app_id, xspe=spe.xspe)
    return Seeded(spe, customer, app, secret, users, passwords, reused, refusal)


async def seed_and_describe(
    settings: Settings, host: str, port: int, app_url: str = APP_URL
) -> tuple[dict[str, object], str]:
    """Seed the demo, or find what an earlier run seeded; return its facts and the guide for people.

    The facts (printed as one JSON object) carry ``base_url``, ``xspe``, ``customer_id``, ``app_id``,
    ``secret``, ``redirect_uri``, ``app_url``, ``reused`` and ``accounts`` (email, role, and
    ``password``: the new password, or None for an account kept from an earlier run).
    """
    app_url = app_url.rstrip("/")
    admin = build_admin(settings)
    try:
        seeded = await _seed(admin, build_accounts(admin.stores, admin.keyring), app_url)
    finally:
        await admin.db.close()
    spe, customer, app, secret = seeded.spe, seeded.customer, seeded.app, seeded.secret
    base, callback = f"http://{host}:{port}", f"{app_url}/callback"
    facts: dict[str, object] = {
        "base_url": base, "xspe": spe.xspe, "customer_id": customer.customer_id, "app_id": app.app_id,
        "secret": secret, "redirect_uri": callback, "app_url": app_url, "webhook_url": app.webhook_url or None,
        "reused": seeded.reused,
        "accounts": [{"email": seeded.users[r].email, "role": seeded.users[r].role,
                      "password": seeded.passwords.get(r)} for r, _ in DEMO_ACCOUNTS],
    }  # fmt: skip
    python = shlex.quote(sys.executable)  # the interpreter that has openplatform, the SDK and uvicorn
    env = example_env(app.app_id, secret, base, app_url)
    return facts, DESCRIPTION.format(
        base=base, accounts=_accounts_table(seeded), xspe=spe.xspe,
        headline="reusing what an earlier run seeded in this database" if seeded.reused else "seeded",
        notes=_notes(seeded), webhooks=_webhooks(seeded),
        customer_id=customer.customer_id, app_id=app.app_id, secret=secret, callback=callback,
        customer_launch=launch_url(secret, app.app_id, spe.xspe, customer.customer_id, app_url),
        spe_launch=launch_url(secret, app.app_id, spe.xspe, None, app_url),
        python_example=f"cd {example_folder('')} && {env} {python} -m partner_app",
        node_example=f"cd {example_folder('partner_app_node')} && {env} node server.js",
        python_launch=f"cd {example_folder('')} && {env} {python} -m partner_app.launch --xspe {spe.xspe}"
        f" --customer-id {customer.customer_id}",
        node_launch=f"cd {example_folder('partner_app_node')} && {env} node launch.js --xspe {spe.xspe}"
        f" --customer-id {customer.customer_id}",
    )  # fmt: skip


def _accounts_table(seeded: Seeded) -> str:
    notes = {"admin": "SPEs, users, all apps", "developer": f"owns {seeded.app.name}: its APP_ID is in the console",
             "spe-admin": "Demo SPE: customers, installs, Open app"}  # fmt: skip
    lines = [
        f"  {role:<10} {seeded.users[role].email:<22} {seeded.passwords.get(role, '(password unchanged)')}"
        f"   ({notes[role]})"
        for role, _ in DEMO_ACCOUNTS
    ]
    kept = [email for role, email in DEMO_ACCOUNTS if role not in seeded.passwords]
    if kept:
        lines.append(
            "  An unchanged password is the one an earlier run printed. To set a new one, run in this folder"
            f" (it reads the password from stdin; another --email for another account):\n"
            f"    {_openplatform_command()} user set-password --email {kept[0]} --password-stdin"
        )
    return "\n".join(lines)


def _openplatform_command() -> str:
    """The ``openplatform`` command of this installation (a new shell may not have the virtualenv on its PATH)."""
    beside = Path(sys.executable).parent / "openplatform"
    return shlex.quote(str(beside)) if beside.is_file() else "openplatform"


def _webhooks(seeded: Seeded) -> str:
    """Where the demo app's install/uninstall notifications go, and where to watch them."""
    app = seeded.app
    if not app.webhook_url:
        return f"{app.name} has no webhook_url: {seeded.webhook_refusal}"
    return (
        f"{app.name} sends its install/uninstall notifications to {app.webhook_url}: the example app logs each one it\n"
        'verified ("webhook: install …"), and the console\'s app page lists them under Webhook deliveries\n'
        "(status, attempts, last error; Send again). One sent before the example app started is retried (10 s, 30 s, …)."
    )


def _notes(seeded: Seeded) -> str:
    """Warnings about what the demo reused but someone changed since (left as they are)."""
    notes = []
    if not seeded.app.active:
        notes.append(
            f"note: {seeded.app.name} is suspended; resume it: "
            f"{_openplatform_command()} app resume --app-id {seeded.app.app_id}"
        )
    spe_admin = seeded.users["spe-admin"]
    if spe_admin.xspe != seeded.spe.xspe:
        notes.append(f"note: {spe_admin.email} administers another SPE ({spe_admin.xspe}); the demo left it there.")
    return "".join(f"{note}\n" for note in notes)


DESCRIPTION = """\
openplatform demo — {headline}; serving on {base}
{notes}
Management screens — sign in at {base}/login with one of these accounts:
{accounts}

  xspe        {xspe}
  customer_id {customer_id}
  APP_ID      {app_id}
  Secret      {secret}

1. Get a code (installation is consent, so it redirects at once; read the Location header):
   curl -si "{base}/oauth/connect?app_id={app_id}&redirect_uri={callback}&response_type=code&scope=install_login&xspe={xspe}&state=xyz&customer_id={customer_id}" | grep -i '^location'

2. Exchange the code for a user token (paste it for CODE):
   curl -s -X POST "{base}/oauth/access_token" -d "app_id={app_id}&secret={secret}&code=CODE&grant_type=authorization_code"

3. Rotate the refresh token (paste it for REFRESH_TOKEN):
   curl -s -X POST "{base}/oauth/refresh_token" -d "app_id={app_id}&refresh_token=REFRESH_TOKEN&grant_type=refresh_code"

4. Get an app token:
   curl -s -X POST "{base}/oauth/credit/token" -d "app_id={app_id}&secret={secret}&grant_type=client_credential"

5. Call the Open APIs. The customer, with either token (paste it for ACCESS_TOKEN):
   curl -s "{base}/api/spe/customer/{customer_id}?access_token=ACCESS_TOKEN"
   The SPE's customers, with the app token of step 4 only (paste it for APP_TOKEN):
   curl -s "{base}/api/spe/customers" -H "Authorization: Bearer APP_TOKEN"

Example third-party app, built on the SDK (see its README) — in a second terminal, either the Python one
(examples/partner_app):
   {python_example}
or the Node.js one (examples/partner_app_node; build the TypeScript SDK and `npm install` there first):
   {node_example}
then open, within 5 minutes:
   as the customer:  {customer_launch}
   as the SPE admin: {spe_launch}
Fresh launch URLs, signed with the secret (without --customer-id: the SPE-wide one):
   {python_launch}
   {node_launch}

{webhooks}
"""
