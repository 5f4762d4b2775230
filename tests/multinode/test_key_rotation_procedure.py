"""Rotating the server key with real processes, by the commands docs/deployment.md prints (SPEC §10).

Under key A a server issues an app token, user pairs and a code, and signs an install webhook with
the app's secret. Then docs/deployment.md's "One node" commands run as printed (``bash``, with
``OLD_KEY`` = A): a new key B, a restart under B with A in ``OPENPLATFORM_OLD_SECRET_KEYS`` (A's
tokens keep working: Open API, introspection, refresh rotation and its leeway retry, RFC 7009
revocation; the secret A sealed authenticates the app and signs webhooks), ``openplatform db
reencrypt`` (``{"reencrypted": 1}``, then 0; with a key that opens nothing: exit 5, nothing
changed), and a restart under B alone: what was made or re-keyed after the switch works, what only
A could find is refused. The "Several nodes" commands run as printed on two nodes, one after the
other, checking at each step that a token made by one node works on the other.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from openplatform.config import Settings
from openplatform.core.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook
from tests.conftest import CALLBACK, TEST_SECRET_KEY, cli_env, free_port
from tests.ui.receiver import Received, Receiver, serving

# Real `openplatform serve` processes and the CLI on one database, restarted: not memory://.
pytestmark = pytest.mark.sql

DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"
KEY_A = TEST_SECRET_KEY
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0


def doc_commands(heading: str) -> list[str]:
    """The command lines of the ``sh`` block under ``### heading`` of the "Rotating the server key" section."""
    section = DOC.read_text().split("## Rotating the server key", 1)[1]
    part = section.split(f"### {heading}\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", part, re.S)
    assert block is not None, f"no sh block under {heading!r}"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


# ------------------------------------------------------------------ processes


