"""Running ``openplatform demo`` as a real process, as a reader would, for the tests of what it prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# A new shell: no virtualenv on the PATH, nothing of the test run's environment.
NEW_SHELL_PATH = "/usr/bin:/bin"


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


def stop(process: subprocess.Popen[str]) -> None:
    """Stop a process this test started, by its PID (SIGTERM, then SIGKILL after 10 s)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def demo_env() -> dict[str, str]:
    """The test run's environment without any OPENPLATFORM_ setting: the demo's defaults (SQLite in its folder)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENPLATFORM_")}


def demo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "openplatform.cli", "demo", *args]


@dataclass
class Demo:
    """A running demo: the facts it printed on stdout (one JSON object) and everything it printed."""

    process: subprocess.Popen[str]
    output: Output
    facts: dict[str, Any]

    @property
    def guide(self) -> str:
        return self.output.text

    @property
    def base(self) -> str:
        return str(self.facts["base_url"])

    def line(self, marker: str) -> str:
        """The one printed line that holds ``marker``, without its indentation."""
        found = [line.strip() for line in self.guide.splitlines() if marker in line]
        assert len(found) == 1, (marker, found)
        return found[0]


def start_demo(folder: Path, *args: str) -> Demo:
    """``openplatform demo ARGS`` in ``folder`` (its SQLite file and server key live there), once serving."""
    process = subprocess.Popen(
        demo_command(*args), cwd=folder, env=demo_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = Output(process)
    try:
        output.wait_for("Uvicorn running", process)
    except BaseException:
        stop(process)
        raise
    return Demo(process, output, json.loads(output.text.splitlines()[0]))


def csrf_in(html: str, name: str = "csrf_token") -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, html[:400]
    return found.group(1)


def signs_in(base: str, email: str, password: str) -> bool:
    """Whether the screens' /login takes this account (303 to the home page)."""
    with httpx.Client(timeout=10) as browser:
        form = browser.get(f"{base}/login")
        answer = browser.post(f"{base}/login", data={"csrf_token": csrf_in(form.text), "email": email,
                                                     "password": password})  # fmt: skip
        return answer.status_code == 303


def app_token_works(base: str, app_id: str, secret: str) -> bool:
    """The printed APP_ID and Secret get an app token, and it lists the demo SPE's customers."""
    token = httpx.post(f"{base}/oauth/credit/token", timeout=10,
                       data={"app_id": app_id, "secret": secret, "grant_type": "client_credential"}).json()  # fmt: skip
    if token["code"] != 0:
        return False
    bearer = {"Authorization": f"Bearer {token['result']['access_token']}"}
    return bool(httpx.get(f"{base}/api/spe/customers", headers=bearer, timeout=10).json()["code"] == 0)
