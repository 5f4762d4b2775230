"""Webhooks never reach private networks (SPEC §9, issue 9 findings 1 and 8).

Hostile ``webhook_url`` values are refused at registration (services, CLI, console) and at send
time; a receiver on 127.0.0.1 never sees a request while the switch is off; the sender connects to
the address it checked even when DNS answers differently later; redirects are not followed; and no
log record holds a webhook URL's query. The public internet is not reachable here, so where a
public address is needed the resolver (and, in one test, the address rule) is replaced.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, ip_address
from typing import Any

import httpx
import pytest

from openplatform.config import Settings
from openplatform.core import egress
from openplatform.services import validation as check
from openplatform.services.validation import ValidationError
from openplatform.services.webhooks import Sender, WebhookWorker
from tests.conftest import Harness, run_cli
from tests.ui.support import errors_in, person

BODY = b'{"type": 1}'
HEADERS = {"Content-Type": "application/json"}
SECRET_QUERY = "token=hunter2-webhook-credential"


# ------------------------------------------------------------------ receiver


@dataclass
class Receiver:
    """An HTTP server on one loopback address, acknowledging every POST (``/redirect`` answers 302)."""

    host: str
    port: int = 0
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def requests(self) -> list[tuple[str, dict[str, str]]]:
        with self.lock:
            return list(self.seen)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(host: str = "127.0.0.1", port: int = 0) -> Receiver:
        state = Receiver(host)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with state.lock:
                    state.seen.append((self.path, dict(self.headers.items())))
                redirect = self.path.startswith("/redirect")
                answer = b"" if redirect else b'{"code": 0}'
                self.send_response(302 if redirect else 200)
                if redirect:
                    self.send_header("Location", f"http://127.0.0.1:{state.port}/hook")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        state.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver(serve: Any) -> Receiver:
    started: Receiver = serve()
    return started


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[list[str]]]) -> dict[str, int]:
    """Replace name resolution, for ``egress`` and for anything else (httpx, anyio) alike.

    ``answers[name]`` is the list of answers given in turn (the last one forever); other names
    resolve for real. Returns how often each name was asked for.
    """
    real = socket.getaddrinfo
    asked: dict[str, int] = {}

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in answers:
            return real(host, port, *args, **kwargs)
        turn = asked.get(name, 0)
        asked[name] = turn + 1
        addresses = answers[name][min(turn, len(answers[name]) - 1)]
        result = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, int(port or 0), 0, 0) if family == socket.AF_INET6 else (address, int(port or 0))
            result.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return result

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


async def post(url: str, private_networks: bool = False) -> str | None:
    sender = Sender(private_networks)
    try:
        return await sender.post(url, BODY, HEADERS)
    finally:
        await sender.aclose()


# ------------------------------------------------------------ address rules


# Hosts that are not public, in the spellings browsers and inet_aton accept.
NOT_PUBLIC = {
    "127.0.0.1": "a loopback address",
    "2130706433": "a loopback address",  # decimal
    "0x7f000001": "a loopback address",  # hex
    "017700000001": "a loopback address",  # octal
    "0177.0.0.1": "a loopback address",
    "127.1": "a loopback address",
    "0x7f.1": "a loopback address",
    "127.0.0.1.": "a loopback address",
    "0": "an unspecified address",
    "0.0.0.0": "an unspecified address",
    "10.0.0.5": "a private address",
    "172.16.0.1": "a private address",
    "192.168.1.1": "a private address",
    "100.64.0.1": "a private address",
    "169.254.169.254": "a link-local address",
    "224.0.0.1": "a multicast address",
    "192.0.0.8": "a reserved address",
    "198.18.0.1": "a reserved address",
    "240.0.0.1": "a reserved address",
    "255.255.255.255": "a reserved address",
    "::1": "a loopback address",
    "[::1]": "a loopback address",
    "::": "an unspecified address",
    "::ffff:127.0.0.1": "a loopback address",  # IPv4-mapped
    "::ffff:7f00:1": "a loopback address",
    "::ffff:a9fe:a9fe": "a link-local address",
    "64:ff9b::a9fe:a9fe": "a link-local address",  # NAT64 of 169.254.169.254
    "2002:a00:5::1": "a private address",  # 6to4 of 10.0.0.5
    "::7f00:1": "a reserved address",  # IPv4-compatible (deprecated)
    "fe80::1": "a link-local address",
    "fd00::1": "a private address",
    "fec0::1": "a private address",
    "ff02::1": "a multicast address",
    "2001:db8::1": "a reserved address",
    "2001::1": "a reserved address",  # Teredo
    "100::1": "a reserved address",
    "localhost": "a loopback name",
    "LOCALHOST.": "a loopback name",
    "api.localhost": "a loopback name",
    "1.2.3.4.5": "not a valid IP address",
    "256.0.0.1": "not a valid IP address",
    "09": "not a valid IP address",
}
PUBLIC = ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1",
          "hooks.example.com", "1e100.net", "0x.example.com", "127.0.0.1.example.com"]  # fmt: skip


@pytest.mark.parametrize(("host", "kind"), NOT_PUBLIC.items(), ids=list(NOT_PUBLIC))
def test_hosts_that_are_not_public(host: str, kind: str) -> None:
    assert egress.host_refusal(host) == kind


@pytest.mark.parametrize("host", PUBLIC)
def test_public_hosts(host: str) -> None:
    assert egress.host_refusal(host) is None


def test_ipv4_spellings_read_like_browsers() -> None:
    for spelling in ("2130706433", "0x7f000001", "017700000001", "0177.0.0.1", "127.1", "127.0.1", "0x7F.0.0.0x1"):
        assert egress.ipv4_literal(spelling) == IPv4Address("127.0.0.1"), spelling
    assert egress.ipv4_literal("0") == IPv4Address("0.0.0.0")
    assert egress.ipv4_literal("example.com") is None and egress.ipv4_literal("1.example") is None


# ------------------------------------------------------------- registration


HOSTILE_URLS = [
    "https://169.254.169.254/latest", "https://10.0.0.5/", "https://2130706433/", "http://localhost:8080/",
    "https://localhost/hook", "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/", "http://0x7f000001/",
    "http://017700000001/", "http://0/", "https://0x7f000001/", "https://017700000001/", "https://0/",
    "https://[::ffff:127.0.0.1]/", "https://[64:ff9b::a9fe:a9fe]/", "https://[fd00::1]/", "https://127.1/",
    "https://１２７.０.０.１/", "https://[fe80::1%25eth0]/", "https://api.localhost/", "https://1.2.3.4.5/",
    "http://127.0.0.1:9/hook",
]  # fmt: skip


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_registration_refuses_hostile_webhook_urls(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check.webhook_url(url)
    assert refused.value.field == "webhook_url"


def test_registration_message_says_why() -> None:
    with pytest.raises(ValidationError) as refused:
        check.webhook_url("https://169.254.169.254/latest?token=x")
    assert refused.value.message == (
        "The host is a link-local address; webhooks are only sent to public internet addresses."
    )


def test_the_switch_lets_development_receivers_register() -> None:
    for url in ("http://localhost:9000/webhook", "http://127.0.0.1:9000/webhook", "https://10.0.0.5/"):
        assert check.webhook_url(url, allow_private_networks=True) == url
    assert check.webhook_url("https://hooks.example.com/hook?token=x") == "https://hooks.example.com/hook?token=x"
    assert check.webhook_url("") is None


async def test_every_registration_path_refuses_a_private_address(harness: Harness) -> None:
    """The services and the console here; the CLI in the next test."""
    with pytest.raises(ValidationError, match="private address"):
        await harness.admin.create_app("App", "https://app.example.com/", [], [], "https://10.0.0.5/hook")
    assert await harness.admin.db.list_apps() == []

    dev = await person(harness, "dev@example.com", "developer")
    try:
        form = {"name": "Shop sync", "host_url": "https://shop.example.com/", "scope": ["customer:read"]}
        created = await dev.post("/console/apps/new", {**form, "webhook_url": "https://2130706433/"})
        assert created.status_code == 400
        assert errors_in(created.text) == {
            "webhook_url": "The host is a loopback address; webhooks are only sent to public internet addresses."
        }
        assert await harness.admin.db.list_apps() == []
        ok = await dev.post("/console/apps/new", {**form, "webhook_url": "https://hooks.example.com/h"})
        assert ok.status_code == 303, ok.text
        app_id = ok.headers["location"].split("/")[3]
        edited = await dev.post(f"/console/apps/{app_id}/edit", {**form, "webhook_url": "http://localhost:8080/"})
        assert edited.status_code == 400
        assert set(errors_in(edited.text)) == {"webhook_url"}
        assert (await harness.admin.require_app(app_id)).webhook_url == "https://hooks.example.com/h"
    finally:
        await dev.client.aclose()


@pytest.mark.sql  # the CLI, another process (the openplatform command refuses memory://)
async def test_the_cli_refuses_a_private_address(harness: Harness, settings: Settings) -> None:
    cli = run_cli(settings, "app", "create", "--name", "App", "--host-url", "https://app.example.com/",
                  "--webhook-url", "https://169.254.169.254/latest", check=False)  # fmt: skip
    assert cli.returncode != 0 and cli.stdout == ""
    assert "webhook_url" in cli.stderr and "link-local address" in cli.stderr
    assert await harness.admin.db.list_apps() == []


# ---------------------------------------------------------------- sending


def hostile_targets(port: int) -> list[str]:
    """Every way of naming the receiver on 127.0.0.1:port (``loopback.test`` resolves to it)."""
    return [
        f"http://127.0.0.1:{port}/hook", f"http://2130706433:{port}/hook", f"http://0x7f000001:{port}/hook",
        f"http://017700000001:{port}/hook", f"http://127.1:{port}/hook", f"http://0:{port}/hook",
        f"http://0.0.0.0:{port}/hook", f"http://localhost:{port}/hook", f"http://[::ffff:127.0.0.1]:{port}/hook",
        f"http://[::1]:{port}/hook", f"https://127.0.0.1:{port}/hook", f"http://loopback.test:{port}/hook",
        f"http://mixed.test:{port}/hook", f"http://127.0.0.1:{port}/redirect",
    ]  # fmt: skip


async def test_no_request_reaches_a_local_receiver_while_the_switch_is_off(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"loopback.test": [["127.0.0.1"]], "mixed.test": [["93.184.216.34", "127.0.0.1"]]})
    for url in hostile_targets(receiver.port):
        error = await post(f"{url}?{SECRET_QUERY}")
        assert error is not None and error.startswith("refused: "), (url, error)
        assert error.endswith("(webhooks only go to public addresses)")
        assert "hunter2" not in error and "93.184.216.34" not in error
    assert receiver.requests() == []


async def test_a_name_resolving_to_a_private_address_is_refused_without_showing_the_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_dns(monkeypatch, {"internal.example.com": [["10.1.2.3"]], "meta.example.com": [["fe80::a9fe:a9fe"]]})
    assert await post("https://internal.example.com/hook") == (
        "refused: internal.example.com resolves to a private address (webhooks only go to public addresses)"
    )
    assert await post("https://meta.example.com/hook") == (
        "refused: meta.example.com resolves to a link-local address (webhooks only go to public addresses)"
    )
    assert await post("https://10.1.2.3/") == (
        "refused: 10.1.2.3 is a private address (webhooks only go to public addresses)"
    )


async def test_with_the_switch_on_local_receivers_get_their_webhooks(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"loopback.test": [["127.0.0.1"]]})
    port = receiver.port
    for url in (f"http://127.0.0.1:{port}/hook", f"http://2130706433:{port}/hook", f"http://loopback.test:{port}/hook"):
        assert await post(url, private_networks=True) is None, url
    hosts = [headers["Host"] for _, headers in receiver.requests()]
    assert hosts == [f"127.0.0.1:{port}", f"2130706433:{port}", f"loopback.test:{port}"]  # the URL's own Host


async def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    assert await post(f"http://127.0.0.1:{receiver.port}/redirect", private_networks=True) == "HTTP 302"
    assert [path for path, _ in receiver.requests()] == ["/redirect"]  # never /hook


async def test_the_checked_address_is_the_one_connected_to(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name is public when checked and private right after; the POST goes to the
    checked address, and the name is resolved once. (127.0.0.1 stands in for a public address here.)"""
    good = serve("127.0.0.1")
    evil = serve("127.0.0.2", good.port)
    real_refusal = egress.refusal
    monkeypatch.setattr(egress, "refusal", lambda a: None if a == ip_address("127.0.0.1") else real_refusal(a))
    asked = fake_dns(monkeypatch, {"rebind.test": [["127.0.0.1"], ["127.0.0.2"]]})
    assert await post(f"http://rebind.test:{good.port}/hook") is None
    assert asked == {"rebind.test": 1}
    assert [(path, headers["Host"]) for path, headers in good.requests()] == [("/hook", f"rebind.test:{good.port}")]
    assert evil.requests() == []
    # The next delivery resolves again, and now the name is refused.
    assert await post(f"http://rebind.test:{good.port}/hook") == (
        "refused: rebind.test resolves to a loopback address (webhooks only go to public addresses)"
    )
    assert evil.requests() == [] and len(good.requests()) == 1