@dataclass
class Shell:
    """Runs the documented lines with ``bash`` in ``workdir``, with the test's settings in the
    environment (no server key: each line sets its own) and ``OLD_KEY``/``NEW_KEY`` as exported."""

    settings: Settings
    workdir: Path
    variables: dict[str, str] = field(default_factory=dict)
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = cli_env(self.settings)
        for name in ("OPENPLATFORM_SECRET_KEY", "OPENPLATFORM_OLD_SECRET_KEYS"):
            env.pop(name, None)
        env.update(self.variables, OPENPLATFORM_WEBHOOK_POLL_SECONDS="0.2")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # openplatform, python3
        return env

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", line], env=self.env, cwd=self.workdir, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT)  # fmt: skip

    def assign(self, line: str) -> None:
        """``NAME=$(...)``: run it and keep NAME's value for the next lines."""
        name = line.split("=", 1)[0]
        done = self.run(f'{line}; printf %s "${name}"')
        assert done.returncode == 0 and done.stdout, done.stderr
        self.variables[name] = done.stdout

    def cli(self, line: str) -> dict[str, Any]:
        """An ``openplatform`` command line: its one JSON line (exit status 0 required)."""
        done = self.run(line)
        assert done.returncode == 0, f"{line}: {done.returncode} {done.stderr}"
        return dict(orjson.loads(done.stdout.strip().splitlines()[-1]))

    def serve(self, line: str) -> str:
        """A documented ``serve`` line, on a free loopback port instead of 0.0.0.0:8000; its base URL once ready."""
        assert "--host 0.0.0.0 --port 8000" in line, line
        port = free_port()
        line = line.replace("--host 0.0.0.0 --port 8000", f"--host 127.0.0.1 --port {port}")
        log = (self.workdir / f"server-{len(self.servers)}.log").open("wb")
        process = subprocess.Popen(["bash", "-c", f"exec env {line}"], env=self.env, cwd=self.workdir,
                                   stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        self.servers.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert process.poll() is None, Path(log.name).read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    return base
            time.sleep(0.05)
        raise AssertionError(f"the server did not start in {START_TIMEOUT:.0f} s")

    def stop(self, base: str | None = None) -> None:
        """Stop the server at ``base`` (every server when None), by its PID."""
        for process in self.servers:
            if process.poll() is None and (base is None or f"--port {base.rsplit(':', 1)[1]}" in str(process.args)):
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture
def shell(settings: Settings, tmp_path: Path) -> Iterator[Shell]:
    runner = Shell(settings.model_copy(update={"webhook_private_networks": "allow", "log_level": "warning"}),
                   tmp_path, {"OLD_KEY": KEY_A})  # fmt: skip
    try:
        yield runner
    finally:
        runner.stop()


# ------------------------------------------------------------ a webhook receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as state:
        state.status = 200  # acknowledges every notification
        yield state


def signed_with(secret: str, app_id: str, delivery: Received) -> bool:
    """Both signatures of an install notification (SPEC §3) hold for ``secret``."""
    headers, body = delivery.headers, delivery.body
    document = orjson.loads(body)
    legacy = hashlib.md5(f"{app_id}:{secret}:{document['expiration_time']}".encode()).hexdigest()  # noqa: S324
    return document["signature"] == legacy and verify_webhook(
        secret, body, headers[TIMESTAMP_HEADER.lower()], headers[SIGNATURE_HEADER.lower()]
    )


# ----------------------------------------------------------------- the platform


@dataclass
class Platform:
    """What the test made through the CLI: one SPE, an app with a webhook, a customer it is installed for."""

    app_id: str
    secret: str
    xspe: str
    customer_id: str


def seed(shell: Shell, receiver: Receiver, key: str) -> Platform:
    with_key = f"OPENPLATFORM_SECRET_KEY={key} openplatform"
    xspe = shell.cli(f"{with_key} spe create --name Acme")["xspe"]
    customer_id = shell.cli(f"{with_key} customer create --xspe {xspe} --name One")["customer_id"]
    app = shell.cli(f"{with_key} app create --name App --host-url https://app.example.com/ --scope customer:read "
                    f"--webhook-url {receiver.url}")  # fmt: skip
    shell.cli(f"{with_key} install --app-id {app['app_id']} --customer-id {customer_id}")
    return Platform(app["app_id"], app["secret"], xspe, customer_id)


def result(response: httpx.Response) -> Any:
    body = response.json()
    assert body["code"] == 0, body
    return body["result"]


def code(http: httpx.Client, platform: Platform) -> str:
    params = dict(app_id=platform.app_id, redirect_uri=CALLBACK, response_type="code", scope="install_login",
                  xspe=platform.xspe, customer_id=platform.customer_id, state="s")  # fmt: skip
    response = http.get("/oauth/connect", params=params)
    assert response.status_code == 302, response.text
    return str(httpx.URL(response.headers["location"]).params["code"])


def exchange(http: httpx.Client, platform: Platform, raw_code: str) -> dict[str, Any]:
    data = dict(app_id=platform.app_id, secret=platform.secret, code=raw_code, grant_type="authorization_code")
    return dict(result(http.post("/oauth/access_token", data=data)))


def refresh(http: httpx.Client, platform: Platform, refresh_token: str) -> httpx.Response:
    return http.post("/oauth/refresh_token", data=dict(
        app_id=platform.app_id, refresh_token=refresh_token, grant_type="refresh_code"))  # fmt: skip


def app_token(http: httpx.Client, platform: Platform, secret: str | None = None) -> str:
    data = dict(app_id=platform.app_id, secret=secret or platform.secret, grant_type="client_credential")
    return str(result(http.post("/oauth/credit/token", data=data))["access_token"])


def customer(http: httpx.Client, platform: Platform, token: str) -> int:
    response = http.get(f"/api/spe/customer/{platform.customer_id}", params={"access_token": token})
    return int(response.json()["code"])


def customers(http: httpx.Client, token: str) -> int:
    return int(http.get("/api/spe/customers", params={"access_token": token}).json()["code"])


def active(http: httpx.Client, platform: Platform, token: str) -> bool:
    response = http.post("/oauth/introspect", data={"token": token}, auth=(platform.app_id, platform.secret))
    assert response.status_code == 200, response.text
    return bool(response.json()["active"])


# ------------------------------------------------------------------- one node


def test_one_node_as_documented(shell: Shell, receiver: Receiver) -> None:
    new_key, switch, reencrypt, without_old = doc_commands("One node")
    assert new_key.startswith("NEW_KEY=$(") and "db reencrypt" in reencrypt
    assert "OLD_SECRET_KEYS=$OLD_KEY" in switch and "serve" in switch and "OLD_SECRET_KEYS" not in without_old

    # Under key A alone.
    base = shell.serve(f"OPENPLATFORM_SECRET_KEY={KEY_A} openplatform serve --host 0.0.0.0 --port 8000")
    platform = seed(shell, receiver, KEY_A)
    assert signed_with(platform.secret, platform.app_id, receiver.wait_for(1))  # the install webhook
    with httpx.Client(base_url=base, timeout=10) as http:
        app_token_a = app_token(http, platform)
        pair_a = exchange(http, platform, code(http, platform))
        doomed_a = exchange(http, platform, code(http, platform))
        code_a = code(http, platform)
    shell.stop(base)

    # 1-2: a new key; the server restarted under it, the old key beside it.
    shell.assign(new_key)
    key_b = shell.variables["NEW_KEY"]
    assert len(key_b) >= 40 and key_b != KEY_A
    base = shell.serve(switch)
    with httpx.Client(base_url=base, timeout=10) as http:
        assert customer(http, platform, pair_a["access_token"]) == 0  # Open API with A's user token
        assert customers(http, app_token_a) == 0  # and with A's app token
        assert active(http, platform, pair_a["access_token"]) and active(http, platform, pair_a["refresh_token"])
        pair_from_code = exchange(http, platform, code_a)  # a code made under A
        rotated = result(refresh(http, platform, pair_a["refresh_token"]))
        assert result(refresh(http, platform, pair_a["refresh_token"])) == rotated  # the leeway retry
        revoked = http.post("/oauth/revoke", data={"token": doomed_a["refresh_token"]},
                            auth=(platform.app_id, platform.secret))  # fmt: skip
        assert revoked.status_code == 200
        assert customer(http, platform, doomed_a["access_token"]) == 40102  # its family went with it
        app_token_b = app_token(http, platform)  # the secret sealed under A authenticates the app
        # A webhook signed with the secret A sealed: an installation for a new customer.
        second = shell.cli(f"OPENPLATFORM_SECRET_KEY={key_b} OPENPLATFORM_OLD_SECRET_KEYS={KEY_A} openplatform "
                           f"customer create --xspe {platform.xspe} --name Two")["customer_id"]  # fmt: skip
        shell.cli(f"OPENPLATFORM_SECRET_KEY={key_b} OPENPLATFORM_OLD_SECRET_KEYS={KEY_A} openplatform "
                  f"install --app-id {platform.app_id} --customer-id {second}")  # fmt: skip
        assert signed_with(platform.secret, platform.app_id, receiver.wait_for(2))

        # 3: with keys that open no secret, nothing moves: exit status 5 and the app named.
        refused = shell.run("OPENPLATFORM_SECRET_KEY=a-key-that-made-nothing-0123456789 openplatform db reencrypt")
        assert refused.returncode == 5, refused.stderr
        assert platform.app_id in refused.stderr and "OPENPLATFORM_OLD_SECRET_KEYS" in refused.stderr
        assert refused.stdout == ""
        # As printed: the one secret moves to B; a second run finds nothing left.
        assert shell.cli(reencrypt) == {"reencrypted": 1}
        assert shell.cli(reencrypt) == {"reencrypted": 0}
        assert app_token(http, platform)  # the running server picked up the re-encrypted secret
    shell.stop(base)

    # 4: under B alone.
    base = shell.serve(without_old)
    with httpx.Client(base_url=base, timeout=10) as http:
        assert customer(http, platform, rotated["access_token"]) == 0  # rotated after the switch
        assert customer(http, platform, pair_from_code["access_token"]) == 0
        assert customers(http, app_token_b) == 0
        assert result(refresh(http, platform, rotated["refresh_token"]))["access_token"]
        assert customers(http, app_token(http, platform)) == 0  # the re-encrypted secret
        third = shell.cli(f"OPENPLATFORM_SECRET_KEY={key_b} openplatform customer create "
                          f"--xspe {platform.xspe} --name Three")["customer_id"]  # fmt: skip
        shell.cli(f"OPENPLATFORM_SECRET_KEY={key_b} openplatform install --app-id {platform.app_id} "
                  f"--customer-id {third}")  # fmt: skip
        assert signed_with(platform.secret, platform.app_id, receiver.wait_for(3))
        # Only A could find these: refused like any unknown token (documented).
        assert customer(http, platform, pair_a["access_token"]) == 40102
        assert customers(http, app_token_a) == 40102
        assert not active(http, platform, pair_a["access_token"])
        assert refresh(http, platform, doomed_a["refresh_token"]).json()["code"] == 40006


# ----------------------------------------------------------------- several nodes


def test_several_nodes_as_documented(shell: Shell, receiver: Receiver) -> None:
    learn, switch, reencrypt, drop = doc_commands("Several nodes")
    assert "SECRET_KEY=$OLD_KEY" in learn and "OLD_SECRET_KEYS=$NEW_KEY" in learn
    assert "SECRET_KEY=$NEW_KEY" in switch and "db reencrypt" in reencrypt and "OLD_SECRET_KEYS" not in drop
    shell.assign(doc_commands("One node")[0])  # the new key, made as on one node
    platform = seed(shell, receiver, KEY_A)
    under_a = f"OPENPLATFORM_SECRET_KEY={KEY_A} openplatform serve --host 0.0.0.0 --port 8000"
    nodes = [shell.serve(under_a), shell.serve(under_a)]
    made: list[tuple[str, str]] = []  # (node that issued it, access token)

    def issue(node: str) -> None:
        with httpx.Client(base_url=node, timeout=10) as http:
            made.append((node, app_token(http, platform)))

    def everything_works_everywhere() -> None:
        for node in nodes:
            with httpx.Client(base_url=node, timeout=10) as http:
                for _, token in made:
                    assert customers(http, token) == 0, (node, token[:8])
                assert app_token(http, platform)  # the app's secret, wherever it is sealed

    issue(nodes[0])
    for line in (learn, switch):  # node after node, a token made by each node checked on every node
        for index in range(len(nodes)):
            shell.stop(nodes[index])
            nodes[index] = shell.serve(line)
            issue(nodes[index])
            everything_works_everywhere()
    assert shell.cli(reencrypt) == {"reencrypted": 1}
    assert shell.cli(reencrypt) == {"reencrypted": 0}
    everything_works_everywhere()
    before_switch = [token for _, token in made[:3]]  # made by nodes that used key A
    made[:3] = []
    for index in range(len(nodes)):
        shell.stop(nodes[index])
        nodes[index] = shell.serve(drop)
    issue(nodes[0])
    everything_works_everywhere()
    with httpx.Client(base_url=nodes[1], timeout=10) as http:
        assert [customers(http, token) for token in before_switch] == [40102] * 3
