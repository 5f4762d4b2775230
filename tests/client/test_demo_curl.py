"""The curl walk-through, run exactly as printed (issue 13 item 2): the commands ``openplatform demo``
prints, and the README's "documented flow with curl", each run by bash with the real ``curl``
against the real demo server, with only the values the text tells the reader to paste (CODE,
REFRESH_TOKEN, ACCESS_TOKEN, APP_TOKEN; the README's ``$B`` and the printed identifiers) — and each
answers as the text says."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.demo_support import NEW_SHELL_PATH, Demo, start_demo, stop
from tests.conftest import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """The demo as the README starts it (the example app's default port: the README's redirect_uri)."""
    running = start_demo(tmp_path_factory.mktemp("demo"), "--port", str(free_port()))
    try:
        yield running
    finally:
        stop(running.process)


def run(command: str, paste: dict[str, str], variables: dict[str, str] | None = None) -> str:
    """One printed command line, the reader's pastes in place, run by bash (pipes and quotes as printed)."""
    assert shutil.which("curl") == "/usr/bin/curl"
    for placeholder, value in paste.items():
        command = re.sub(rf"\b{placeholder}\b", value, command)
    done = subprocess.run(["bash", "-c", command], env={"PATH": NEW_SHELL_PATH, **(variables or {})},
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


def answer(command: str, paste: dict[str, str], variables: dict[str, str] | None = None) -> Any:
    return json.loads(run(command, paste, variables))


def printed_steps(guide: str) -> dict[int, list[str]]:
    """The curl lines under each numbered step of the demo's guide."""
    steps: dict[int, list[str]] = {}
    step = 0
    for line in guide.splitlines():
        numbered = re.match(r"(\d)\. ", line)
        if numbered:
            step = int(numbered.group(1))
        elif line.strip().startswith("curl ") and step:
            steps.setdefault(step, []).append(line.strip())
    return steps


def readme_steps() -> dict[int, list[str]]:
    text = README.read_text()
    section = text[text.index("## The documented flow with curl") :]
    return printed_steps(section[: section.index("\n## ", 10)])


def walk(steps: dict[int, list[str]], variables: dict[str, str] | None, customer_id: str) -> None:
    """Steps 1 to 5, each checked against what the text says it answers."""
    assert sorted(steps) == [1, 2, 3, 4, 5] and [len(steps[n]) for n in range(1, 6)] == [1, 1, 1, 1, 2]

    # 1. An immediate redirect to the callback, with a code and the state.
    location = run(steps[1][0], {}, variables).strip()
    found = re.fullmatch(r"location: http://localhost:9000/callback\?code=([\w-]+)&state=xyz", location, re.I)
    assert found, location
    code = found.group(1)

    # 2. The code for a user token (install_login) and a refresh token.
    user = answer(steps[2][0], {"CODE": code}, variables)
    assert (user["code"], user["result"]["scope"], user["result"]["expires_in"]) == (0, "install_login", 7200)

    # 3. The refresh token rotates.
    rotated = answer(steps[3][0], {"REFRESH_TOKEN": user["result"]["refresh_token"]}, variables)
    assert rotated["code"] == 0 and rotated["result"]["refresh_token"] != user["result"]["refresh_token"]

    # 4. An app token.
    app = answer(steps[4][0], {}, variables)
    assert (app["code"], app["result"]["expires_in"]) == (0, 7200)
    app_token, user_token = app["result"]["access_token"], user["result"]["access_token"]

    # 5. The customer with either token (the user token of step 2, the app token of step 4) ...
    one, many = steps[5]
    for token in (user_token, rotated["result"]["access_token"], app_token):
        customer = answer(one, {"ACCESS_TOKEN": token}, variables)
        assert (customer["code"], customer["result"]["customer_id"]) == (0, customer_id)
    # ... and the SPE's customers with the app token; a user token is told it needs one.
    listed = answer(many, {"APP_TOKEN": app_token}, variables)
    assert listed["code"] == 0 and [c["customer_id"] for c in listed["result"]["items"]] == [customer_id]
    refused = answer(many, {"APP_TOKEN": user_token}, variables)
    assert (refused["code"], refused["error"]) == (40301, "access_denied") and "app token" in refused["msg"]


def test_the_demo_prints_commands_that_work_as_printed(demo: Demo) -> None:
    steps = printed_steps(demo.guide)
    assert "with the app token of step 4 only (paste it for APP_TOKEN)" in demo.guide
    walk(steps, None, demo.facts["customer_id"])


def test_the_readme_flow_works_as_written(demo: Demo) -> None:
    facts = demo.facts
    variables = {"B": demo.base, "APP_ID": facts["app_id"], "SECRET": facts["secret"], "XSPE": facts["xspe"],
                 "CUSTOMER_ID": facts["customer_id"]}  # fmt: skip
    walk(readme_steps(), variables, facts["customer_id"])
