"""The Python example (examples/partner_app) run exactly as its README says, next to ``openplatform
demo``: the demo on free ports (``--port``, ``--app-url``), the example with the command the demo
prints, and a browser over real HTTP: the SPE admin signs in to the portal and clicks "Open app"
(a real signed launch) → the app's entrance → /oauth/connect → /callback (code exchange) → the
customer's sites (Open API, user token) → the SPE-wide launch → the SPE's customers (app token).

The Node.js example gets the same journey in examples/partner_app_node/test (``npm test`` there,
run by .ci/run).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


class Output:
    """What a process prints, collected by a thread (stdout and stderr merged)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.text = ""
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.text += line

    def wait_for(self, needle: str, process: subprocess.Popen[str], seconds: float = 60) -> None:
        deadline = time.time() + seconds
        while needle not in self.text:
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{needle!r} never printed:\n{self.text}")
            time.sleep(0.05)


@dataclass
class Demo:
    facts: dict[str, Any]
    guide: str
    app_url: str


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """``openplatform demo`` in an empty folder (its SQLite file and server key go there)."""
    app_url = f"http://localhost:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPLATFORM_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "openplatform.cli", "demo", "--port", str(free_port()), "--app-url", app_url],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(process)
    try:
        output.wait_for("Uvicorn running", process)
        facts = json.loads(output.text.splitlines()[0])
        yield Demo(facts, output.text, app_url)
    finally:
        stop(process)


def printed_command(guide: str, marker: str) -> tuple[str, dict[str, str], list[str]]:
    """The folder, variables and command of the example line the demo printed."""
    line = next(line for line in guide.splitlines() if marker in line)
    cd, rest = (part.strip() for part in line.split("&&", 1))
    words = shlex.split(rest)
    env = dict(word.split("=", 1) for word in words if re.fullmatch(r"[A-Z_]+=\S*", word))
    return cd.removeprefix("cd ").strip(), env, [w for w in words if w not in {f"{k}={v}" for k, v in env.items()}]


@pytest.fixture
def python_example(demo: Demo, tmp_path: Path) -> Iterator[str]:
    folder, env, command = printed_command(demo.guide, "python -m partner_app")
    assert folder == "examples" and command == ["python", "-m", "partner_app"]
    assert set(env) == {"APP_ID", "APP_SECRET", "OPENPLATFORM_URL", "PORT"}
    process = subprocess.Popen(
        [sys.executable, "-m", "partner_app"], cwd=REPO / folder, env={**env, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output = Output(process)
    try:
        output.wait_for("Uvicorn running", process)
        yield demo.app_url
    finally:
        stop(process)


def csrf_in(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, html[:400]
    return found.group(1)


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
        signed_in = portal.post(f"{base}/login", data={"csrf_token": csrf_in(form.text, "csrf_token"),
                                                       "email": admin["email"], "password": admin["password"]})
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
