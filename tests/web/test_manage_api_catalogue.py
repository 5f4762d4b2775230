"""What a key bound to an SPE learns about apps through the admin API (SPEC §10, docs/api.md "Admin API").

A bound key may read the catalogue (its portal installs apps from it), and nothing an app's
developer keeps for themselves: the webhook URL (its query often carries the receiver's
credential, which never goes even to a log: SPEC §9), the IP whitelist (the developer's
network) and the owning account; nor may it look accounts up by e-mail address. Found by the
review of the admin API: a bound key read every app's ``webhook_url`` with its token, and
``GET /apps?owner=`` told which e-mail addresses have an account (404 or 200). Runs on SQLite
and PostgreSQL (the ``harness`` fixture).
"""

from __future__ import annotations

from tests.conftest import Harness
from tests.web.manage_support import M, admin_key, manage

HOST = "https://partner.example.com/"
HOOK = "https://hooks.partner.example.com/receive?token=RECEIVER-CREDENTIAL-7f3a"
CATALOGUE = {"app_id", "name", "host_url", "status", "scopes", "created_at"}
DEVELOPERS_OWN = {"webhook_url", "ip_whitelist", "owner_id"}


async def test_a_bound_key_reads_the_catalogue_not_what_the_developer_keeps(harness: Harness) -> None:
    _platform_id, platform = await admin_key(harness)
    spe = await manage(harness, platform, "POST", "/spes", json={"name": "Portal SPE"})
    developer = await manage(harness, platform, "POST", "/users", json={
        "email": "dev@partner.example.com", "role": "developer", "password": "a long password"})  # fmt: skip
    app = await manage(harness, platform, "POST", "/apps", json={
        "name": "Partner", "host_url": HOST, "scopes": ["customer:read"], "ip_whitelist": ["198.51.100.0/24"],
        "webhook_url": HOOK, "owner": "dev@partner.example.com"})  # fmt: skip
    _bound_id, bound = await admin_key(harness, "portal", spe["xspe"])

    listed = (await manage(harness, bound, "GET", "/apps"))["items"]
    shown = await manage(harness, bound, "GET", f"/apps/{app['app_id']}")
    for seen in (*listed, shown):
        assert set(seen) == CATALOGUE, seen
    assert [a["app_id"] for a in listed] == [app["app_id"]]
    assert (shown["name"], shown["host_url"], shown["scopes"]) == ("Partner", HOST, ["customer:read"])
    for path in ("/apps", f"/apps/{app['app_id']}"):
        body = (await harness.client.get(M + path, headers=bound)).text
        assert "RECEIVER-CREDENTIAL" not in body and "198.51.100" not in body and developer["user_id"] not in body

    # No account look-up by e-mail address: the same refusal for an account that exists and one that does not.
    known = await manage(harness, bound, "GET", "/apps", 403, params={"owner": "dev@partner.example.com"})
    unknown = await manage(harness, bound, "GET", "/apps", 403, params={"owner": "nobody@partner.example.com"})
    assert known == unknown and known["error"] == "access_denied"

    # A key of the whole platform still sees and filters everything.
    full = await manage(harness, platform, "GET", f"/apps/{app['app_id']}")
    assert set(full) == CATALOGUE | DEVELOPERS_OWN and full["webhook_url"] == HOOK
    owned = await manage(harness, platform, "GET", "/apps", params={"owner": "dev@partner.example.com"})
    assert [(a["app_id"], a["owner_id"]) for a in owned["items"]] == [(app["app_id"], developer["user_id"])]
