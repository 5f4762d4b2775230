"""Site Open APIs over HTTP (SPEC §2.5): SPE-side and customer-side (/api/specp) families."""

from __future__ import annotations

from typing import Any

from tests.conftest import Harness
from tests.web.open_api_support import call, error, result, user_token

SITE_KEYS = {"site_id", "customer_id", "xspe", "name", "domain", "status", "created_at", "updated_at", "version"}
SITE_SCOPES = "install_login site:read site:write"

VALID_DOMAINS = [
    ("example.com", "example.com"),
    ("Shop.Example.COM", "shop.example.com"),
    ("shop.example.com.", "shop.example.com"),
    ("bücher.example", "xn--bcher-kva.example"),
    ("ＥＸＡＭＰＬＥ.org", "example.org"),
    ("a-b.c-d.example", "a-b.c-d.example"),
    ("x" * 63 + ".example", "x" * 63 + ".example"),
]
INVALID_DOMAINS = [
    "",
    "   ",
    "https://example.com",
    "example.com/path",
    "example.com:8080",
    "user@example.com",
    "example.com?q=1",
    "*.example.com",
    "exa mple.com",
    "localhost",
    "192.168.1.1",
    "[::1]",
    "-bad.example",
    "bad-.example",
    "ex_ample.com",
    "a..example",
    "x" * 64 + ".example",
    ".".join(["a" * 63] * 4) + ".com",  # 259 characters
    "xn--zz.example",
]


async def site_world(harness: Harness) -> tuple[Any, str, str]:
    """An SPE-wide app with every scope, its app token, and the sites path of its customer."""
    world = await harness.world(spe_wide=True)
    return world, await harness.app_token(world), f"/api/spe/customer/{world.customer_id}/sites"


async def test_crud_under_the_customer_path(harness: Harness) -> None:
    world, token, sites = await site_world(harness)
    response = await call(harness, "POST", sites, token, json={"name": "Shop", "domain": "Shop.Example.com"})
    site = response.json()["result"]
    assert response.headers["etag"] == '"1"' and set(site) == SITE_KEYS
    assert (site["domain"], site["status"], site["customer_id"], site["xspe"], site["version"]) == (
        "shop.example.com", "active", world.customer_id, world.xspe, 1,
    )  # fmt: skip
    path = f"{sites}/{site['site_id']}"
    assert await result(harness, "GET", path, token) == site

    updated = await result(harness, "PUT", path, token, json={"status": "paused", "domain": "blog.example.com"})
    assert (updated["status"], updated["domain"], updated["name"], updated["version"]) == (
        "paused", "blog.example.com", "Shop", 2,
    )  # fmt: skip
    listed = await result(harness, "GET", sites, token)
    assert listed == {"items": [updated], "total": 1, "page": 1, "page_size": 20}

    assert await result(harness, "DELETE", path, token) == {"site_id": site["site_id"], "deleted": True}
    for method in ("GET", "PUT", "DELETE"):
        assert (await error(harness, method, path, token, 404, json={"name": "x"}))["error"] == "not_found"


async def test_customer_side_family_uses_the_user_token(harness: Harness) -> None:
    world, app_token, sites = await site_world(harness)
    user = await user_token(harness, world, SITE_SCOPES)
    created = await result(harness, "POST", "/api/specp/sites", user, data={"name": "Mine", "domain": "mine.example"})
    assert created["customer_id"] == world.customer_id
    path = f"/api/specp/sites/{created['site_id']}"
    assert await result(harness, "GET", path, user) == created
    assert (await result(harness, "GET", "/api/specp/sites", user))["items"] == [created]
    assert (await result(harness, "GET", sites, app_token))["items"] == [created]  # the same site, SPE-side
    assert (await result(harness, "PUT", path, user, json={"name": "Mine 2", "version": 1}))["version"] == 2
    assert (await result(harness, "DELETE", path, user))["deleted"] is True
    assert (await result(harness, "GET", "/api/specp/sites", user))["total"] == 0

    for method in ("GET", "POST"):
        body = await error(harness, method, "/api/specp/sites", app_token, 403, json={"name": "x", "domain": "x.com"})
        assert body["error"] == "access_denied"  # no customer in an app token


async def test_scopes_are_enforced(harness: Harness) -> None:
    world, _, sites = await site_world(harness)
    login_only = await user_token(harness, world)
    reader = await user_token(harness, world, "install_login site:read")
    for token, method in ((login_only, "GET"), (reader, "POST")):
        for path in (sites, "/api/specp/sites"):
            response = await call(harness, method, path, token, 403, json={"name": "x", "domain": "x.example"})
            assert response.json()["error"] == "insufficient_scope"
    assert (await result(harness, "GET", "/api/specp/sites", reader))["total"] == 0

    customers_only = await harness.world(("customer:read", "customer:write"), spe_wide=True)
    token = await harness.app_token(customers_only)
    path = f"/api/spe/customer/{customers_only.customer_id}/sites"
    assert (await error(harness, "GET", path, token, 403))["error"] == "insufficient_scope"


