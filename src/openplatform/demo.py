"""`openplatform demo`: seed an SPE, a customer and an installed app, and print
ready-to-paste curl commands for the whole documented flow."""

from __future__ import annotations

from openplatform.config import Settings
from openplatform.runtime import build_admin

CALLBACK = "http://localhost:9000/callback"


async def seed_and_describe(settings: Settings, host: str, port: int) -> str:
    admin = build_admin(settings)
    try:
        spe = await admin.create_spe("Demo SPE")
        customer = await admin.create_customer(spe.xspe, "Demo Customer", "demo@example.com")
        app, secret = await admin.create_app(
            "Demo App", "http://localhost:9000/",
            ["customer:read", "customer:write", "site:read", "site:write"],
        )  # fmt: skip
        await admin.install(app.app_id, xspe=spe.xspe)
    finally:
        await admin.db.close()
    base = f"http://{host}:{port}"
    return DESCRIPTION.format(
        base=base, xspe=spe.xspe, customer_id=customer.customer_id, app_id=app.app_id,
        secret=secret, callback=CALLBACK,
    )  # fmt: skip


DESCRIPTION = """\
openplatform demo — seeded and serving on {base}

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
"""
