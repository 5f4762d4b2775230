"""The admin API (SPEC §10): every operation, the reach of a key bound to an SPE, keys, audit, bad input.

Runs on SQLite and PostgreSQL (the ``harness`` fixture). The operator's whole journey
with a real server is in ``test_manage_journey.py``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from openapi_spec_validator import validate
from starlette.routing import Route

from openplatform.services.admin_keys import AdminKeys
from openplatform.web.docs import DOCUMENT
from tests.conftest import Harness, World
from tests.web.manage_support import M, admin_key, manage, snapshot
from tests.web.open_api_support import bearer, user_token

HOST = "https://shop.example.com/"


async def seed_spe(harness: Harness, key: dict[str, str], name: str) -> dict[str, Any]:
    """An SPE with one customer, one app installed for it, and its installation."""
    spe = await manage(harness, key, "POST", "/spes", json={"name": name})
    customer = await manage(harness, key, "POST", "/customers", json={"xspe": spe["xspe"], "name": f"{name} shop"})
    app = await manage(harness, key, "POST", "/apps", json={"name": f"{name} app", "host_url": HOST,
                                                           "scopes": "customer:read customer:write"})  # fmt: skip
    installed = await manage(
        harness, key, "POST", "/installations", json={"app_id": app["app_id"], "customer_id": customer["customer_id"]}
    )
    return {"xspe": spe["xspe"], "customer_id": customer["customer_id"], "app_id": app["app_id"],
            "secret": app["secret"], "installation_id": installed["installation_id"]}  # fmt: skip


# ---------------------------------------------------------------- the document


def test_the_document_validates_and_lists_exactly_the_admin_routes(harness: Harness) -> None:
    document = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    validate(document)  # OpenAPI 3.1 (openapi-spec-validator)
    routed = {
        (route.path, method.lower())
        for route in harness.app.routes
        if isinstance(route, Route) and route.path.startswith(M + "/")
        for method in route.methods or ()
        if method != "HEAD"
    }
    listed = {(path, method) for path, item in document["paths"].items() if path.startswith(M + "/")
              for method in item if method != "parameters"}  # fmt: skip
    assert routed == listed and len(routed) == 24
    for path, method in listed:
        op = document["paths"][path][method]
        assert op["security"] == [{"admin_key": []}] and op["tags"] == ["Admin API"], path
        assert op["responses"]["200"]["content"]["application/json"]["example"]["code"] == 0, path
        if method in ("post", "put") and "requestBody" in op:
            assert "example" in op["requestBody"]["content"]["application/json"], path


# ------------------------------------------------------------ every operation


async def test_a_platform_key_does_what_the_cli_does(harness: Harness) -> None:
    _key_id, key = await admin_key(harness)
    world = await seed_spe(harness, key, "Acme")
    assert re.fullmatch(r"[0-9a-f]{32}", world["app_id"]) and len(world["secret"]) >= 32

    assert world["xspe"] in {s["xspe"] for s in (await manage(harness, key, "GET", "/spes"))["items"]}
    assert (await manage(harness, key, "GET", f"/spes/{world['xspe']}"))["name"] == "Acme"

    for n in range(3):
        await manage(harness, key, "POST", "/customers", json={"xspe": world["xspe"], "name": f"Extra {n}"})
    page = await manage(harness, key, "GET", "/customers", params={"xspe": world["xspe"], "page": 2, "page_size": 2})
    assert (page["total"], page["page"], page["page_size"], len(page["items"])) == (4, 2, 2, 2)
    named = await manage(harness, key, "GET", "/customers", params={"xspe": world["xspe"], "name": "extra 1"})
    assert [c["name"] for c in named["items"]] == ["Extra 1"]

    one = f"/customers/{world['customer_id']}"
    response = await harness.client.get(M + one, headers=key)
    assert response.headers["etag"] == '"1"' and response.json()["result"]["status"] == "active"
    updated = await manage(harness, key, "PUT", one, json={"name": "Acme shop 2"}, headers={"If-Match": '"1"'})
    assert (updated["name"], updated["version"]) == ("Acme shop 2", 2)
    assert (await manage(harness, key, "POST", one + "/disable"))["status"] == "disabled"
    disabled = await manage(harness, key, "GET", "/customers", params={"xspe": world["xspe"], "status": "disabled"})
    assert [c["customer_id"] for c in disabled["items"]] == [world["customer_id"]]
    assert (await manage(harness, key, "POST", one + "/enable"))["status"] == "active"

    app = f"/apps/{world['app_id']}"
    shown = await manage(harness, key, "GET", app)
    assert shown["scopes"] == ["customer:read", "customer:write"] and "secret" not in shown
    changed = await manage(harness, key, "PUT", app, json={"name": "Renamed", "ip_whitelist": ["10.0.0.0/8"]})
    assert (changed["name"], changed["ip_whitelist"], changed["host_url"]) == ("Renamed", ["10.0.0.0/8"], HOST)
    rotated = await manage(harness, key, "POST", app + "/rotate-secret", json={"grace_seconds": 600})
    assert rotated["grace_seconds"] == 600 and rotated["secret"] != world["secret"]
    assert (await manage(harness, key, "POST", app + "/suspend"))["status"] == "suspended"
    assert (await manage(harness, key, "POST", app + "/resume"))["status"] == "active"
    assert world["app_id"] in {a["app_id"] for a in (await manage(harness, key, "GET", "/apps"))["items"]}

    spe_wide = await manage(harness, key, "POST", "/installations", json={"app_id": world["app_id"],
                                                                          "xspe": world["xspe"]})  # fmt: skip
    assert spe_wide["customer_id"] is None
    again = await manage(harness, key, "POST", "/installations", json={"app_id": world["app_id"],
                                                                       "xspe": world["xspe"]})  # fmt: skip
    assert again["installation_id"] == spe_wide["installation_id"]  # installing twice is a no-op
    listed = await manage(harness, key, "GET", "/installations", params={"app_id": world["app_id"]})
    assert {i["installation_id"] for i in listed["items"]} == {world["installation_id"], spe_wide["installation_id"]}
    gone = await manage(harness, key, "DELETE", f"/installations/{spe_wide['installation_id']}")
    assert gone["uninstalled_at"] is not None
    await manage(harness, key, "DELETE", f"/installations/{spe_wide['installation_id']}", 404)

    user = await manage(harness, key, "POST", "/users", json={"email": "Dev@Example.com", "role": "developer",
                                                              "password": "a long password"})  # fmt: skip
    assert (user["email"], user["role"], user["xspe"]) == ("dev@example.com", "developer", None)
    assert "password_hash" not in user
    owned = await manage(harness, key, "POST", "/apps", json={"name": "Owned", "host_url": HOST,
                                                              "owner": "dev@example.com"})  # fmt: skip
    mine = await manage(harness, key, "GET", "/apps", params={"owner": "dev@example.com"})
    assert [a["app_id"] for a in mine["items"]] == [owned["app_id"]] and owned["owner_id"] == user["user_id"]
    assert user["user_id"] in {u["user_id"] for u in (await manage(harness, key, "GET", "/users"))["items"]}
    await manage(harness, key, "POST", f"/users/{user['user_id']}/password", json={"password": "new long password"})

    deleted = await manage(harness, key, "DELETE", one)
    assert deleted == {"customer_id": world["customer_id"], "deleted": True}
    await manage(harness, key, "GET", one, 404)


async def test_changes_reach_tokens_at_once(harness: Harness) -> None:
    """Suspend, disable, uninstall through the admin API: the next Open API call fails, with no poll between."""
    _key_id, key = await admin_key(harness)
    w = await seed_spe(harness, key, "Live")
    world = harness_world(w)
    user = await user_token(harness, world)
    target = f"/api/spe/customer/{w['customer_id']}"
    assert (await harness.client.get(target, headers=bearer(user))).status_code == 200  # cached now

    await manage(harness, key, "POST", f"/customers/{w['customer_id']}/disable")
    assert (await harness.client.get(target, headers=bearer(user))).status_code == 401
    await manage(harness, key, "POST", f"/customers/{w['customer_id']}/enable")
    assert (await harness.client.get(target, headers=bearer(user))).status_code == 200

    await manage(harness, key, "POST", f"/apps/{w['app_id']}/suspend")
    assert (await harness.client.get(target, headers=bearer(user))).status_code == 401
    await manage(harness, key, "POST", f"/apps/{w['app_id']}/resume")
    assert (await harness.client.get(target, headers=bearer(user))).status_code == 200

    await manage(harness, key, "DELETE", f"/installations/{w['installation_id']}")
    assert (await harness.client.get(target, headers=bearer(user))).status_code == 401


def harness_world(w: dict[str, Any]) -> World:
    return World(w["xspe"], w["customer_id"], w["app_id"], w["secret"], HOST, w["installation_id"],
                 redirect_uri=HOST + "callback")  # fmt: skip


# ------------------------------------------------------------ a key bound to an SPE


async def test_a_key_bound_to_an_spe_reaches_only_that_spe(harness: Harness) -> None:
    _platform_id, platform = await admin_key(harness)
    other = await seed_spe(harness, platform, "Other")
    own = await seed_spe(harness, platform, "Own")
    other_user = await manage(
        harness,
        platform,
        "POST",
        "/users",
        json={
            "email": "other-admin@example.com",
            "role": "spe-admin",
            "xspe": other["xspe"],
            "password": "a long password",
        },
    )
    _bound_id, bound = await admin_key(harness, "own portal", own["xspe"])
    before = await snapshot(harness)

    oc, oa, oi = other["customer_id"], other["app_id"], other["installation_id"]
    refused: list[tuple[str, str, int, dict[str, Any]]] = [
        ("GET", f"/spes/{other['xspe']}", 404, {}),
        ("POST", "/spes", 403, {"json": {"name": "Mine now"}}),
        ("GET", "/customers", 404, {"params": {"xspe": other["xspe"]}}),
        ("POST", "/customers", 404, {"json": {"xspe": other["xspe"], "name": "Planted"}}),
        ("GET", f"/customers/{oc}", 404, {}),
        ("PUT", f"/customers/{oc}", 404, {"json": {"name": "Hijacked"}}),
        ("POST", f"/customers/{oc}/disable", 404, {}),
        ("POST", f"/customers/{oc}/enable", 404, {}),
        ("DELETE", f"/customers/{oc}", 404, {}),
        ("POST", "/apps", 403, {"json": {"name": "Mine", "host_url": HOST}}),
        ("PUT", f"/apps/{oa}", 403, {"json": {"host_url": "https://evil.example.com/"}}),
        ("PUT", f"/apps/{own['app_id']}", 403, {"json": {"name": "Even mine"}}),
        ("POST", f"/apps/{oa}/rotate-secret", 403, {"json": {}}),
        ("POST", f"/apps/{oa}/suspend", 403, {}),
        ("POST", f"/apps/{own['app_id']}/suspend", 403, {}),
        ("POST", f"/apps/{oa}/resume", 403, {}),
        ("GET", "/installations", 404, {"params": {"xspe": other["xspe"]}}),
        ("POST", "/installations", 404, {"json": {"app_id": oa, "customer_id": oc}}),
        ("POST", "/installations", 404, {"json": {"app_id": own["app_id"], "xspe": other["xspe"]}}),
        ("DELETE", f"/installations/{oi}", 404, {}),
        ("POST", "/users", 403, {"json": {"email": "x@example.com", "role": "admin", "password": "a long password"}}),
        ("POST", "/users", 404, {"json": {"email": "y@example.com", "role": "spe-admin", "xspe": other["xspe"],
                                          "password": "a long password"}}),
        ("POST", f"/users/{other_user['user_id']}/password", 404, {"json": {"password": "taken over now"}}),
        ("GET", "/audit-events", 404, {"params": {"xspe": other["xspe"]}}),
    ]  # fmt: skip
    for method, path, status, kwargs in refused:
        body = await manage(harness, bound, method, path, status, **kwargs)
        assert body["error"] == ("not_found" if status == 404 else "access_denied"), (method, path)
        assert other["xspe"] not in body["msg"] and oc not in body["msg"], body
    assert await snapshot(harness) == before  # nothing changed anywhere

    # What it does see is its own SPE only.
    assert [s["xspe"] for s in (await manage(harness, bound, "GET", "/spes"))["items"]] == [own["xspe"]]
    customers = await manage(harness, bound, "GET", "/customers")
    assert customers["xspe"] == own["xspe"] and [c["customer_id"] for c in customers["items"]] == [own["customer_id"]]
    installs = await manage(harness, bound, "GET", "/installations", params={"app_id": oa})
    assert installs["items"] == []  # the other SPE's installation of that app is not its business
    assert [u["user_id"] for u in (await manage(harness, bound, "GET", "/users"))["items"]] == []
    events = (await manage(harness, bound, "GET", "/audit-events", params={"page_size": 100}))["items"]
    assert events and {e["xspe"] for e in events} == {own["xspe"]}
    # And within it, it works: a customer (xspe implied), an install, an spe-admin of its SPE.
    mine = await manage(harness, bound, "POST", "/customers", json={"name": "Portal shop"})
    assert mine["xspe"] == own["xspe"]
    await manage(harness, bound, "POST", "/installations", json={"app_id": oa, "customer_id": mine["customer_id"]})
    admin = await manage(harness, bound, "POST", "/users", json={"email": "own@example.com", "role": "spe-admin",
                                                                 "password": "a long password"})  # fmt: skip
    assert admin["xspe"] == own["xspe"]
    assert (await manage(harness, bound, "GET", f"/apps/{oa}"))["app_id"] == oa  # the catalogue is readable


# ------------------------------------------------------------------------ keys


async def test_no_key_a_wrong_key_or_a_revoked_key_gets_401(harness: Harness) -> None:
    key_id, key = await admin_key(harness)
    before = await snapshot(harness, skip=set())
    for headers, challenge in (
        ({}, 'Bearer realm="openplatform"'),
        ({"Authorization": "Basic b3BzOm9wcw=="}, 'Bearer realm="openplatform", error="invalid_token"'),
        ({"Authorization": key["Authorization"] + "x"}, 'Bearer realm="openplatform", error="invalid_token"'),
        ({"Authorization": "Bearer opk_" + "A" * 43}, 'Bearer realm="openplatform", error="invalid_token"'),
        # An empty header was sent; a header given twice counts by its first line, as everywhere.
        ({"Authorization": ""}, 'Bearer realm="openplatform", error="invalid_token"'),
        ([("Authorization", ""), *key.items()], 'Bearer realm="openplatform", error="invalid_token"'),
    ):
        response = await harness.client.post(M + "/spes", headers=headers, json={"name": "Nope"})
        assert (response.status_code, response.json()["code"]) == (401, 40102)
        assert response.headers["www-authenticate"] == challenge
    assert await snapshot(harness, skip=set()) == before  # not even an audit row for an unknown key

    await manage(harness, key, "GET", "/spes")
    await AdminKeys(harness.admin.stores, harness.admin.keyring).revoke(key_id)
    body = await manage(harness, key, "GET", "/spes", 401)
    assert body["code"] == 40102


async def test_every_use_is_audited_with_the_key_id_never_the_key(harness: Harness) -> None:
    key_id, key = await admin_key(harness)
    secret_key = key["Authorization"].split(" ", 1)[1]
    world = await seed_spe(harness, key, "Audited")
    await manage(harness, key, "GET", "/customers", params={"xspe": world["xspe"]})
    await manage(harness, key, "POST", "/spes", 400, json={"name": ""})

    used = await manage(harness, key, "GET", "/audit-events", params={"event": "admin_key.used", "page_size": 100})
    operations = [(e["detail"]["key_id"], e["detail"]["operation"], e["detail"]["code"]) for e in used["items"]]
    assert operations[:3] == [
        (key_id, "manage.spes.create", 40001),
        (key_id, "manage.customers.list", 0),
        (key_id, "manage.installations.create", 0),
    ]  # newest first; fmt: skip
    installed = await manage(harness, key, "GET", "/audit-events", params={"event": "app.installed"})
    (event,) = installed["items"]
    assert (event["app_id"], event["xspe"], event["customer_id"]) == (world["app_id"], world["xspe"],
                                                                      world["customer_id"])  # fmt: skip
    assert event["detail"] == {"key_id": key_id, "via": "admin_api"}

    dump = json.dumps(await snapshot(harness, skip=set()), default=str)
    assert key_id in dump and secret_key not in dump and secret_key[4:20] not in dump


async def test_audit_events_filter_by_app_spe_event_and_time(harness: Harness) -> None:
    _key_id, key = await admin_key(harness)
    first = await seed_spe(harness, key, "First")
    harness.clock.advance(100)
    second = await seed_spe(harness, key, "Second")
    created = await manage(harness, key, "GET", "/audit-events", params={"event": "app.created"})
    assert [e["app_id"] for e in created["items"]] == [second["app_id"], first["app_id"]]
    middle = created["items"][0]["at"] - 50
    later = await manage(harness, key, "GET", "/audit-events", params={"event": "app.created", "since": middle})
    assert [e["app_id"] for e in later["items"]] == [second["app_id"]]
    earlier = await manage(harness, key, "GET", "/audit-events", params={"until": str(middle), "app_id":
                                                                         first["app_id"]})  # fmt: skip
    assert {e["event"] for e in earlier["items"]} == {"app.created", "app.installed"}
    by_spe = await manage(harness, key, "GET", "/audit-events", params={"xspe": second["xspe"], "page_size": 1})
    assert by_spe["total"] >= 3 and len(by_spe["items"]) == 1 and by_spe["items"][0]["xspe"] == second["xspe"]


# ------------------------------------------------------------------- bad input


async def test_bad_input_is_a_400_naming_the_field(harness: Harness) -> None:
    _key_id, key = await admin_key(harness)
    world = await seed_spe(harness, key, "Strict")
    app = f"/apps/{world['app_id']}"
    before = await snapshot(harness)
    json_headers = {"Content-Type": "application/json"}
    cases: list[tuple[str, str, dict[str, Any], str | None]] = [
        ("POST", "/spes", {"content": b'{"name": "x"', "headers": json_headers}, None),  # malformed
        ("POST", "/spes", {"content": b"[1]", "headers": json_headers}, None),  # not an object
        ("POST", "/spes", {"content": b'{"name": "\xff"}', "headers": json_headers}, None),  # not UTF-8
        ("POST", "/spes", {"content": b"name=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
         "Content-Type"),
        ("POST", "/spes", {"json": {"name": 5}}, "name"),
        ("POST", "/spes", {"json": {"name": True}}, "name"),
        ("POST", "/spes", {"json": {"name": "a\x00b"}}, "name"),
        ("POST", "/spes", {"json": {"name": "x" * 201}}, "name"),
        ("POST", "/spes", {"json": {"name": "x" * 5000}}, "name"),
        ("POST", "/spes", {"json": {"name": {"nested": 1}}}, "name"),
        ("POST", "/spes", {"json": {"name": "ok", "colour": "red"}}, "colour"),
        ("POST", "/spes", {"content": b'{"name": "' + b"x" * 20000 + b'"}', "headers": json_headers}, None),
        ("POST", "/customers", {"json": {"name": "No SPE"}}, "xspe"),
        ("GET", "/customers", {"params": {"xspe": world["xspe"], "page_size": "0"}}, "page_size"),
        ("GET", "/customers", {"params": {"xspe": world["xspe"], "status": "gone"}}, "status"),
        ("GET", "/customers", {"params": [("xspe", world["xspe"]), ("xspe", world["xspe"])]}, "xspe"),
        ("PUT", f"/customers/{world['customer_id']}", {"json": {"version": "x"}}, "version"),
        ("POST", "/apps", {"json": {"name": "A", "host_url": "javascript:alert(1)"}}, "host_url"),
        ("POST", "/apps", {"json": {"name": "A", "host_url": HOST, "scopes": ["root"]}}, "scope"),
        ("POST", "/apps", {"json": {"name": "A", "host_url": HOST, "scopes": [1]}}, "scopes"),
        ("POST", "/apps", {"json": {"name": "A", "host_url": HOST, "ip_whitelist": ["not an ip"]}}, "ip_whitelist"),
        ("POST", "/apps", {"json": {"name": "A", "host_url": HOST, "webhook_url": "https://127.0.0.1/hook"}},
         "webhook_url"),
        ("PUT", app, {"json": {"host_url": ""}}, "host_url"),
        ("POST", app + "/rotate-secret", {"json": {"grace_seconds": -1}}, "grace_seconds"),
        ("POST", app + "/rotate-secret", {"json": {"grace_seconds": "60"}}, "grace_seconds"),
        ("POST", app + "/rotate-secret", {"json": {"grace_seconds": 10**9}}, "grace_seconds"),
        ("POST", "/installations", {"json": {"app_id": world["app_id"]}}, "customer_id"),
        ("POST", "/installations", {"json": {"customer_id": world["customer_id"]}}, "app_id"),
        ("GET", "/installations", {}, "app_id"),
        ("POST", "/users", {"json": {"email": "nope", "role": "developer", "password": "a long password"}}, "email"),
        ("POST", "/users", {"json": {"email": "a@example.com", "role": "root", "password": "a long password"}},
         "role"),
        ("POST", "/users", {"json": {"email": "a@example.com", "role": "developer", "password": "short"}},
         "password"),
        ("GET", "/audit-events", {"params": {"since": "yesterday"}}, "since"),
        ("GET", "/audit-events", {"params": {"until": "nan"}}, "until"),
        ("GET", "/audit-events", {"params": {"until": "1e400"}}, "until"),
        ("GET", "/audit-events", {"params": {"event": "x\x01"}}, "event"),
    ]  # fmt: skip
    for method, path, kwargs, field in cases:
        body = await manage(harness, key, method, path, 400, **kwargs)
        assert (body["code"], body["error"]) == (40001, "invalid_request"), (method, path, body)
        assert body.get("field") == field, (method, path, body)
    for path, status in (("/customers/cus_%00x", 400), ("/apps/" + "f" * 300, 404), ("/spes/%E2%80%AE", 404)):
        await manage(harness, key, "GET", path, status)
    assert await snapshot(harness) == before