async def test_sites_of_others_are_not_found(harness: Harness) -> None:
    world, token, sites = await site_world(harness)
    neighbour = await harness.admin.create_customer(world.xspe, "Neighbour")
    theirs, their_token, their_sites = await site_world(harness)
    mine = await result(harness, "POST", sites, token, json={"name": "Mine", "domain": "mine.example"})
    foreign = await result(harness, "POST", their_sites, their_token, json={"name": "Theirs", "domain": "t.example"})
    neighbour_sites = f"/api/spe/customer/{neighbour.customer_id}/sites"
    nearby = await result(harness, "POST", neighbour_sites, token, json={"name": "Near", "domain": "near.example"})
    missing = await error(harness, "GET", f"{sites}/site_0000000000000000", token, 404)

    # Another SPE's customer, another SPE's site through my customer, a neighbour's site through my customer.
    for path in (their_sites, f"{their_sites}/{foreign['site_id']}", f"{sites}/{foreign['site_id']}"):
        assert (await error(harness, "GET", path, token, 404))["error"] == "not_found"
    assert await error(harness, "GET", f"{sites}/{nearby['site_id']}", token, 404) == missing
    await error(harness, "PUT", f"{sites}/{nearby['site_id']}", token, 404, json={"name": "stolen"})
    await error(harness, "DELETE", f"{their_sites}/{foreign['site_id']}", token, 404)

    user = await user_token(harness, world, SITE_SCOPES)
    for path in (neighbour_sites, f"/api/specp/sites/{nearby['site_id']}", f"/api/specp/sites/{foreign['site_id']}"):
        assert (await error(harness, "GET", path, user, 404))["error"] == "not_found"
    assert (await result(harness, "GET", f"/api/specp/sites/{mine['site_id']}", user)) == mine
    assert (await result(harness, "GET", f"{their_sites}/{foreign['site_id']}", their_token))["name"] == "Theirs"
    assert theirs.xspe != world.xspe


async def test_domains_are_normalised_hostnames(harness: Harness) -> None:
    _, token, sites = await site_world(harness)
    for raw, stored in VALID_DOMAINS:
        assert (await result(harness, "POST", sites, token, json={"name": "ok", "domain": raw}))["domain"] == stored
    for raw in INVALID_DOMAINS:
        body = await error(harness, "POST", sites, token, 400, json={"name": "ok", "domain": raw})
        assert (body["error"], body["field"]) == ("invalid_request", "domain"), raw
    created = await result(harness, "GET", sites, token)
    assert created["total"] == len(VALID_DOMAINS)
    path = f"{sites}/{created['items'][0]['site_id']}"
    assert (await error(harness, "PUT", path, token, 400, json={"domain": "http://x.example"}))["field"] == "domain"


async def test_invalid_fields_are_named(harness: Harness) -> None:
    _, token, sites = await site_world(harness)
    cases = [
        ({"domain": "a.example"}, "name"),
        ({"name": "n" * 201, "domain": "a.example"}, "name"),
        ({"name": "ok"}, "domain"),
        ({"name": "ok", "domain": "a.example", "status": "disabled"}, "status"),
        ({"name": "ok", "domain": "a.example", "customer_id": "cus_x"}, "customer_id"),
        ({"name": "ok", "domain": 5}, "domain"),
    ]
    for body, field in cases:
        assert (await error(harness, "POST", sites, token, 400, json=body))["field"] == field, body
    site = await result(harness, "POST", sites, token, json={"name": "ok", "domain": "a.example"})
    path = f"{sites}/{site['site_id']}"
    for body, field in (({"status": "gone"}, "status"), ({"version": "x"}, "version"), ({"name": " "}, "name")):
        assert (await error(harness, "PUT", path, token, 400, json=body))["field"] == field, body
    assert (await error(harness, "GET", sites, token, 400, params={"status": "gone"}))["field"] == "status"


async def test_stale_site_version_is_a_conflict(harness: Harness) -> None:
    _, token, sites = await site_world(harness)
    site = await result(harness, "POST", sites, token, json={"name": "ok", "domain": "a.example"})
    path = f"{sites}/{site['site_id']}"
    first = await call(harness, "PUT", path, token, json={"name": "first"}, headers={"If-Match": '"1"'})
    assert first.headers["etag"] == '"2"'
    for kwargs in (
        {"json": {"name": "second", "version": 1}},
        {"json": {"name": "second"}, "headers": {"If-Match": "1"}},
    ):
        body = await error(harness, "PUT", path, token, 409, **kwargs)
        assert (body["code"], body["error"]) == (40901, "conflict")
    assert (await result(harness, "GET", path, token))["name"] == "first"
    assert (await result(harness, "PUT", path, token, json={"name": "second", "version": 2}))["version"] == 3


async def test_pagination_and_status_filter(harness: Harness) -> None:
    _, token, sites = await site_world(harness)
    for i in range(7):
        status = "paused" if i % 3 == 0 else "active"
        await result(harness, "POST", sites, token, json={"name": f"s{i}", "domain": f"s{i}.example", "status": status})
    pages = [await result(harness, "GET", sites, token, params={"page": p, "page_size": 3}) for p in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [3, 3, 1] and {p["total"] for p in pages} == {7}
    assert len({s["site_id"] for p in pages for s in p["items"]}) == 7
    paused = await result(harness, "GET", sites, token, params={"status": "paused"})
    assert sorted(s["name"] for s in paused["items"]) == ["s0", "s3", "s6"] and paused["total"] == 3
