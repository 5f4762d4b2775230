"""`openplatform demo`: seed an SPE, a customer and an installed app, and print
ready-to-paste curl commands for the whole documented flow."""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlencode, urlsplit

from openplatform.config import Settings
from openplatform.core.signing import sign_launch
from openplatform.runtime import build_admin
from openplatform.services.accounts import build_accounts
from openplatform.storage.sql.accounts import User

# The demo app is the example third-party app (examples/partner_app, examples/partner_app_node) on its
# default port; `openplatform demo --app-url` registers it elsewhere (the example's PORT must follow).
APP_URL = "http://localhost:9000"


PRIVATE_NETWORKS_NOTE = (
    "note: the demo sets OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS=allow, so webhooks may go to localhost and "
    "private networks (the example app's receiver is on localhost). Never set it on a server reachable from outside."
)


def allow_private_webhooks() -> str:
    """Lift SPEC §9's private-network refusal for this process and the server it starts; returns the note to show."""
    os.environ["OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS"] = "allow"
    return PRIVATE_NETWORKS_NOTE


def launch_url(secret: str, app_id: str, xspe: str, customer_id: str | None, app_url: str = APP_URL) -> str:
    """A signed launch of the example app, as the SPE admin portal's "Open app" makes it (SPEC §3)."""
    return f"{app_url}/?{urlencode(sign_launch(secret, app_id, xspe, customer_id))}"


def example_env(app_id: str, secret: str, base: str, app_url: str) -> str:
    """The environment the example apps need, as shell assignments (PORT only when not their default)."""
    port = urlsplit(app_url).port or 80
    extra = "" if app_url == APP_URL else f" PORT={port}"
    return f"APP_ID={app_id} APP_SECRET={secret} OPENPLATFORM_URL={base}{extra}"


# Accounts of the management screens; a new run gives them new passwords.
DEMO_ACCOUNTS = (("admin", "admin@example.com"), ("developer", "developer@example.com"),
                 ("spe-admin", "spe-admin@example.com"))  # fmt: skip


async def seed_and_describe(
    settings: Settings, host: str, port: int, app_url: str = APP_URL
) -> tuple[dict[str, object], str]:
    """Seed the demo; return its facts (printed as one JSON object) and the guide for people."""
    app_url = app_url.rstrip("/")
    callback = f"{app_url}/callback"
    admin = build_admin(settings)
    accounts = build_accounts(admin.db, admin.keyring)
    passwords = {role: secrets.token_hex(8) for role, _ in DEMO_ACCOUNTS}
    try:
        spe = await admin.create_spe("Demo SPE")
        users = {
            role: await accounts.ensure_user(email, role, passwords[role], spe.xspe if role == "spe-admin" else None)
            for role, email in DEMO_ACCOUNTS
        }
        customer = await admin.create_customer(spe.xspe, "Demo Customer", "demo@example.com")
        app, secret = await admin.create_app(
            "Demo App", f"{app_url}/",
            ["customer:read", "customer:write", "site:read", "site:write"], owner_id=users["developer"].user_id,
        )  # fmt: skip
        await admin.install(app.app_id, xspe=spe.xspe)
    finally:
        await admin.db.close()
    base = f"http://{host}:{port}"
    facts: dict[str, object] = {
        "base_url": base, "xspe": spe.xspe, "customer_id": customer.customer_id, "app_id": app.app_id,
        "secret": secret, "redirect_uri": callback, "app_url": app_url,
        "accounts": [{"email": users[r].email, "role": r, "password": passwords[r]} for r, _ in DEMO_ACCOUNTS],
    }  # fmt: skip
    return facts, DESCRIPTION.format(
        base=base, accounts=_accounts_table(users, passwords), xspe=spe.xspe,
        customer_id=customer.customer_id, app_id=app.app_id, secret=secret, callback=callback,
        customer_launch=launch_url(secret, app.app_id, spe.xspe, customer.customer_id, app_url),
        spe_launch=launch_url(secret, app.app_id, spe.xspe, None, app_url),
        example_env=example_env(app.app_id, secret, base, app_url),
    )  # fmt: skip


def _accounts_table(users: dict[str, User], passwords: dict[str, str]) -> str:
    notes = {"admin": "SPEs, users, all apps", "developer": "owns Demo App: its APP_ID is in the console",
             "spe-admin": "Demo SPE: customers, installs, Open app"}  # fmt: skip
    return "\n".join(
        f"  {role:<10} {users[role].email:<22} {passwords[role]}   ({notes[role]})" for role, _ in DEMO_ACCOUNTS
    )


DESCRIPTION = """\
openplatform demo — seeded and serving on {base}

Management screens — sign in at {base}/login with one of these accounts:
{accounts}

  xspe        {xspe}
  customer_id {customer_id}
  APP_ID      {app_id}
  Secret      {secret}   (shown once)

1. Get a code (installation is consent, so it redirects at once; read the Location header):
   curl -si "{base}/oauth/connect?app_id={app_id}&redirect_uri={callback}&response_type=code&scope=install_login&xspe={xspe}&state=xyz&customer_id={customer_id}" | grep -i '^location'

2. Exchange the code (paste it for CODE):
   curl -s -X POST "{base}/oauth/access_token" -d "app_id={app_id}&secret={secret}&code=CODE&grant_type=authorization_code"

3. Rotate the refresh token (paste it for REFRESH_TOKEN):
   curl -s -X POST "{base}/oauth/refresh_token" -d "app_id={app_id}&refresh_token=REFRESH_TOKEN&grant_type=refresh_code"

4. Get an app token:
   curl -s -X POST "{base}/oauth/credit/token" -d "app_id={app_id}&secret={secret}&grant_type=client_credential"

5. Call an Open API with either token (paste it for ACCESS_TOKEN):
   curl -s "{base}/api/spe/customer/{customer_id}?access_token=ACCESS_TOKEN"
   curl -s "{base}/api/spe/customers" -H "Authorization: Bearer ACCESS_TOKEN"

Example third-party app, built on the SDK (see its README) — in a second terminal, from the repository root,
either the Python one (examples/partner_app):
   cd examples && {example_env} python -m partner_app
or the Node.js one (examples/partner_app_node; build the TypeScript SDK and `npm install` there first):
   cd examples/partner_app_node && {example_env} node server.js
then open, within 5 minutes (with the same variables, `python -m partner_app.launch --xspe {xspe}
   [--customer-id ID]` or `node launch.js --xspe {xspe} [--customer-id ID]` signs fresh ones):
   as the customer:  {customer_launch}
   as the SPE admin: {spe_launch}
"""
