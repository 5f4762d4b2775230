"""Customer Open APIs over HTTP (SPEC §2.5): CRUD, scopes, reach, validation, concurrency, pagination."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from openplatform.records import CustomerFilter
from openplatform.security import new_id
from tests.conftest import Harness
from tests.web.open_api_support import call, directory, error, result, user_token

CUSTOMER_KEYS = {"customer_id", "xspe", "name", "contact", "status", "created_at", "updated_at", "version"}


async def spe_app(harness: Harness, scopes: tuple[str, ...] | None = None) -> tuple[Any, str]:
    world = await harness.world(spe_wide=True) if scopes is None else await harness.world(scopes, spe_wide=True)
    return world, await harness.app_token(world)


async def new_customer(harness: Harness, token: str, name: str = "Beta Ltd", **extra: Any) -> dict[str, Any]:
    created: dict[str, Any] = await result(harness, "POST", "/api/spe/customers", token, json={"name": name, **extra})
    return created


async def test_create_get_update_delete(harness: Harness) -> None:
    world, token = await spe_app(harness)
    response = await call(
        harness, "POST", "/api/spe/customers", token, json={"name": "  Beta Ltd ", "contact": "ops@beta.example"}
    )
    created = response.json()["result"]
    assert response.headers["etag"] == '"1"'
    assert set(created) == CUSTOMER_KEYS
    assert (created["name"], created["status"], created["version"], created["xspe"]) == (
        "Beta Ltd", "active", 1, world.xspe,
    )  # fmt: skip
    path = f"/api/spe/customer/{created['customer_id']}"
    assert await result(harness, "GET", path, token) == created

    response = await call(harness, "PUT", path, token, json={"status": "disabled", "version": 1})
    updated = response.json()["result"]
    assert response.headers["etag"] == '"2"'
    assert (updated["status"], updated["name"], updated["version"]) == ("disabled", "Beta Ltd", 2)

    assert await result(harness, "DELETE", path, token) == {"customer_id": created["customer_id"], "deleted": True}
    for method in ("GET", "PUT", "DELETE"):
        body = await error(harness, method, path, token, 404, json={"name": "x"} if method == "PUT" else None)
        assert body["error"] == "not_found"


async def test_form_bodies_are_accepted(harness: Harness) -> None:
    _, token = await spe_app(harness)
    created = await result(harness, "POST", "/api/spe/customers", token, data={"name": "Form Co", "contact": "f"})
    path = f"/api/spe/customer/{created['customer_id']}"
    updated = await result(harness, "PUT", path, token, data={"name": "Form Co 2", "version": "1"})
    assert (updated["name"], updated["contact"], updated["version"]) == ("Form Co 2", "f", 2)


SCOPE_CASES = [  # (the app's scopes, method, list or one customer)
    (("customer:read",), "POST", "list"),
    (("customer:read",), "PUT", "one"),
    (("customer:read",), "DELETE", "one"),
    (("customer:write",), "GET", "list"),
    (("customer:write",), "GET", "one"),
    (("site:read", "site:write"), "GET", "one"),
]


async def test_app_token_needs_the_scope(harness: Harness) -> None:
    for scopes, method, target in SCOPE_CASES:
        world, token = await spe_app(harness, scopes)
        path = "/api/spe/customers" if target == "list" else f"/api/spe/customer/{world.customer_id}"
        response = await call(harness, method, path, token, 403, json={"name": "New"} if method != "GET" else None)
        assert response.json()["error"] == "insufficient_scope", (scopes, method, target)
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_user_token_reaches_only_its_own_customer(harness: Harness) -> None:
    world = await harness.world()
    neighbour = await harness.admin.create_customer(world.xspe, "Neighbour")
    own, other = f"/api/spe/customer/{world.customer_id}", f"/api/spe/customer/{neighbour.customer_id}"

    login_only = await user_token(harness, world)
    assert (await result(harness, "GET", own, login_only))["customer_id"] == world.customer_id
    assert (await error(harness, "GET", other, login_only, 404))["error"] == "not_found"
    # SPEC §2.5: the list is for app tokens; a user token is told so, whatever its scopes (issue 13 item 2).
    refused = await error(harness, "GET", "/api/spe/customers", login_only, 403)
    assert (refused["code"], refused["error"]) == (40301, "access_denied") and "app token" in refused["msg"]

    token = await user_token(harness, world, "install_login customer:read customer:write")
    assert (await error(harness, "GET", "/api/spe/customers", token, 403))["error"] == "access_denied"
    assert (await result(harness, "GET", own, token))["customer_id"] == world.customer_id
    for method, path in (("PUT", own), ("DELETE", own), ("POST", "/api/spe/customers")):
        body = await error(harness, method, path, token, 403, json={"name": "Mine now"})
        assert body["error"] == "access_denied"
    for method in ("PUT", "DELETE"):
        assert (await error(harness, method, other, token, 404, json={"name": "x"}))["error"] == "not_found"


async def test_spes_are_isolated(harness: Harness) -> None:
    mine, token = await spe_app(harness)
    theirs, their_token = await spe_app(harness)
    listed = await result(harness, "GET", "/api/spe/customers", token)
    assert [c["xspe"] for c in listed["items"]] == [mine.xspe]

    missing = await error(harness, "GET", "/api/spe/customer/cus_0000000000000000", token, 404)
    for method in ("GET", "PUT", "DELETE"):
        body = await error(harness, method, f"/api/spe/customer/{theirs.customer_id}", token, 404, json={"name": "x"})
        assert body == missing  # indistinguishable from a customer that does not exist
    for method, kwargs in (
        ("GET", {"params": {"xspe": theirs.xspe}}),
        ("POST", {"json": {"name": "x", "xspe": theirs.xspe}}),
    ):
        assert (await error(harness, method, "/api/spe/customers", token, 403, **kwargs))["error"] == "access_denied"
    untouched = await result(harness, "GET", f"/api/spe/customer/{theirs.customer_id}", their_token)
    assert (untouched["name"], untouched["version"]) == ("Customer One", 1)


async def test_per_customer_install_sees_only_its_customers(harness: Harness) -> None:
    world = await harness.world()
    other = await harness.admin.create_customer(world.xspe, "Other")
    token = await harness.app_token(world)
    listed = await result(harness, "GET", "/api/spe/customers", token)
    assert [c["customer_id"] for c in listed["items"]] == [world.customer_id]
    assert (await error(harness, "GET", f"/api/spe/customer/{other.customer_id}", token, 404))["error"] == "not_found"
    body = await error(harness, "POST", "/api/spe/customers", token, 403, json={"name": "New"})
    assert body["error"] == "access_denied"

    await harness.admin.install(world.app_id, customer_id=other.customer_id)
    await harness.wait_for_invalidation()
    listed = await result(harness, "GET", "/api/spe/customers", token)
    assert {c["customer_id"] for c in listed["items"]} == {world.customer_id, other.customer_id}


async def test_xspe_picks_the_spe_when_installed_at_several(harness: Harness) -> None:
    world, token = await spe_app(harness)
    second = await harness.admin.create_spe("Second SPE")
    await harness.admin.install(world.app_id, xspe=second.xspe)
    await harness.wait_for_invalidation()
    assert (await error(harness, "GET", "/api/spe/customers", token, 400))["field"] == "xspe"
    assert (await error(harness, "POST", "/api/spe/customers", token, 400, json={"name": "x"}))["field"] == "xspe"
    created = await new_customer(harness, token, xspe=second.xspe)
    assert created["xspe"] == second.xspe
    listed = await result(harness, "GET", "/api/spe/customers", token, params={"xspe": second.xspe})
    assert ([c["customer_id"] for c in listed["items"]], listed["xspe"]) == ([created["customer_id"]], second.xspe)


INVALID_BODIES = [
    ("POST", {}, "name"),
    ("POST", {"name": "   "}, "name"),
    ("POST", {"name": "x" * 201}, "name"),
    ("POST", {"name": "bell\u0007"}, "name"),
    ("POST", {"name": 42}, "name"),
    ("POST", {"name": ["a"]}, "name"),
    ("POST", {"name": "ok", "contact": "c" * 321}, "contact"),
    ("POST", {"name": "ok", "status": "gone"}, "status"),
    ("POST", {"name": "ok", "colour": "red"}, "colour"),
    ("POST", {"name": "ok", "xspe": 7}, "xspe"),
    ("PUT", {"name": ""}, "name"),
    ("PUT", {"version": "two"}, "version"),
    ("PUT", {"version": 0}, "version"),
    ("PUT", {"version": True}, "version"),
    ("PUT", {"status": "active", "customer_id": "cus_x"}, "customer_id"),
]


async def test_invalid_bodies_name_the_field(harness: Harness) -> None:
    world, token = await spe_app(harness)
    for method, body, field in INVALID_BODIES:
        path = "/api/spe/customers" if method == "POST" else f"/api/spe/customer/{world.customer_id}"
        answer = await error(harness, method, path, token, 400, json=body)
        assert (answer["code"], answer["error"], answer.get("field")) == (40001, "invalid_request", field), body
    assert (await result(harness, "GET", f"/api/spe/customer/{world.customer_id}", token))["version"] == 1


INVALID_LIST_PARAMETERS = [
    ({"page_size": "101"}, "page_size"),
    ({"page_size": "0"}, "page_size"),
    ({"page": "0"}, "page"),
    ({"page": "x"}, "page"),
    ({"status": "gone"}, "status"),
    ({"name": "n" * 201}, "name"),
]


async def test_invalid_list_parameters_name_the_field(harness: Harness) -> None:
    _, token = await spe_app(harness)
    for params, field in INVALID_LIST_PARAMETERS:
        assert (await error(harness, "GET", "/api/spe/customers", token, 400, params=params))["field"] == field


async def test_malformed_bodies_are_refused(harness: Harness) -> None:
    world, token = await spe_app(harness)
    headers = {"Content-Type": "application/json"}
    for raw in (b"[1, 2]", b"{not json", b'{"name": "x"' + b" " * 20000 + b"}"):
        await error(harness, "POST", "/api/spe/customers", token, 400, content=raw, headers=headers)
    await error(harness, "PATCH", f"/api/spe/customer/{world.customer_id}", token, 405, json={"name": "x"})


async def test_stale_version_is_a_conflict(harness: Harness) -> None:
    _, token = await spe_app(harness)
    path = f"/api/spe/customer/{(await new_customer(harness, token))['customer_id']}"
    assert (await result(harness, "PUT", path, token, json={"name": "v2", "version": 1}))["version"] == 2
    stale = await error(harness, "PUT", path, token, 409, json={"name": "lost", "version": 1})
    assert (stale["code"], stale["error"]) == (40901, "conflict")
    await error(harness, "PUT", path, token, 409, json={"name": "lost"}, headers={"If-Match": '"1"'})
    assert (await result(harness, "GET", path, token))["name"] == "v2"

    for if_match, version in (('"2"', 3), ("*", 4), (None, 5)):
        headers = {"If-Match": if_match} if if_match else {}
        assert (await result(harness, "PUT", path, token, json={"name": f"v{version}"}, headers=headers))[
            "version"
        ] == version
    assert (await result(harness, "PUT", path, token, json={"version": 5}))["version"] == 5  # a pure precondition
    await error(harness, "PUT", path, token, 409, json={"version": 4})
    mixed = await error(harness, "PUT", path, token, 400, json={"name": "x", "version": 5}, headers={"If-Match": '"4"'})
    assert mixed["field"] == "version"
    assert (await error(harness, "PUT", path, token, 400, json={"name": "x"}, headers={"If-Match": 'W/"5"'}))[
        "field"
    ] == "If-Match"


async def test_concurrent_writers_never_overwrite_each_other(harness: Harness) -> None:
    _, token = await spe_app(harness)
    path = f"/api/spe/customer/{(await new_customer(harness, token))['customer_id']}"
    headers = {"Authorization": f"Bearer {token}", "If-Match": '"1"'}
    answers = await asyncio.gather(
        *(harness.client.put(path, json={"name": f"writer {i}"}, headers=headers) for i in range(4))
    )
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    winner = next(a for a in answers if a.status_code == 200).json()["result"]
    assert (await result(harness, "GET", path, token)) == winner


async def test_changes_reach_the_cached_customer_at_once(harness: Harness) -> None:
    world, token = await spe_app(harness)
    user = await user_token(harness, world)
    path = f"/api/spe/customer/{world.customer_id}"
    assert (await result(harness, "GET", path, user))["name"] == "Customer One"  # now cached
    await result(harness, "PUT", path, token, json={"name": "Renamed"})
    assert (await result(harness, "GET", path, user))["name"] == "Renamed"
    await result(harness, "DELETE", path, token)
    assert (await error(harness, "GET", path, user, 401))["error"] == "invalid_token"
    await error(harness, "GET", path, token, 404)


async def test_delete_cascades_sites_installations_and_tokens(harness: Harness) -> None:
    world, token = await spe_app(harness)
    other_app, secret = await harness.admin.create_app(
        "Other App", world.host_url, ["site:read"], webhook_url="https://hooks.example.invalid/hook"
    )
    await harness.admin.install(other_app.app_id, customer_id=world.customer_id)
    await harness.wait_for_invalidation()
    sites = f"/api/spe/customer/{world.customer_id}/sites"
    for i in range(3):
        await result(harness, "POST", sites, token, json={"name": f"Site {i}", "domain": f"s{i}.example.com"})
    other_world = type(world)(world.xspe, world.customer_id, other_app.app_id, secret, world.host_url, "")
    their_user = await user_token(harness, other_world, "install_login site:read")
    pending_code = await harness.code(world)

    await result(harness, "DELETE", f"/api/spe/customer/{world.customer_id}", token)
    assert await directory(harness).list_sites(world.customer_id, None, 10, 0) == ([], 0)
    installs = await harness.admin.db.list_installations(app_id=other_app.app_id)
    assert installs == []
    assert (await error(harness, "GET", sites, their_user, 401))["error"] == "invalid_token"
    assert (await harness.exchange(world, pending_code)).json()["error"] == "invalid_grant"
    assert (await error(harness, "GET", sites, token, 404))["error"] == "not_found"

    queued = await harness.admin.stores.outbox.list(limit=1000)
    notices = [(q["app_id"], q["event"], json.loads(q["payload"])["customer_id"]) for q in queued]
    assert (other_app.app_id, "uninstall", world.customer_id) in notices  # the app is told it is gone
    events = [e["event"] for e in await harness.audit(world.app_id)]
    assert {"customer.deleted", "site.created"} <= set(events)


async def test_a_thousand_customers_page_by_page(harness: Harness) -> None:
    world, token = await spe_app(harness)
    entries = [
        {"customer_id": new_id("cus_"), "name": f"Bulk {i:04d}", "status": "disabled" if i % 10 == 0 else "active"}
        for i in range(1000)
    ]
    await directory(harness).create_customers(world.xspe, entries)
    seen: list[str] = []
    for page in range(1, 12):
        listed = await result(harness, "GET", "/api/spe/customers", token, params={"page": page, "page_size": 100})
        assert (listed["total"], listed["page"], listed["page_size"]) == (1001, page, 100)
        seen += [c["customer_id"] for c in listed["items"]]
    assert len(seen) == len(set(seen)) == 1001
    assert seen[0] == world.customer_id and seen[1:] == sorted(seen[1:])  # created_at, then id
    beyond = await result(harness, "GET", "/api/spe/customers", token, params={"page": 12, "page_size": 100})
    assert (beyond["items"], beyond["total"]) == ([], 1001)

    disabled = await result(
        harness, "GET", "/api/spe/customers", token, params={"status": "disabled", "page_size": 100}
    )
    assert disabled["total"] == 100 and {c["status"] for c in disabled["items"]} == {"disabled"}
    named = await result(harness, "GET", "/api/spe/customers", token, params={"name": "bULK 012"})
    assert sorted(c["name"] for c in named["items"]) == [f"Bulk {i:04d}" for i in range(120, 130)]


async def test_name_filter_treats_wildcards_literally(harness: Harness) -> None:
    world, token = await spe_app(harness)
    await new_customer(harness, token, "100% Pure_Co")
    for needle in ("%", "_", "0% p"):
        listed = await result(harness, "GET", "/api/spe/customers", token, params={"name": needle})
        assert [c["name"] for c in listed["items"]] == ["100% Pure_Co"], needle
    narrowed = await directory(harness).list_customers(CustomerFilter(world.xspe, name="pure_co"), 10, 0)
    assert narrowed[1] == 1


async def test_delete_racing_new_sites_leaves_nothing_behind(harness: Harness) -> None:
    world, token = await spe_app(harness)
    sites = f"/api/spe/customer/{world.customer_id}/sites"
    headers = {"Authorization": f"Bearer {token}"}
    posts = [
        harness.client.post(sites, headers=headers, json={"name": f"s{i}", "domain": f"s{i}.example"}) for i in range(6)
    ]
    answers = await asyncio.gather(
        *posts[:3], harness.client.delete(f"/api/spe/customer/{world.customer_id}", headers=headers), *posts[3:]
    )
    assert {a.status_code for a in answers} <= {200, 404}, [a.text for a in answers if a.status_code not in (200, 404)]
    assert answers[3].status_code == 200
    assert await directory(harness).list_sites(world.customer_id, None, 10, 0) == ([], 0)


async def test_disabling_a_customer_stops_its_user_tokens(harness: Harness) -> None:
    world = await harness.world(spe_wide=True)
    app_token = await harness.app_token(world)
    login = await user_token(harness, world)
    own = f"/api/spe/customer/{world.customer_id}"
    assert (await result(harness, "GET", own, login))["status"] == "active"

    await result(harness, "PUT", own, app_token, json={"status": "disabled"})
    assert (await error(harness, "GET", own, login, 401))["error"] == "invalid_token"
    assert (await result(harness, "GET", own, app_token))["status"] == "disabled"  # the SPE still manages it

    await result(harness, "PUT", own, app_token, json={"status": "active"})
    assert (await result(harness, "GET", own, login))["status"] == "active"
