"""The admin API's lists come in pages (operator review of issue 10): SPEs, apps, installations
and accounts take ``page`` and ``page_size`` like the customers' list and answer
``{"items", "total", "page", "page_size"}``; an out-of-range page names its range, however long.

Runs on SQLite and PostgreSQL (the ``harness`` fixture).
"""

from __future__ import annotations

from typing import Any

from tests.conftest import Harness
from tests.web.manage_support import admin_key, manage

HOST = "https://shop.example.com/"


async def every_page(harness: Harness, key: dict[str, str], path: str, id_field: str, **params: str) -> list[str]:
    """The ids of every item, page after page of 2, checking each page's shape and total."""
    seen: list[str] = []
    number, total = 1, None
    while True:
        page = await manage(harness, key, "GET", path, params={**params, "page": number, "page_size": 2})
        assert set(page) >= {"items", "total", "page", "page_size"}, page
        assert (page["page"], page["page_size"]) == (number, 2)
        assert total is None or page["total"] == total  # the same over every page
        total = page["total"]
        seen += [item[id_field] for item in page["items"]]
        if not page["items"]:
            break
        assert len(page["items"]) <= 2
        number += 1
    assert total == len(seen) == len(set(seen))  # nothing repeated, nothing skipped
    return seen


async def test_spes_apps_installations_and_users_are_listed_in_pages(harness: Harness) -> None:
    _key_id, key = await admin_key(harness)
    xspes = [(await manage(harness, key, "POST", "/spes", json={"name": f"SPE {n}"}))["xspe"] for n in range(5)]
    customers = [
        (await manage(harness, key, "POST", "/customers", json={"xspe": xspes[0], "name": f"Shop {n}"}))["customer_id"]
        for n in range(3)
    ]
    app_ids = []
    for n in range(5):
        app = await manage(harness, key, "POST", "/apps", json={"name": f"App {n}", "host_url": HOST})
        app_ids.append(app["app_id"])
    installed = [
        (await manage(harness, key, "POST", "/installations", json={"app_id": app_ids[0], "customer_id": c}))[
            "installation_id"
        ]
        for c in customers
    ]
    emails = [f"dev{n}@example.com" for n in range(3)]
    for email in emails:
        await manage(harness, key, "POST", "/users", json={"email": email, "role": "developer",
                                                           "password": "a long password"})  # fmt: skip

    assert await every_page(harness, key, "/spes", "xspe") == xspes  # oldest first
    assert await every_page(harness, key, "/apps", "app_id") == app_ids
    assert await every_page(harness, key, "/installations", "installation_id", app_id=app_ids[0]) == installed
    assert await every_page(harness, key, "/installations", "installation_id", xspe=xspes[0]) == installed
    users = await every_page(harness, key, "/users", "email")
    assert users[-3:] == emails

    first = await manage(harness, key, "GET", "/apps")  # the defaults
    assert (first["total"], first["page"], first["page_size"], len(first["items"])) == (5, 1, 20, 5)
    beyond = await manage(harness, key, "GET", "/spes", params={"page": 9, "page_size": 100})
    assert (beyond["items"], beyond["total"]) == ([], 5)

    bound_key_id, bound = await admin_key(harness, "portal", xspe=xspes[1])
    assert bound_key_id
    await manage(harness, bound, "POST", "/users", json={"email": "portal@example.com", "role": "spe-admin",
                                                         "password": "a long password"})  # fmt: skip
    own = await manage(harness, bound, "GET", "/spes", params={"page_size": 1})
    assert ([s["xspe"] for s in own["items"]], own["total"]) == ([xspes[1]], 1)  # its own SPE, counted alone
    accounts = await manage(harness, bound, "GET", "/users", params={"page_size": 1})
    assert ([u["email"] for u in accounts["items"]], accounts["total"]) == (["portal@example.com"], 1)


async def test_a_page_out_of_range_names_the_range_however_long(harness: Harness) -> None:
    _key_id, key = await admin_key(harness)
    spe = await manage(harness, key, "POST", "/spes", json={"name": "Range SPE"})
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("/spes", {"page": "99999999999999999999"}, "page", "page must be between 1 and 1000000."),
        ("/apps", {"page": "1000001"}, "page", "page must be between 1 and 1000000."),
        ("/users", {"page": "0"}, "page", "page must be between 1 and 1000000."),
        ("/installations", {"xspe": spe["xspe"], "page_size": "101"}, "page_size",
         "page_size must be between 1 and 100."),
        ("/customers", {"xspe": spe["xspe"], "page_size": "0" * 5000 + "7" * 30}, "page_size",
         "page_size must be between 1 and 100."),
        ("/audit-events", {"page": "-1"}, "page", "page must be a whole number."),
        ("/spes", {"page_size": "2.5"}, "page_size", "page_size must be a whole number."),
        ("/spes", {"page": "\uff11"}, "page", "page must be a whole number."),  # a full-width digit
    ]  # fmt: skip
    for path, params, field, message in cases:
        body = await manage(harness, key, "GET", path, 400, params=params)
        assert (body["code"], body["field"], body["msg"]) == (40001, field, message), (path, params, body)
    padded = await manage(harness, key, "GET", "/spes", params={"page": "0" * 5000 + "1"})  # leading zeros: 1
    assert padded["page"] == 1
