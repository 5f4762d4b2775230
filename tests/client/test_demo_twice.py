"""``openplatform demo`` run twice in a row in one folder, as real processes (issue 13 item 1): a
second run on the busy port stops at once with exit status 6 and one sentence, touching nothing; a
second run on another port reuses what the first seeded; both keep working as they printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.client.demo_support import (
    NEW_SHELL_PATH,
    app_token_works,
    demo_command,
    demo_env,
    signs_in,
    start_demo,
    stop,
)
from tests.conftest import free_port


def spe_count(folder: Path) -> int:
    listed = subprocess.run(
        [sys.executable, "-m", "openplatform.cli", "spe", "list"],
        cwd=folder,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    return len(json.loads(listed.stdout)["items"])


def test_demo_twice_in_one_folder(tmp_path: Path) -> None:
    port, partner = free_port(), free_port()
    first = start_demo(tmp_path, "--port", str(port), "--partner-port", str(partner))
    try:
        facts, base = first.facts, first.base
        accounts = {a["role"]: a for a in facts["accounts"]}
        assert facts["reused"] is False and facts["app_url"] == f"http://localhost:{partner}"
        assert f" PORT={partner} " in first.guide  # the example apps' commands follow --partner-port

        # The same port again: refused before the database is touched, in one sentence, with status 6.
        busy = subprocess.run(demo_command("--port", str(port)), cwd=tmp_path, env=demo_env(),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert (busy.returncode, busy.stdout) == (6, "")
        assert busy.stderr.splitlines() == [
            f"error: port {port} is already in use on 127.0.0.1 (another `openplatform demo` or server?): "
            "stop it, or choose another port with --port"
        ]
        assert spe_count(tmp_path) == 1
        empty = tmp_path / "elsewhere"
        empty.mkdir()
        elsewhere = subprocess.run(demo_command("--port", str(port)), cwd=empty, env=demo_env(),
                                   capture_output=True, text=True, timeout=60)  # fmt: skip
        assert elsewhere.returncode == 6 and list(empty.iterdir()) == []  # no database, no key file made
        assert signs_in(base, "admin@example.com", accounts["admin"]["password"])
        assert app_token_works(base, facts["app_id"], facts["secret"])

        # Another port, the same folder: everything reused, the passwords kept.
        other = start_demo(tmp_path, "--port", str(free_port()), "--partner-port", str(partner))
        try:
            again = other.facts
            for key in ("xspe", "customer_id", "app_id", "secret", "redirect_uri"):
                assert again[key] == facts[key], key
            assert again["reused"] is True and spe_count(tmp_path) == 1
            assert [a["password"] for a in again["accounts"]] == [None, None, None]
            for role, account in accounts.items():
                assert signs_in(base, account["email"], account["password"]), role
                assert signs_in(other.base, account["email"], account["password"]), role
            assert app_token_works(other.base, again["app_id"], again["secret"])

            # The reset the second run prints, run as printed in a new shell in this folder.
            reset = other.line("user set-password")
            done = subprocess.run(["bash", "-c", reset], cwd=tmp_path, input="a brand new demo passphrase\n",
                                  env={"PATH": NEW_SHELL_PATH, "HOME": str(tmp_path)},
                                  capture_output=True, text=True, timeout=60)  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["email"] == "admin@example.com"
            assert signs_in(base, "admin@example.com", "a brand new demo passphrase")  # the first demo sees it
            assert not signs_in(base, "admin@example.com", accounts["admin"]["password"])
        finally:
            stop(other.process)
        assert first.process.poll() is None  # the first still serves
        assert signs_in(base, "developer@example.com", accounts["developer"]["password"])
    finally:
        stop(first.process)

    # After the first stopped, its port is free again, and another partner port gets its own app.
    moved = start_demo(tmp_path, "--port", str(port), "--partner-port", str(free_port()))
    try:
        assert moved.facts["xspe"] == facts["xspe"] and moved.facts["app_id"] != facts["app_id"]
        assert app_token_works(moved.base, moved.facts["app_id"], moved.facts["secret"])
        assert app_token_works(moved.base, facts["app_id"], facts["secret"])  # the first run's app is still there
        assert signs_in(moved.base, "developer@example.com", accounts["developer"]["password"])
    finally:
        stop(moved.process)


def test_partner_port_and_app_url_are_one_choice(tmp_path: Path) -> None:
    both = subprocess.run(
        demo_command("--port", str(free_port()), "--partner-port", "9100", "--app-url", "http://localhost:9100"),
        cwd=tmp_path, env=demo_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (both.returncode, both.stderr) == (2, "error: give --partner-port or --app-url, not both\n")
    assert list(tmp_path.iterdir()) == []  # no database, no key file
