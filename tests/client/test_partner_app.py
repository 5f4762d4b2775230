"""The example third-party app (examples/partner_app) run as its README says, as a process
next to a real ``openplatform serve``, driven like a browser over real HTTP: signed launch →
/oauth/connect → callback → the customer's sites (user token) → the SPE page (app token) →
uninstall webhook → re-authorisation refused by the platform."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from openplatform.client import AppClient
from openplatform.client.signing import sign_launch
from openplatform.config import Settings
from openplatform.records import AuditFilter
from openplatform.runtime import build_admin
from tests.client.conftest import ALL_SCOPES
from tests.conftest import cli_env, free_port, run_cli

# `openplatform serve`, the example app and the CLI are processes sharing one database: memory:// lives in one.
pytestmark = pytest.mark.sql

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
README = EXAMPLES / "partner_app" / "README.md"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The example app's webhook receiver is on localhost: lift SPEC §9's refusal, as a developer would."""
    return {"webhook_private_networks": "allow"}


@dataclass(frozen=True)
class Registered:
    app_id: str
    secret: str
    xspe: str
    customer_id: str
    app_url: str


def readme_webhook_commands(settings: Settings, app_url: str, **values: str) -> list[dict[str, Any]]:
    """The README's "To see the webhooks" block (``export …``, ``app create …``, ``install …``), run as written
    by bash from the repository root in a new shell (no virtualenv on the PATH), on the test's database and
    with the app on ``app_url``; ``values`` fill the placeholders (``app_id=…`` fills ``<app_id>``). Each
    command's JSON answer."""
    text = README.read_text().replace("\\\n", " ")
    block = text.split("    export OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS=allow\n", 1)[1].split("\n\n", 1)[0]
    answers = []
    env = {**cli_env(settings), "PATH": "/usr/bin:/bin"}
    for line in block.splitlines():
        command = line.split("#")[0].strip().replace("http://localhost:9000", app_url)
        if "<app_id>" in command and "app_id" not in values:
            continue  # the install: run once the app exists
        for name, value in values.items():
            command = command.replace(f"<{name}>", value)
        done = subprocess.run(["bash", "-c", f"export OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS=allow && {command}"],
                              cwd=EXAMPLES.parent, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
        answers.append(json.loads(done.stdout))
    return answers


@pytest.fixture
def registered(settings: Settings, live_server: str) -> Registered:
    """The developer of ``openplatform demo`` registers the app with the README's command (SPEC §5); the entrance
    is on a free port."""
    made = subprocess.run(
        [sys.executable, "-m", "openplatform.cli", "user", "create", "--email", "developer@example.com",
         "--role", "developer", "--password-stdin"],
        input="a developer's passphrase\n", env=cli_env(settings), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    app_url = f"http://localhost:{free_port()}"
    xspe, customer_id = asyncio.run(spe_with_customer(settings))
    [app] = readme_webhook_commands(settings, app_url, xspe=xspe)
    assert set(app["scopes"]) <= set(ALL_SCOPES) and app["host_url"] == f"{app_url}/"
    return Registered(app["app_id"], app["secret"], xspe, customer_id, app_url)


async def spe_with_customer(settings: Settings) -> tuple[str, str]:
    """The SPE and its customer, through the services the CLI runs (one CLI call costs a second)."""
    admin = build_admin(settings)
    try:
        spe = await admin.create_spe("Partner SPE")
        return spe.xspe, (await admin.create_customer(spe.xspe, "Ada", "ada@example.com")).customer_id
    finally:
        await admin.db.close()


def readme_command(registered: Registered, live_server: str, ending: str) -> str:
    """The README's ``cd examples && … ending`` line, with the values it tells the reader to fill in
    (and ``PORT``, which its settings table documents: the test's app is on a free port)."""
    commands = [line.split("#")[0].strip() for line in README.read_text().splitlines()]
    lines = [line for line in commands if line.startswith("cd examples && ") and line.endswith(ending)]
    assert len(lines) == 1, lines
    port = registered.app_url.rsplit(":", 1)[1]
    filled = {"<APP_ID>": registered.app_id, "<Secret>": f"{registered.secret} PORT={port}",
              "OPENPLATFORM_URL=http://127.0.0.1:8000": f"OPENPLATFORM_URL={live_server}",
              "<xspe>": registered.xspe, "<customer_id>": registered.customer_id}  # fmt: skip
    line = lines[0]
    for placeholder, value in filled.items():
        line = line.replace(placeholder, value)
    return line


def new_shell(tmp_path: Path) -> dict[str, str]:
    """A new shell's environment: no virtualenv on the PATH, nothing of the test run."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}


@pytest.fixture
def partner_app(registered: Registered, live_server: str, tmp_path: Path) -> Iterator[str]:
    """The README's ``cd examples && APP_ID=… APP_SECRET=… OPENPLATFORM_URL=… ../.venv/bin/python -m partner_app``,
    run by bash from the repository root in a new shell."""
    line = readme_command(registered, live_server, " -m partner_app")
    port = registered.app_url.rsplit(":", 1)[1]
    log = (tmp_path / "partner_app.log").open("w")
    process = subprocess.Popen(["bash", "-c", line], cwd=EXAMPLES.parent, env=new_shell(tmp_path), stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.time() + 30
        while time.time() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError((tmp_path / "partner_app.log").read_text())
        yield registered.app_url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the shell's own process group: bash and the app it started
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def launch_url(registered: Registered, customer_id: str | None) -> str:
    query = httpx.QueryParams(sign_launch(registered.secret, registered.app_id, registered.xspe, customer_id))
    return f"{registered.app_url}/?{query}"


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def delivered_webhooks(settings: Settings, app_id: str, count: int) -> int:
    admin = build_admin(settings)
    try:
        for _ in range(100):
            events, _total = await admin.db.audit_page(AuditFilter(app_id, event="webhook.delivered"), 200, 0)
            if len(events) >= count:
                break
            await asyncio.sleep(0.1)
        return len(events)
    finally:
        await admin.db.close()


def test_partner_app_journey(
    settings: Settings, live_server: str, registered: Registered, partner_app: str, tmp_path: Path
) -> None:
    readme_webhook_commands(settings, registered.app_url, app_id=registered.app_id, xspe=registered.xspe)
    # --owner puts the app in the console of the demo's developer, whose app page lists the deliveries.
    listed = json.loads(run_cli(settings, "app", "list", "--owner", "developer@example.com").stdout)["items"]
    assert registered.app_id in [app["app_id"] for app in listed]
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        customer_journey(settings, live_server, registered, partner_app, browser)
    # The README's promise: the app's terminal shows each notification it verified.
    shown = (tmp_path / "partner_app.log").read_text()
    for kind, type_ in (("install", 1), ("uninstall", 2)):
        line = f"INFO:     partner_app: webhook: {kind} (type {type_}) for the whole SPE {registered.xspe}, event "
        assert line in shown, shown
    readme = README.read_text()
    assert "INFO:     partner_app: webhook: install (type 1) for the whole SPE spe_…, event …" in readme


def customer_journey(
    settings: Settings, live_server: str, registered: Registered, partner_app: str, browser: httpx.Client
) -> None:

    # The SPE admin opens the app for a customer: entrance → connect → callback → sites.
    page = browser.get(launch_url(registered, registered.customer_id))
    hops = [(r.url.host, r.url.path) for r in page.history]
    server_host = httpx.URL(live_server).host
    assert hops == [("localhost", "/"), (server_host, "/oauth/connect"), ("localhost", "/callback")]
    assert page.status_code == 200 and page.url.path == "/sites"
    assert "Ada" in page.text and registered.customer_id in page.text

    # Add a site through the form; it is really at the platform.
    added = browser.post(f"{partner_app}/sites", data={"csrf": csrf_of(page.text), "name": "Shop",
                                                       "domain": "shop.ada.example"})  # fmt: skip
    assert added.status_code == 200 and "shop.ada.example" in added.text
    with AppClient(registered.app_id, registered.secret, live_server) as sdk:
        assert [s.domain for s in sdk.sites.list(registered.customer_id).items] == ["shop.ada.example"]
    refused = browser.post(f"{partner_app}/sites", data={"csrf": csrf_of(page.text), "name": "Bad",
                                                         "domain": "http://bad/"})  # fmt: skip
    assert refused.status_code == 400 and "domain:" in refused.text
    forged = browser.post(f"{partner_app}/sites", data={"csrf": "guess", "name": "X", "domain": "x.example"})
    assert forged.status_code == 403
    assert browser.get(f"{partner_app}/spe").status_code == 401  # a customer session is not an SPE one

    # A tampered launch is refused, and so is a callback without the state cookie.
    tampered = launch_url(registered, registered.customer_id).replace("customer_id=cus_", "customer_id=cus_0")
    assert browser.get(tampered).status_code == 403
    assert httpx.get(f"{partner_app}/callback?code=abc&state=xyz", timeout=10).status_code == 400

    # The SPE admin, in their own browser, opens the app for the whole SPE: the app token lists the customers.
    spe_page = httpx.get(launch_url(registered, None), follow_redirects=True, timeout=10)
    assert spe_page.url.path == "/spe" and "Ada" in spe_page.text
    assert "opened for the whole SPE, not for one customer" in spe_page.text  # it says why there is no customer

    # Uninstall: the platform revokes the tokens and notifies the app (signed webhook);
    # the app forgets them, and connecting again is refused by the platform.
    run_cli(settings, "uninstall", "--app-id", registered.app_id, "--xspe", registered.xspe)
    assert asyncio.run(delivered_webhooks(settings, registered.app_id, 2)) == 2  # install + uninstall
    again = browser.get(f"{partner_app}/sites")
    assert [r.url.path for r in again.history] == ["/sites", "/oauth/connect"]
    assert again.url.path == "/callback" and again.status_code == 403
    assert "not installed" in again.text


@pytest.mark.parametrize(("ending", "page"), [("<customer_id>", "/sites"), ("--xspe <xspe>", "/spe")])
def test_the_readme_launch_commands(
    settings: Settings, live_server: str, registered: Registered, partner_app: str, tmp_path: Path, ending: str,
    page: str,
) -> None:  # fmt: skip
    run_cli(settings, "install", "--app-id", registered.app_id, "--xspe", registered.xspe)
    line = readme_command(registered, live_server, ending.replace("<customer_id>", "--customer-id <customer_id>"))
    printed = subprocess.run(["bash", "-c", line], cwd=EXAMPLES.parent, env=new_shell(tmp_path),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith(f"{partner_app}/?")
    opened = httpx.get(printed.stdout.strip(), follow_redirects=True, timeout=10)
    assert opened.status_code == 200 and opened.url.path == page and "Ada" in opened.text
