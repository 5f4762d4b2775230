"""Shared helpers of the admin API tests (SPEC §10): keys, calls that check the envelope, table snapshots."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import select

from openplatform.services.admin_keys import AdminKeys
from openplatform.storage.memory import MemoryStore
from openplatform.storage.sql.schema import metadata
from tests.conftest import Harness

M = "/api/manage"
# What an admin API call may write even when it is refused: its own audit record and its key's
# last_used_at (at most once a minute), nothing else.
WRITTEN_WHEN_REFUSED = {"audit_events"}


async def admin_key(harness: Harness, name: str = "ops", xspe: str | None = None) -> tuple[str, dict[str, str]]:
    """A new key (as ``openplatform admin-key create`` makes it): its id and the header carrying it."""
    created, key = await AdminKeys(harness.admin.stores, harness.admin.keyring).create(name, xspe)
    return created.key_id, {"Authorization": f"Bearer {key}"}


async def manage(
    harness: Harness, key: dict[str, str], method: str, path: str, status: int = 200, **kwargs: Any
) -> Any:
    """One admin API call; asserts the status and the envelope; the result (or, for an error, the body)."""
    response = await harness.client.request(method, M + path, headers={**key, **kwargs.pop("headers", {})}, **kwargs)
    assert response.status_code == status, (method, path, response.text)
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    if status == 200:
        assert body["code"] == 0 and body["msg"] == "success", body
        return body["result"]
    assert body["code"] // 100 == status and body["result"] is None and body["msg"], body
    return body


async def snapshot(harness: Harness, skip: set[str] = WRITTEN_WHEN_REFUSED) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but ``skip`` (SQL table names), in a stable order: to check that a
    refusal changed nothing. Keys' ``last_used_at`` is left out (a refused call may write it)."""
    store = harness.platform.store.inner
    if isinstance(store, MemoryStore):
        return memory_snapshot(store, skip)
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for table in metadata.sorted_tables:
        if table.name not in skip:
            columns = [c for c in table.columns if (table.name, c.name) != ("admin_keys", "last_used_at")]
            rows = await harness.admin.db.database.read(select(*columns))
            tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
    return tables


def memory_snapshot(store: MemoryStore, skip: set[str]) -> dict[str, list[tuple[Any, ...]]]:
    """``snapshot`` of the memory backend: each of its tables under the SQL table's name."""
    keys = [(dataclasses.replace(key, last_used_at=None), digest) for key, digest in store.admin_keys.values()]
    tables: dict[str, list[Any]] = {
        "spes": list(store.spes.values()), "customers": list(store.customers.values()),
        "apps": list(store.apps.values()), "app_secrets": list(store.secret_rows.values()),
        "installations": list(store.installations.values()), "sites": list(store.sites.values()),
        "auth_codes": list(store.codes.values()), "tokens": list(store.tokens.values()),
        "audit_events": list(store.audit_events), "invalidations": list(store.invalidations),
        "webhook_deliveries": list(store.deliveries.values()), "users": list(store.users.values()),
        "web_sessions": list(store.sessions.values()), "admin_keys": keys,
    }  # fmt: skip
    return {
        name: sorted((dataclasses.astuple(row) if dataclasses.is_dataclass(row) else tuple(row) for row in rows),
                     key=repr)
        for name, rows in tables.items() if name not in skip
    }  # fmt: skip


async def exercise_admin_api(harness: Harness) -> None:
    """At least one answer of every admin API operation (for the OpenAPI document's checks)."""
    _key_id, key = await admin_key(harness)
    assert (await harness.client.get(M + "/spes")).status_code == 401
    spe = await manage(harness, key, "POST", "/spes", json={"name": "Doc SPE"})
    await manage(harness, key, "GET", "/spes")
    await manage(harness, key, "GET", f"/spes/{spe['xspe']}")
    await manage(harness, key, "GET", "/spes/spe_nope", 404)
    customer = await manage(harness, key, "POST", "/customers", json={"xspe": spe["xspe"], "name": "Doc Co"})
    one = f"/customers/{customer['customer_id']}"
    await manage(harness, key, "GET", "/customers", params={"xspe": spe["xspe"], "page_size": 5})
    await manage(harness, key, "GET", one)
    await manage(harness, key, "PUT", one, json={"contact": "doc@example.com", "version": 1})
    await manage(harness, key, "PUT", one, 409, json={"contact": "late", "version": 1})
    await manage(harness, key, "POST", one + "/disable")
    await manage(harness, key, "POST", one + "/enable")
    app = await manage(harness, key, "POST", "/apps", json={"name": "Doc App", "host_url": "https://doc.example.com/"})
    await manage(harness, key, "POST", "/apps", 400, json={"name": "Doc App", "host_url": "ftp://doc.example.com/"})
    await manage(harness, key, "GET", "/apps")
    await manage(harness, key, "GET", f"/apps/{app['app_id']}")
    await manage(harness, key, "PUT", f"/apps/{app['app_id']}", json={"scopes": ["customer:read"]})
    await manage(harness, key, "POST", f"/apps/{app['app_id']}/rotate-secret", json={"grace_seconds": 60})
    await manage(harness, key, "POST", f"/apps/{app['app_id']}/suspend")
    await manage(harness, key, "POST", f"/apps/{app['app_id']}/resume")
    installed = await manage(
        harness, key, "POST", "/installations", json={"app_id": app["app_id"], "customer_id": customer["customer_id"]}
    )
    await manage(harness, key, "GET", "/installations", params={"app_id": app["app_id"]})
    await manage(harness, key, "DELETE", f"/installations/{installed['installation_id']}")
    user = await manage(
        harness, key, "POST", "/users",
        json={"email": "doc@example.com", "role": "spe-admin", "xspe": spe["xspe"], "password": "a long password"},
    )  # fmt: skip
    await manage(harness, key, "GET", "/users")
    await manage(harness, key, "POST", f"/users/{user['user_id']}/password", json={"password": "another password"})
    await manage(harness, key, "GET", "/audit-events", params={"xspe": spe["xspe"], "page_size": 5})
    await manage(harness, key, "DELETE", one)
    _bound_id, bound = await admin_key(harness, "bound", spe["xspe"])
    await manage(harness, bound, "POST", "/spes", 403, json={"name": "Not mine"})
    await manage(harness, bound, "GET", "/apps")  # the catalogue, without what the developer keeps
    await manage(harness, bound, "GET", f"/apps/{app['app_id']}")
