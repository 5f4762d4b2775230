"""The SPE portal with an app on an international host name (SPEC §9; issue 9 finding 9).

The customer page names the app's origin in its CSP (``form-action``) and "Open app"
sends the browser to its host_url: both are headers, so the host goes as IDNA
A-labels — also for an app stored, before that rule, with its host in Unicode.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from sqlalchemy import update

from openplatform.core.signing import verify_launch
from openplatform.storage.sql.schema import apps
from tests.conftest import Harness
from tests.ui.conftest import MakePerson
from tests.ui.test_portal import new_customer, spe_admin

UNICODE_URL = "https://例え.テスト/入口?lang=ja"
A_LABEL_ORIGIN = "https://xn--r8jz45g.xn--zckzah"


@pytest.mark.parametrize(
    "stored_as_given",
    [
        pytest.param(False, id="created"),
        # An old row edited in SQL: the memory backend never held one.
        pytest.param(True, id="stored-in-unicode", marks=pytest.mark.sql),
    ],
)
async def test_open_app_on_an_idn_host(harness: Harness, people: MakePerson, stored_as_given: bool) -> None:
    admin = await spe_admin(harness, people)
    customer_id = await new_customer(admin, "Globex")
    app, secret = await harness.admin.create_app("Partner", UNICODE_URL)
    if stored_as_given:  # a row written before host names were stored as A-labels
        await harness.admin.db.database.execute(
            update(apps).where(apps.c.app_id == app.app_id).values(host_url=UNICODE_URL)
        )
    await admin.post("/portal/install", {"app_id": app.app_id, "customer_id": customer_id})
    await admin.post("/portal/install", {"app_id": app.app_id, "customer_id": ""})  # SPE-wide: the apps page

    for path in (f"/portal/customers/{customer_id}", "/portal/apps"):
        page = await admin.get(path)
        assert page.status_code == 200, page.text
        assert f"form-action 'self' {A_LABEL_ORIGIN};" in page.headers["content-security-policy"], path

    launch = await admin.post("/portal/launch", {"app_id": app.app_id, "customer_id": customer_id})
    assert launch.status_code == 303
    location = launch.headers["location"]
    assert location.isascii() and location.startswith(f"{A_LABEL_ORIGIN}/%E5%85%A5%E5%8F%A3?lang=ja&")
    params = dict(parse_qsl(urlsplit(location).query))
    assert params.pop("lang") == "ja" and verify_launch(secret, params)
