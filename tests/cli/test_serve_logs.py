"""What `openplatform serve` writes on stderr (issue 13, item 8): text or JSON lines, and one
access line per request that never carries a token, a code, a secret or a query string.

Each test runs a real server process: on a pseudo-terminal (the default there is text with the
access line), on a file (the default there is JSON without it), and with
``OPENPLATFORM_LOG_FORMAT`` / ``OPENPLATFORM_ACCESS_LOG`` set. The requests carry real secrets in
the query, the body and the Authorization header; afterwards none of them is in the log.
"""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from openplatform.config import Settings
from tests.conftest import CALLBACK, World, cli_env, free_port, seed_world

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARNING|ERROR|CRITICAL) [a-z_.]+: .+$")
TEXT_ACCESS = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  openplatform\.access: "
    r"(?P<method>[A-Z]+) (?P<path>/\S*) (?P<status>\d{3}) (?P<ms>\d+\.\d) ms$"
)
JSON_KEYS = {"ts", "level", "logger", "msg"}
ACCESS_KEYS = JSON_KEYS | {"method", "path", "status", "ms"}


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite only: what is logged does not depend on the database."""
    target = tmp_path / "openplatform.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@dataclass
class Served:
    """A running `openplatform serve` whose stderr is collected in ``output``."""

    base: str
    process: subprocess.Popen[bytes]
    output: bytearray = field(default_factory=bytearray)
    reader: threading.Thread | None = None
    log_file: Path | None = None

    def stop(self) -> str:
        """Stop the server (by its PID) and return everything it wrote."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        if self.reader is not None:
            self.reader.join(timeout=5)
        if self.log_file is not None:
            return self.log_file.read_text()
        return self.output.decode().replace("\r\n", "\n")


def serve(settings: Settings, tmp_path: Path, *, terminal: bool, **env: str) -> Served:
    """Start `openplatform serve` on a free port, stderr on a pseudo-terminal or a file."""
    port = free_port()
    environment = {**cli_env(settings), **env}
    for name in ("OPENPLATFORM_LOG_FORMAT", "OPENPLATFORM_ACCESS_LOG"):
        if name not in env:
            environment.pop(name, None)
    command = [sys.executable, "-m", "openplatform.cli", "serve", "--port", str(port)]
    if terminal:
        main, other = pty.openpty()
        process = subprocess.Popen(command, env=environment, stdout=other, stderr=other, cwd=tmp_path)
        os.close(other)
        served = Served(f"http://127.0.0.1:{port}", process)

        def read() -> None:  # keep draining, or the server blocks on a full terminal
            while True:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the server has exited: the terminal is gone
                    break
                if not chunk:
                    break
                served.output.extend(chunk)
            os.close(main)

        served.reader = threading.Thread(target=read, daemon=True)
        served.reader.start()
    else:
        log_file = tmp_path / f"serve-{port}.log"
        with log_file.open("wb") as sink:
            process = subprocess.Popen(command, env=environment, stdout=sink, stderr=sink, cwd=tmp_path)
        served = Served(f"http://127.0.0.1:{port}", process, log_file=log_file)
    deadline = time.time() + 30
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(served.stop())
        try:
            if httpx.get(f"{served.base}/healthz", timeout=1).status_code == 200:
                return served
        except httpx.TransportError:
            time.sleep(0.1)
    served.stop()
    raise RuntimeError("server did not start in 30 s")


def traffic(base: str, world: World) -> list[str]:
    """Requests carrying secrets in the query, the body and the header; returns every secret sent or received."""
    secrets = [world.secret]
    with httpx.Client(base_url=base, timeout=10) as client:
        app_token = client.post(
            "/oauth/credit/token",
            data={"app_id": world.app_id, "secret": world.secret, "grant_type": "client_credential"},
        ).json()["result"]["access_token"]
        secrets.append(app_token)
        connect = client.get(
            "/oauth/connect",
            params={
                "app_id": world.app_id, "redirect_uri": CALLBACK, "response_type": "code", "scope": "install_login",
                "xspe": world.xspe, "customer_id": world.customer_id, "state": "state-secret-4711",
            },
        )  # fmt: skip
        assert connect.status_code == 302, connect.text
        code = httpx.URL(connect.headers["location"]).params["code"]
        secrets += [code, "state-secret-4711"]
        tokens = client.post(
            "/oauth/access_token",
            data={"app_id": world.app_id, "secret": world.secret, "code": code, "grant_type": "authorization_code"},
        ).json()["result"]
        secrets += [tokens["access_token"], tokens["refresh_token"]]
        assert client.get(f"/api/spe/customer/{world.customer_id}?access_token={app_token}").json()["code"] == 0
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert client.get(f"/api/spe/customer/{world.customer_id}", headers=bearer).json()["code"] == 0
        refreshed = client.post(
            "/oauth/refresh_token?" + urlencode({"app_id": world.app_id, "grant_type": "refresh_code"}),
            data={"refresh_token": tokens["refresh_token"]},
        ).json()["result"]
        secrets += [refreshed["access_token"], refreshed["refresh_token"]]
        assert client.get("/api/spe/customers", params={"access_token": "made-up-token-0815"}).status_code == 401
        secrets.append("made-up-token-0815")
        assert client.get("/no/such/page%0Aforged line?x=1").status_code == 404
    return secrets


