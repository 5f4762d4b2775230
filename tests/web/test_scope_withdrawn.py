"""A scope withdrawn from an app leaves the tokens already issued at once (operator review of issue 10).

Scopes are registered per app and granted by installation (SPEC §1, §2.5). An operator who
withdraws one (``PUT /api/manage/apps/{app_id}`` ``{"scopes": [...]}``, or the console's edit
form) expects the app to lose it, as the admin service says ("tokens see the change at once").
It did not: an app token kept ``customer:read`` for its whole lifetime (7,200 s), a user token
and every token refreshed from it for the family's (90 days), and introspection kept reporting
it. A token's scopes now count only while the app still has them registered: on the Open APIs
(``40303 insufficient_scope``) and in introspection's ``scope``. ``install_login`` is implied by
the installation and never registered, so it stays. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from tests.conftest import Harness
from tests.web.manage_support import admin_key, manage


async def test_a_withdrawn_scope_stops_working_in_tokens_already_issued(harness: Harness) -> None:
    world = await harness.world(scopes=("customer:read", "site:read"), spe_wide=True)
    app_token = await harness.app_token(world)
    code = await harness.code(world, scope="install_login site:read")
    user = (await harness.exchange(world, code)).json()["result"]
    customer = f"/api/spe/customer/{world.customer_id}"
    sites = f"/api/spe/customer/{world.customer_id}/sites"
    assert (await harness.client.get(customer, params={"access_token": app_token})).json()["code"] == 0
    assert (await harness.client.get(sites, params={"access_token": user["access_token"]})).json()["code"] == 0

    _key_id, key = await admin_key(harness)
    await manage(harness, key, "PUT", f"/apps/{world.app_id}", json={"scopes": ["site:read"]})
    refused = await harness.client.get(customer, params={"access_token": app_token})
    assert refused.status_code == 403 and refused.json()["code"] == 40303, refused.text
    assert (await harness.client.get(sites, params={"access_token": app_token})).json()["code"] == 0  # kept

    await manage(harness, key, "PUT", f"/apps/{world.app_id}", json={"scopes": []})
    refreshed = (await harness.refresh(world, user["refresh_token"])).json()["result"]
    assert user["scope"] == "install_login site:read" and refreshed["scope"] == "install_login"  # what counts now
    for token in (user["access_token"], refreshed["access_token"]):
        refused = await harness.client.get(sites, params={"access_token": token})
        assert refused.status_code == 403 and refused.json()["code"] == 40303, refused.text
        # The customer itself stays readable by the user token: install_login is the installation's.
        assert (await harness.client.get(customer, params={"access_token": token})).json()["code"] == 0
        seen = await harness.client.post(
            "/oauth/introspect", data={"token": token, "app_id": world.app_id, "secret": world.secret}
        )
        assert seen.json()["result"]["active"] is True and seen.json()["result"]["scope"] == "install_login"
    seen = await harness.client.post(
        "/oauth/introspect", data={"token": app_token, "app_id": world.app_id, "secret": world.secret}
    )
    assert seen.json()["result"]["active"] is True and seen.json()["result"]["scope"] == ""


async def test_a_code_exchanged_after_a_withdrawal_answers_the_scope_that_counts(harness: Harness) -> None:
    """The exchange's ``scope`` is what the tokens may do now (as introspection reports it), not the
    code's: the app is not told of a scope withdrawn since the code was issued; registered again,
    it counts again in the tokens, which keep the code's scope."""
    world = await harness.world(scopes=("customer:read", "site:read"))
    code = await harness.code(world, scope="install_login customer:read site:read")
    _key_id, key = await admin_key(harness)
    await manage(harness, key, "PUT", f"/apps/{world.app_id}", json={"scopes": ["site:read"]})
    user = (await harness.exchange(world, code)).json()["result"]
    assert user["scope"] == "install_login site:read"
    await manage(harness, key, "PUT", f"/apps/{world.app_id}", json={"scopes": ["customer:read", "site:read"]})
    refreshed = (await harness.refresh(world, user["refresh_token"])).json()["result"]
    assert refreshed["scope"] == "install_login customer:read site:read"
