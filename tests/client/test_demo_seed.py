"""``openplatform demo`` run again on the same database reuses what it seeded (issue 13 item 1):
the same SPE, customer, app (and secret), installation and accounts — passwords and the SPE admin's
SPE untouched — and refuses a busy port before anything else. Real processes: test_demo_twice.py."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
from typing import Any

import pytest

from openplatform import events
from openplatform.config import Settings
from openplatform.demo import port_problem, seed_and_describe
from openplatform.records import AuditFilter, CustomerFilter
from openplatform.runtime import build_admin
from openplatform.services.accounts import build_accounts
from tests.conftest import cli_env

# A second run of the demo finds what an earlier one (another process) seeded in the database:
# memory:// keeps nothing from one process to the next.
pytestmark = pytest.mark.sql


async def counts(settings: Settings) -> dict[str, Any]:
    """What the database holds: SPEs, customers, apps, active installations, accounts."""
    admin = build_admin(settings)
    try:
        spes = await admin.db.list_spes()
        directory = admin.stores.directory
        customers = [c for spe in spes for c in (await directory.list_customers(CustomerFilter(spe.xspe), 100, 0))[0]]
        installations = [i for i in await admin.db.list_installations() if i.uninstalled_at is None]
        users = await build_accounts(admin.stores, admin.keyring).store.list_users()
        return {"spes": len(spes), "customers": len(customers), "apps": len(await admin.db.list_apps()),
                "installations": len(installations), "users": {u.email: (u.role, u.xspe) for u in users}}  # fmt: skip
    finally:
        await admin.db.close()


async def can_sign_in(settings: Settings, email: str, password: str) -> bool:
    admin = build_admin(settings)
    try:
        await build_accounts(admin.stores, admin.keyring).sign_in(email, password)
        return True
    finally:
        await admin.db.close()


async def test_a_second_run_reuses_everything_and_keeps_the_passwords(settings: Settings) -> None:
    first, first_guide = await seed_and_describe(settings, "127.0.0.1", 8000)
    before = await counts(settings)
    second, guide = await seed_and_describe(settings, "127.0.0.1", 8001)

    assert await counts(settings) == before == {
        "spes": 1, "customers": 1, "apps": 1, "installations": 1,
        "users": {"admin@example.com": ("admin", None), "developer@example.com": ("developer", None),
                  "spe-admin@example.com": ("spe-admin", first["xspe"])},
    }  # fmt: skip
    same = ("xspe", "customer_id", "app_id", "secret", "redirect_uri", "app_url")
    assert {k: second[k] for k in same} == {k: first[k] for k in same}
    assert (first["reused"], second["reused"]) == (False, True)
    assert second["base_url"] == "http://127.0.0.1:8001"

    # The first run's passwords still work; the second shows none and says how to set one.
    for account in first["accounts"]:  # type: ignore[attr-defined]
        assert account["password"] and await can_sign_in(settings, account["email"], account["password"])
        assert account["password"] not in guide
    assert all(a["password"] is None for a in second["accounts"])  # type: ignore[attr-defined]
    assert guide.count("(password unchanged)") == 3
    assert "user set-password --email admin@example.com --password-stdin" in guide
    assert "reusing what an earlier run seeded" in guide and "seeded; serving" in first_guide


async def test_another_partner_port_gets_its_own_app_and_the_first_stays(settings: Settings) -> None:
    first, _ = await seed_and_describe(settings, "127.0.0.1", 8000)
    other, guide = await seed_and_describe(settings, "127.0.0.1", 8000, "http://localhost:9100")
    again, _ = await seed_and_describe(settings, "127.0.0.1", 8000, "http://localhost:9100/")

    assert other["app_id"] != first["app_id"] and other["redirect_uri"] == "http://localhost:9100/callback"
    assert (other["xspe"], other["customer_id"]) == (first["xspe"], first["customer_id"])
    assert (again["app_id"], again["secret"]) == (other["app_id"], other["secret"])
    assert "PORT=9100 " in guide
    admin = build_admin(settings)
    try:
        installed = {i.app_id for i in await admin.db.list_installations(xspe=str(first["xspe"]))}
        first_app = await admin.db.get_app(str(first["app_id"]))
        other_app = await admin.db.get_app(str(other["app_id"]))
    finally:
        await admin.db.close()
    assert installed == {first["app_id"], other["app_id"]}
    assert first_app is not None and first_app.host_url == "http://localhost:9000/"  # untouched
    # Two apps called "Demo App" cannot be told apart in the console, the portal or the admin's list:
    # the one at another entrance says which.
    assert first_app.name == "Demo App" and other_app is not None and other_app.name == "Demo App (localhost:9100)"
    assert "(owns Demo App (localhost:9100): its APP_ID is in the console)" in guide


async def test_the_spe_admin_is_not_moved_and_what_was_changed_is_said(settings: Settings) -> None:
    first, _ = await seed_and_describe(settings, "127.0.0.1", 8000)
    admin = build_admin(settings)
    try:
        await admin.create_spe("Demo SPE")  # a second SPE of that name (an older demo made one per run)
        await admin.set_status(str(first["app_id"]), "suspended")
    finally:
        await admin.db.close()

    second, guide = await seed_and_describe(settings, "127.0.0.1", 8000)
    assert second["xspe"] == first["xspe"]  # the SPE its SPE admin administers
    assert (await counts(settings))["users"]["spe-admin@example.com"] == ("spe-admin", first["xspe"])
    resume = next(line for line in guide.splitlines() if "Demo App is suspended; resume it: " in line)
    # The printed command works in a new shell, where the virtualenv's bin folder is not on the PATH.
    command = resume.split("resume it: ", 1)[1]
    assert command.endswith(f"openplatform app resume --app-id {first['app_id']}")
    env = {**cli_env(settings), "PATH": "/usr/bin:/bin"}
    done = await asyncio.to_thread(
        subprocess.run, ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "active"


def test_a_busy_port_is_named_in_one_sentence() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        problem = port_problem("127.0.0.1", port)
        assert problem is not None and problem.startswith(f"port {port} is already in use on 127.0.0.1")
        assert "--port" in problem and "\n" not in problem
    assert port_problem("127.0.0.1", port) is None  # free again
    assert "cannot listen on 192.0.2.1" in (port_problem("192.0.2.1", port) or "")  # not this machine's address


async def test_the_demo_app_gets_the_example_apps_webhook_once(settings: Settings) -> None:
    """The Demo App's webhook_url is the example app's receiver (issue 13): made so, given to an app an
    earlier version made without one (audited once, on a second run nothing changes), never to one whose
    webhook_url someone set. On localhost only with the demo's OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS=allow."""
    refusing = settings  # the default: webhooks only to public addresses (SPEC §9)
    earlier, guide = await seed_and_describe(refusing, "127.0.0.1", 8000)
    assert earlier["webhook_url"] is None
    assert "Demo App has no webhook_url: The host is a loopback name" in guide

    demo = settings.model_copy(update={"webhook_private_networks": "allow"})  # as `openplatform demo` runs
    first, guide = await seed_and_describe(demo, "127.0.0.1", 8000)
    second, _ = await seed_and_describe(demo, "127.0.0.1", 8000)
    assert first["app_id"] == second["app_id"] == earlier["app_id"]
    assert first["webhook_url"] == second["webhook_url"] == "http://localhost:9000/webhook"
    assert "Demo App sends its install/uninstall notifications to http://localhost:9000/webhook" in guide
    other, _ = await seed_and_describe(demo, "127.0.0.1", 8000, "http://localhost:9100")
    assert other["webhook_url"] == "http://localhost:9100/webhook"

    admin = build_admin(demo)
    try:
        app = await admin.db.get_app(str(first["app_id"]))
        audited, _total = await admin.db.audit_page(AuditFilter(str(first["app_id"]), event=events.APP_UPDATED), 50, 0)
        updates = [e["detail"] for e in audited]
        await admin.stores.console.update_app(str(first["app_id"]), webhook_url="https://hooks.example.com/in")
    finally:
        await admin.db.close()
    assert app is not None and app.webhook_url == "http://localhost:9000/webhook"
    assert [e.get("fields") for e in updates] == [["webhook_url"]]  # the first run with allow only

    kept, _ = await seed_and_describe(demo, "127.0.0.1", 8000)
    assert kept["webhook_url"] == "https://hooks.example.com/in"
