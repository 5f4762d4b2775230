"""Installs and uninstalls sent at once (SPEC §8, §10): one installation, one uninstall, one notification.

Found by the review of the admin API: a burst of ``POST /api/manage/installations`` for one app and
customer (a portal retrying, two operators at once) made two live installations on PostgreSQL (each
request looked, found none, and inserted); ``DELETE`` of the one answered then left the app installed
for the customer through its twin, tokens and connect included. A burst of ``DELETE`` for one
installation answered 200 several times, each queuing an uninstall notification and an audit event.
Runs on memory, SQLite and PostgreSQL (the ``harness`` fixture); the requests interleave on one event loop
as a server's do.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.conftest import Harness
from tests.web.manage_support import M, admin_key, manage

BURST = 12
HOST = "https://burst.example.com/"


async def test_a_burst_of_installs_makes_one_installation_and_of_uninstalls_one_uninstall(harness: Harness) -> None:
    _key_id, key = await admin_key(harness)
    spe = await manage(harness, key, "POST", "/spes", json={"name": "Burst SPE"})
    hook = "https://hooks.burst.example.com/"
    app = await manage(harness, key, "POST", "/apps", json={"name": "Burst", "host_url": HOST, "webhook_url": hook})
    for target in ("customer", "spe"):
        if target == "customer":
            customer = await manage(harness, key, "POST", "/customers", json={"xspe": spe["xspe"], "name": "Shop"})
            body = {"app_id": app["app_id"], "customer_id": customer["customer_id"]}
        else:
            body = {"app_id": app["app_id"], "xspe": spe["xspe"]}
        answers = await asyncio.gather(
            *(harness.client.post(M + "/installations", headers=key, json=body) for _ in range(BURST))
        )
        assert {a.status_code for a in answers} == {200}
        (installation_id,) = {a.json()["result"]["installation_id"] for a in answers}
        live = [i for i in await harness.admin.db.list_installations(app_id=app["app_id"]) if i.uninstalled_at is None]
        assert [i.installation_id for i in live] == [installation_id]

        gone = await asyncio.gather(
            *(harness.client.delete(f"{M}/installations/{installation_id}", headers=key) for _ in range(BURST))
        )
        assert Counter(a.status_code for a in gone) == {200: 1, 404: BURST - 1}
        assert {a.json()["code"] for a in gone if a.status_code == 404} == {40401}

    events = await manage(harness, key, "GET", "/audit-events", params={"app_id": app["app_id"], "page_size": 100})
    assert Counter(e["event"] for e in events["items"]) == {
        "app.created": 1, "app.installed": 2, "app.uninstalled": 2}  # fmt: skip
    queued = await harness.admin.stores.outbox.list(app["app_id"], limit=1000)
    assert Counter(row["event"] for row in queued) == {"install": 2, "uninstall": 2}
