"""The Python example (examples/partner_app) run exactly as its README says, next to ``openplatform
demo``: the demo on free ports (``--port``, ``--partner-port``), the example with the very line the
demo prints, run by bash in a new shell (no virtualenv on the PATH, another folder), and a browser
over real HTTP: the SPE admin signs in to the portal and clicks "Open app" (a real signed launch) →
the app's entrance → /oauth/connect → /callback (code exchange) → the customer's sites (Open API,
user token) → the SPE-wide launch → the SPE's customers (app token).

The Node.js example gets the same journey in examples/partner_app_node/test (``npm test`` there,
run by .ci/run).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.client.demo_support import NEW_SHELL_PATH, Demo, Output, csrf_in, start_demo, stop
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """``openplatform demo --partner-port P`` in an empty folder (its SQLite file and server key go there)."""
    running = start_demo(tmp_path, "--port", str(free_port()), "--partner-port", str(free_port()))
    try:
        yield running
    finally:
        stop(running.process)


def in_a_new_shell(line: str, folder: Path) -> subprocess.Popen[str]:
    """Run a printed command line exactly as printed, by bash, in a new shell: another working directory,
    and an environment without the virtualenv or anything of the test run (issue 13 item 5)."""
    return subprocess.Popen(
        ["bash", "-c", line], cwd=folder, env={"PATH": NEW_SHELL_PATH, "HOME": str(folder)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip


def stop_shell(process: subprocess.Popen[str]) -> None:
    """Stop the shell this test started and what it runs (its own process group, by the shell's PID)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    stop(process)


@pytest.fixture
def python_example_run(demo: Demo, tmp_path: Path) -> Iterator[tuple[str, Output]]:
    """The example app started with the very line the demo printed, in a new shell: its URL and output."""
    line = python_line(demo)
    assert line.startswith(f"cd {REPO / 'examples'} && ") and line.endswith(" -m partner_app")
    assert line.count("PORT=") == 1 and f"PORT={demo.facts['app_url'].rsplit(':', 1)[1]} " in line
    process = in_a_new_shell(line, tmp_path)
    output = Output(process)
    try:
        output.wait_for("Uvicorn running", process)
        entrance = httpx.get(f"{demo.facts['app_url']}/", timeout=10)
        assert entrance.status_code == 200 and "Open this app from your SPE admin portal." in entrance.text
        yield str(demo.facts["app_url"]), output
    finally:
        stop_shell(process)


@pytest.fixture
def python_example(python_example_run: tuple[str, Output]) -> str:
    """The example app's URL (started as the demo printed)."""
    return python_example_run[0]


def python_line(demo: Demo) -> str:
    """The printed command that starts the Python example (not its launch helper)."""
    found = [line.strip() for line in demo.guide.splitlines() if line.rstrip().endswith(" -m partner_app")]
    assert len(found) == 1, found
    return found[0]


def open_app(portal: httpx.Client, base: str, app_id: str, customer_id: str) -> str:
    """The SPE admin portal's "Open app": 303 to the app's host_url with the signed launch."""
    home = portal.get(f"{base}/portal")
    answer = portal.post(f"{base}/portal/launch", data={"csrf_token": csrf_in(home.text, "csrf_token"),
                                                        "app_id": app_id, "customer_id": customer_id})  # fmt: skip
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def test_python_example_against_the_demo(demo: Demo, python_example: str) -> None:
    facts, base = demo.facts, demo.facts["base_url"]
    admin = next(a for a in facts["accounts"] if a["role"] == "spe-admin")
    with httpx.Client(timeout=10) as portal, httpx.Client(timeout=10, follow_redirects=True) as browser:
        form = portal.get(f"{base}/login")
        signed_in = portal.post(
            f"{base}/login",
            data={
                "csrf_token": csrf_in(form.text, "csrf_token"),
                "email": admin["email"],
                "password": admin["password"],
            },
        )
        assert signed_in.status_code == 303, signed_in.text

        launch = open_app(portal, base, facts["app_id"], facts["customer_id"])
        assert launch.startswith(f"{python_example}/?")
        page = browser.get(launch)
        hops = [(r.url.host, r.url.path) for r in [*page.history, page]]
        server = httpx.URL(base).host
        app = "localhost"
        assert hops == [(app, "/"), (server, "/oauth/connect"), (app, "/callback"), (app, "/sites")]
        assert page.status_code == 200 and "<b>Demo Customer</b>" in page.text and facts["customer_id"] in page.text

        added = browser.post(f"{python_example}/sites", data={"csrf": csrf_in(page.text, "csrf"), "name": "Shop",
                                                             "domain": "shop.demo.example"})  # fmt: skip
        assert added.status_code == 200 and "shop.demo.example" in added.text

        spe = httpx.get(open_app(portal, base, facts["app_id"], ""), follow_redirects=True, timeout=10)
        assert spe.url.path == "/spe" and "Demo Customer" in spe.text
        assert "opened for the whole SPE, not for one customer" in spe.text  # it says why there is no customer


def test_the_printed_launch_command_signs_a_launch_the_example_takes(
    demo: Demo, python_example: str, tmp_path: Path
) -> None:
    line = demo.line(" -m partner_app.launch ")
    assert line.startswith(f"cd {REPO / 'examples'} && ") and line.count("PORT=") == 1
    printed = subprocess.run(["bash", "-c", line], cwd=tmp_path, env={"PATH": NEW_SHELL_PATH, "HOME": str(tmp_path)},
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    url = printed.stdout.strip()
    assert url.startswith(f"{python_example}/?")
    page = httpx.get(url, follow_redirects=True, timeout=10)
    assert page.status_code == 200 and page.url.path == "/sites" and "<b>Demo Customer</b>" in page.text


def test_the_demo_apps_webhooks_reach_the_example(demo: Demo, python_example_run: tuple[str, Output]) -> None:
    """The Demo App's webhook_url is the example's receiver (issue 13): the demo's own install is in the
    console's Webhook deliveries from the start, and Send again brings it to the example, which verifies
    the signature (an unverified one is refused and never logged) and logs it."""
    url, output = python_example_run
    facts, base = demo.facts, demo.base
    assert facts["webhook_url"] == f"{url}/webhook"
    assert f"sends its install/uninstall notifications to {url}/webhook" in demo.guide
    developer = next(a for a in facts["accounts"] if a["role"] == "developer")
    line = "webhook: install (type 1) for the whole SPE"
    with httpx.Client(timeout=10) as console:
        form = console.get(f"{base}/login")
        signed_in = console.post(f"{base}/login", data={"csrf_token": csrf_in(form.text), "email": developer["email"],
                                                        "password": developer["password"]})  # fmt: skip
        assert signed_in.status_code == 303, signed_in.text
        app_page = f"{base}/console/apps/{facts['app_id']}"
        page = console.get(app_page)
        rows = re.findall(r'<tr id="delivery-(\d+)">(.*?)</tr>', page.text, re.S)
        assert len(rows) == 1 and "Install — the whole SPE" in rows[0][1], page.text
        before = output.text.count(line)
        sent = console.post(f"{app_page}/webhooks/{rows[0][0]}/resend", data={"csrf_token": csrf_in(page.text)})
        assert sent.status_code == 303, sent.text
        deadline = time.monotonic() + 60
        while output.text.count(line) <= before:
            assert time.monotonic() < deadline, output.text
            time.sleep(0.1)
        assert f"{facts['xspe']}, event " in output.text
        while "delivered" not in re.findall(r'<tr id="delivery-\d+">(.*?)</tr>', console.get(app_page).text, re.S)[0]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