async def test_https_checks_the_certificate_for_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The request to the pinned address carries the name for SNI and the certificate check."""
    fake_dns(monkeypatch, {"hooks.example.com": [["93.184.216.34"]]})
    seen: list[Any] = []

    async def send(self: Any, request: Any, **kwargs: Any) -> Any:
        seen.append(request)
        raise httpx.ConnectError("no route in the test")

    monkeypatch.setattr("httpx.AsyncClient.send", send)
    error = await post(f"https://hooks.example.com:8443/hook?{SECRET_QUERY}")
    assert error == "ConnectError: no route in the test"
    [request] = seen
    assert str(request.url) == f"https://93.184.216.34:8443/hook?{SECRET_QUERY}"
    assert request.headers["Host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


# -------------------------------------------- through the worker, on every backend


async def test_a_refused_delivery_is_a_failed_attempt(
    harness: Harness, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """An app registered before this rule (its URL is on file) is refused at send time: a failed
    attempt with a clear last_error, retried on the usual schedule, and nothing reaches the receiver."""
    spe = await harness.admin.create_spe("Hook SPE")
    app, _ = await harness.admin.create_app("App", "https://app.example.com/", [], [], "https://hooks.example.com/")
    hook = f"http://127.0.0.1:{receiver.port}/hook?{SECRET_QUERY}"
    await harness.admin.stores.console.update_app(app.app_id, webhook_url=hook)  # the store checks nothing
    await harness.admin.install(app.app_id, xspe=spe.xspe)
    worker = WebhookWorker(harness.admin, poll_seconds=60)
    worker.start()
    try:
        with caplog.at_level(logging.DEBUG):
            for _ in range(200):
                await worker.run_once()
                [row] = await harness.admin.stores.outbox.list(app.app_id)
                if row["last_error"]:
                    break
    finally:
        await worker.stop()
    assert row["last_error"] == "refused: 127.0.0.1 is a loopback address (webhooks only go to public addresses)"
    assert row["delivered_at"] is None and row["attempts"] == 1
    assert float(str(row["next_attempt_at"])) > harness.clock() + 5  # the usual backoff, not at once
    assert receiver.requests() == []
    events = [e for e in await harness.audit(app.app_id) if e["event"].startswith("webhook.")]
    assert [e["event"] for e in events] == ["webhook.failed"]
    assert all("hunter2" not in record.getMessage() for record in caplog.records)


# ------------------------------------------------------------------- logging


async def test_no_log_record_holds_the_webhook_query(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_dns(monkeypatch, {"loopback.test": [["127.0.0.1"]]})
    with caplog.at_level(logging.DEBUG):
        for url in (f"http://127.0.0.1:{receiver.port}/hook", f"http://loopback.test:{receiver.port}/hook",
                    f"http://127.0.0.1:{receiver.port}/redirect", "http://127.0.0.1:1/gone"):  # fmt: skip
            await post(f"{url}?{SECRET_QUERY}", private_networks=True)
            await post(f"{url}?{SECRET_QUERY}", private_networks=False)
    assert len(receiver.requests()) == 3
    http_lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("/hook " in line and "HTTP Request: POST" in line for line in http_lines), http_lines
    for record in caplog.records:
        text = record.getMessage() + str(record.exc_text or "")
        assert "hunter2" not in text and SECRET_QUERY not in text, (record.name, text)


def test_redaction_keeps_scheme_host_and_path() -> None:
    from openplatform import logs

    line = 'HTTP Request: POST https://1.2.3.4:8443/a/b?token=x&y=z#frag "HTTP/1.1 200 OK"'
    assert logs.without_url_queries(line) == 'HTTP Request: POST https://1.2.3.4:8443/a/b "HTTP/1.1 200 OK"'
    assert egress.safe_url("https://user:pw@hooks.example.com:8443/a?token=x") == "https://hooks.example.com:8443/a"


# --------------------------------------------------------------------- demo


@pytest.mark.sql  # openplatform demo refuses memory://
def test_demo_allows_private_networks_and_says_so(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from typer.testing import CliRunner

    from openplatform.cli import app as cli_app
    from tests.conftest import cli_env

    for key, value in cli_env(settings).items():
        if key.startswith("OPENPLATFORM_"):
            monkeypatch.setenv(key, value)
    assert Settings().webhook_private_networks == "deny"  # the default
    served: list[tuple[Any, ...]] = []
    monkeypatch.setattr("openplatform.web.serve.run", lambda *args: served.append(args))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli_app, ["demo", "--port", "8123"])
    assert result.exit_code == 0, result.stderr
    assert "OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS=allow" in result.stderr
    assert "OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS" not in result.stdout  # stdout is one JSON object
    assert len(served) == 1
    assert Settings().webhook_private_networks == "allow"  # what the server it starts reads