def no_secret_in(log: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in log, f"{secret!r} is in the log"
    assert "access_token=" not in log and "Bearer" not in log and "?" not in log


EXPECTED_ACCESS = [
    ("POST", "/oauth/credit/token", 200),
    ("GET", "/oauth/connect", 302),
    ("POST", "/oauth/access_token", 200),
    ("GET", "/api/spe/customer/{customer_id}", 200),
    ("GET", "/api/spe/customer/{customer_id}", 200),
    ("POST", "/oauth/refresh_token", 200),
    ("GET", "/api/spe/customers", 401),
    ("GET", "/no/such/page%0Aforged%20line", 404),
]


def expected(world: World) -> list[tuple[str, str, int]]:
    return [(method, path.format(customer_id=world.customer_id), status) for method, path, status in EXPECTED_ACCESS]


def after_health_checks(access: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """The access lines after the start-up polling of /healthz."""
    while access and access[0][1] == "/healthz":
        access = access[1:]
    return access


def text_access(log: str) -> list[tuple[str, str, int]]:
    lines = [line for line in log.splitlines() if line.strip()]
    for line in lines:
        assert TEXT_LINE.match(line), f"not a text log line: {line!r}"
    found = [TEXT_ACCESS.match(line) for line in lines if "openplatform.access" in line]
    assert all(found), [line for line in lines if "openplatform.access" in line]
    return [(m["method"], m["path"], int(m["status"])) for m in found if m]


def json_records(log: str) -> list[dict[str, Any]]:
    records = [orjson.loads(line) for line in log.splitlines() if line.strip()]
    for record in records:
        keys = ACCESS_KEYS if record["logger"] == "openplatform.access" else JSON_KEYS
        assert set(record) - {"exc"} == keys, record
    return records


def json_access(log: str) -> list[tuple[str, str, int]]:
    access = []
    for record in json_records(log):
        if record["logger"] != "openplatform.access":
            continue
        assert record["level"] == "info" and isinstance(record["ms"], float) and record["ms"] >= 0
        assert record["msg"] == f"{record['method']} {record['path']} {record['status']} {record['ms']:.1f} ms"
        access.append((record["method"], record["path"], record["status"]))
    return access


def test_on_a_terminal_the_default_is_text_with_an_access_line_per_request(settings: Settings, tmp_path: Path) -> None:
    world = seed_world(settings)
    served = serve(settings, tmp_path, terminal=True)
    secrets = traffic(served.base, world)
    log = served.stop()
    assert "openplatform.access" in log and "uvicorn: Uvicorn running on" in log, log
    assert after_health_checks(text_access(log)) == expected(world)
    no_secret_in(log, secrets)


def test_on_a_file_the_default_is_json_without_access_lines(settings: Settings, tmp_path: Path) -> None:
    world = seed_world(settings)
    served = serve(settings, tmp_path, terminal=False)
    secrets = traffic(served.base, world)
    log = served.stop()
    records = json_records(log)
    assert any(r["msg"].startswith("Uvicorn running on") for r in records), log
    assert json_access(log) == []
    no_secret_in(log, secrets)


def test_json_with_the_access_log_switched_on(settings: Settings, tmp_path: Path) -> None:
    world = seed_world(settings)
    served = serve(settings, tmp_path, terminal=False, OPENPLATFORM_ACCESS_LOG="true")
    secrets = traffic(served.base, world)
    log = served.stop()
    assert after_health_checks(json_access(log)) == expected(world)
    no_secret_in(log, secrets)


def test_the_settings_override_the_terminal_default(settings: Settings, tmp_path: Path) -> None:
    """On a terminal, LOG_FORMAT=json gives JSON (no access line); on a file, text gives text."""
    world = seed_world(settings)
    served = serve(settings, tmp_path, terminal=True, OPENPLATFORM_LOG_FORMAT="json")
    traffic(served.base, world)
    log = served.stop()
    assert json_records(log) and json_access(log) == []

    served = serve(settings, tmp_path, terminal=False, OPENPLATFORM_LOG_FORMAT="text", OPENPLATFORM_ACCESS_LOG="false")
    secrets = traffic(served.base, world)
    log = served.stop()
    assert text_access(log) == [] and "uvicorn: Application startup complete." in log
    no_secret_in(log, secrets)


def test_a_bad_log_format_stops_the_server_with_a_sentence(settings: Settings, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "openplatform.cli", "serve", "--port", str(free_port())],
        env={**cli_env(settings), "OPENPLATFORM_LOG_FORMAT": "yaml"},
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0, result.stderr
    assert result.stderr.startswith("error: OPENPLATFORM_LOG_FORMAT: ") and "Traceback" not in result.stderr


@pytest.fixture(autouse=True)
def _no_leftover_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The developer's own OPENPLATFORM_LOG_FORMAT / ACCESS_LOG must not change what these tests see."""
    monkeypatch.delenv("OPENPLATFORM_LOG_FORMAT", raising=False)
    monkeypatch.delenv("OPENPLATFORM_ACCESS_LOG", raising=False)
    yield
