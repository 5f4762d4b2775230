"""Two findings of the operator review of issue 10, in the admin API (SPEC §10, §11; docs/api.md "Admin API").

- ``POST /api/manage/apps`` with the ``owner`` of an spe-admin or platform admin account made an
  app that appears in no developer console (only developers have one). The owner must be a
  developer: anything else is ``400`` / ``40001`` naming ``owner``, and nothing is created.
- ``GET /api/manage/installations?app_id=`` / ``?xspe=`` with an unknown app or SPE answered an
  empty list, while ``GET /api/manage/customers?xspe=`` answers ``404`` for an unknown SPE: a typo
  in an id read as "installed nowhere". Now ``404`` / ``40401``, like the customers' list.

Runs on SQLite and PostgreSQL (the ``harness`` fixture).
"""

from __future__ import annotations

from tests.conftest import Harness
from tests.web.manage_support import admin_key, manage, snapshot

PASSWORD = "a long password"


async def test_an_app_is_owned_only_by_a_developer(harness: Harness) -> None:
    _key_id, key = await admin_key(harness)
    spe = await manage(harness, key, "POST", "/spes", json={"name": "Acme"})
    for email, role, xspe in (("dev@example.com", "developer", None), ("portal@example.com", "spe-admin", spe["xspe"]),
                              ("ops@example.com", "admin", None)):  # fmt: skip
        await manage(harness, key, "POST", "/users", json={"email": email, "role": role, "xspe": xspe,
                                                          "password": PASSWORD})  # fmt: skip

    before = await snapshot(harness)
    for email in ("portal@example.com", "ops@example.com", "nobody@example.com"):
        refused = await manage(harness, key, "POST", "/apps", 400, json={
            "name": "Lost", "host_url": "https://lost.example.com/", "owner": email})  # fmt: skip
        assert refused["code"] == 40001 and refused["field"] == "owner", refused
    assert await snapshot(harness) == before

    mine = await manage(harness, key, "POST", "/apps", json={
        "name": "Mine", "host_url": "https://a.example.com/", "owner": "dev@example.com"})  # fmt: skip
    listed = await manage(harness, key, "GET", "/apps", params={"owner": "dev@example.com"})
    assert [a["app_id"] for a in listed["items"]] == [mine["app_id"]]


async def test_installations_of_an_unknown_app_or_spe_are_not_found(harness: Harness) -> None:
    _key_id, key = await admin_key(harness)
    spe = await manage(harness, key, "POST", "/spes", json={"name": "Acme"})
    app = await manage(harness, key, "POST", "/apps", json={"name": "App", "host_url": "https://app.example.com/"})
    assert (await manage(harness, key, "GET", "/installations", params={"app_id": app["app_id"]}))["items"] == []
    assert (await manage(harness, key, "GET", "/installations", params={"xspe": spe["xspe"]}))["items"] == []

    for params in ({"app_id": "0" * 32}, {"xspe": "spe_nope"}, {"app_id": app["app_id"], "xspe": "spe_nope"},
                   {"app_id": "0" * 32, "xspe": spe["xspe"]}):  # fmt: skip
        missing = await manage(harness, key, "GET", "/installations", 404, params=params)
        assert missing["error"] == "not_found", (params, missing)

    # A key bound to the SPE: an unknown app is as missing to it as to the platform's key.
    _bound_id, bound = await admin_key(harness, "portal", spe["xspe"])
    assert (await manage(harness, bound, "GET", "/installations", params={"app_id": app["app_id"]}))["items"] == []
    await manage(harness, bound, "GET", "/installations", 404, params={"app_id": "0" * 32})


async def test_an_unknown_event_name_is_refused_not_an_empty_page(harness: Harness) -> None:
    """``GET /api/manage/audit-events?event=`` takes the names of docs/events.md, as the console's filter does:
    a typo (``app.install``) was an empty page, read as "it never happened"."""
    _key_id, key = await admin_key(harness)
    spe = await manage(harness, key, "POST", "/spes", json={"name": "Acme"})
    found = await manage(harness, key, "GET", "/audit-events", params={"event": "spe.created"})
    assert [e["xspe"] for e in found["items"]] == [spe["xspe"]]
    for typo in ("spe.create", "SPE.CREATED", "app.install"):
        refused = await manage(harness, key, "GET", "/audit-events", 400, params={"event": typo})
        assert refused["field"] == "event" and "docs/events.md" in refused["msg"], refused
