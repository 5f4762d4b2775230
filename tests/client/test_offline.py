"""What the SDK decides on its own, without an openplatform server: signed launches and
webhooks, the state check, the connect URL, errors for network failures and odd answers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from openplatform.client import (
    AppClient,
    InvalidSignature,
    OpenPlatformError,
    RateLimited,
    RequestTimeout,
    ServerError,
    StateMismatch,
    Token,
    TransportError,
)
from openplatform.client.errors import BY_ERROR, from_envelope
from openplatform.client.signing import sign_launch, sign_webhook
from openplatform.errors import ERRORS, OAuthError
from openplatform.models import Installation
from openplatform.services.webhooks import INSTALL, UNINSTALL, notification, notification_body

APP_ID = "0123456789abcdef0123456789abcdef"
SECRET = "s3cret-" + "x" * 40
NOW = 1_800_000_000


def client(base_url: str = "http://127.0.0.1:9", **options: object) -> AppClient:
    return AppClient(APP_ID, SECRET, base_url, clock=lambda: float(NOW), **options)  # type: ignore[arg-type]


# ------------------------------------------------------------------ signed launch


def launch(**changes: str) -> dict[str, str]:
    params = sign_launch(SECRET, APP_ID, "spe_1", "cus_1", NOW - 10)
    params.update(changes)
    return params


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (launch(customer_id="cus_2"), "signature"),  # altered after signing
        (launch(signature="0" * 64), "signature"),
        (sign_launch(SECRET, APP_ID, "spe_1", "cus_1", NOW - 301), "signature"),  # too old
        (sign_launch(SECRET, APP_ID, "spe_1", "cus_1", NOW + 301), "signature"),  # from the future
        (sign_launch("another-secret", APP_ID, "spe_1", "cus_1", NOW), "signature"),
        (sign_launch(SECRET, "f" * 32, "spe_1", "cus_1", NOW), "app_id"),  # for another app
        (sign_launch(SECRET, APP_ID, "", "cus_1", NOW), "xspe"),
        ({k: v for k, v in launch().items() if k != "timestamp"}, "signature"),
    ],
)
def test_bad_launches_are_refused(params: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidSignature) as caught:
        client().verify_launch(params)
    assert (caught.value.field, caught.value.code) == (field, 40001)


def test_good_launches() -> None:
    customer = client().verify_launch(launch())
    spe_wide = client().verify_launch(sign_launch(SECRET, APP_ID, "spe_1", None, NOW))
    assert (customer.xspe, customer.customer_id, customer.timestamp) == ("spe_1", "cus_1", NOW - 10)
    assert (spe_wide.xspe, spe_wide.customer_id) == ("spe_1", None)


# ---------------------------------------------------------------------- webhooks


def delivery(kind: int = UNINSTALL, customer_id: str | None = "cus_1") -> tuple[bytes, dict[str, str]]:
    """Exactly what the server's webhook worker sends (services/webhooks.py)."""
    installation = Installation("ins_1", APP_ID, "spe_1", customer_id, NOW - 100)
    body = notification_body(notification(kind, installation, NOW - 5), APP_ID, SECRET, NOW)
    return body, sign_webhook(SECRET, body, NOW)


def test_webhook_from_the_server_verifies() -> None:
    body, headers = delivery()
    event = client().verify_webhook(body, {k.lower(): v for k, v in headers.items()})
    assert (event.type, event.uninstalled, event.customer_id, event.xspe) == (UNINSTALL, True, "cus_1", "spe_1")
    assert event.event_id and event.expiration_time == NOW * 1000 + 300_000
    spe_wide = client().verify_webhook(*delivery(INSTALL, None))
    assert (spe_wide.installed, spe_wide.customer_id) == (True, None)


def forged_md5(body: bytes) -> bytes:
    return body.replace(b'"signature":"', b'"signature":"0')


@pytest.mark.parametrize(
    ("case", "tamper"),
    [
        ("body altered", lambda body, headers: (body.replace(b'"type":2', b'"type":1'), headers)),
        ("HMAC wrong", lambda body, headers: (body, {**headers, "X-OpenPlatform-Signature": "0" * 64})),
        ("HMAC missing", lambda body, headers: (body, {})),
        ("stale", lambda body, headers: (body, sign_webhook(SECRET, body, NOW - 301))),
        ("legacy MD5 wrong", lambda body, headers: (forged_md5(body), sign_webhook(SECRET, forged_md5(body), NOW))),
    ],
)
def test_bad_webhooks_are_refused(case: str, tamper: object) -> None:
    body, headers = tamper(*delivery())  # type: ignore[operator]
    with pytest.raises(InvalidSignature):
        client().verify_webhook(body, headers)


# ------------------------------------------------------------- connect and state


def test_connect_url_carries_the_documented_parameters_and_pkce() -> None:
    app = client("https://open.example.com/")
    url, state = app.connect_url(xspe="spe_1", customer_id="cus_1", redirect_uri="https://app.example.com/cb")
    _, second = app.connect_url(xspe="spe_1", customer_id="cus_1", redirect_uri="https://app.example.com/cb")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://open.example.com/oauth/connect"
    assert query["app_id"] == APP_ID and query["response_type"] == "code" and query["scope"] == "install_login"
    assert (query["xspe"], query["customer_id"], query["state"]) == ("spe_1", "cus_1", state)
    assert state != second and len(state) >= 32
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert "code_challenge" not in client(pkce=False).connect_url(xspe="s", customer_id="c", redirect_uri="x")[0]


@pytest.mark.parametrize(
    ("issued", "returned", "expected"),
    [
        (True, "tampered", None),  # the browser came back with another state
        (True, None, None),
        (False, "unknown", None),  # not issued by this client and nothing kept to compare
        (False, "kept", "other"),  # the kept state (cookie) disagrees
    ],
)
def test_state_mismatch_fails_before_any_request(issued: bool, returned: str | None, expected: str | None) -> None:
    app = client()  # base_url is a closed port: a request would raise TransportError instead
    if issued:
        app.connect_url(xspe="s", customer_id="c", redirect_uri="http://localhost/cb")
    with pytest.raises(StateMismatch) as caught:
        app.exchange_code("code", state=returned, expected_state=expected)
    assert (caught.value.code, caught.value.field) == (40001, "state")


# -------------------------------------------------------------- network and answers


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_network_failures_are_typed(silent_port: int) -> None:
    with pytest.raises(RequestTimeout) as slow:
        client(f"http://127.0.0.1:{silent_port}", timeout=0.3).app_token()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(TransportError) as refused:
        client(f"http://127.0.0.1:{closed}").app_token()
    assert slow.value.code == refused.value.code == 50301
    assert isinstance(slow.value, TransportError) and isinstance(refused.value, OpenPlatformError)


class ProxyErrorPage(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        page = b"<html><body>502 Bad Gateway</body></html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *_args: object) -> None:
        pass


def test_an_answer_without_envelope_is_a_server_error() -> None:
    proxy = HTTPServer(("127.0.0.1", 0), ProxyErrorPage)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with pytest.raises(ServerError) as caught:
            client(f"http://127.0.0.1:{proxy.server_address[1]}").app_token()
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert (caught.value.status, caught.value.code) == (502, 50001)


class DropsFirstRequests(BaseHTTPRequestHandler):
    """Hangs up without answering the first GET and every POST to the Open API, like a server
    closing a kept-alive connection just as the request arrives; counts what it saw."""

    seen: list[str] = []

    def answer(self, result: object) -> None:
        body = json.dumps({"code": 0, "msg": "success", "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.seen.append(f"POST {self.path}")
        if self.path == "/oauth/credit/token":
            self.answer({"access_token": "at", "expires_in": 7200})
        else:
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(f"GET {self.path}")
        if self.seen.count(f"GET {self.path}") == 1:
            self.close_connection = True
            return
        self.answer({"customer_id": "cus_1", "xspe": "spe_1", "name": "One"})

    def log_message(self, *_args: object) -> None:
        pass


def test_only_safe_requests_are_sent_again_after_a_hang_up() -> None:
    DropsFirstRequests.seen = []
    server = HTTPServer(("127.0.0.1", 0), DropsFirstRequests)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        app = client(f"http://127.0.0.1:{server.server_address[1]}")
        assert app.customers.get("cus_1").name == "One"
        with pytest.raises(TransportError):
            app.customers.create("Two")  # not repeated: it may have been applied
    finally:
        server.shutdown()
        server.server_close()
    assert DropsFirstRequests.seen == [
        "POST /oauth/credit/token", "GET /api/spe/customer/cus_1", "GET /api/spe/customer/cus_1",
        "POST /api/spe/customers",
    ]  # fmt: skip


@pytest.mark.parametrize("error", sorted(ERRORS))
def test_every_server_error_has_its_class(error: str) -> None:
    """The SDK's classes follow the server's one table (openplatform.errors)."""
    envelope = OAuthError(error, "words", field="x").envelope()
    raised = from_envelope(envelope, ERRORS[error].status, {"Retry-After": "3"})
    assert type(raised) is BY_ERROR[error]
    assert (raised.code, raised.error, raised.msg, raised.field) == (ERRORS[error].code, error, "words", "x")
    if isinstance(raised, RateLimited):
        assert raised.retry_after == 3.0


def test_secrets_stay_out_of_reprs() -> None:
    token = Token("access-value", 60, time.time() + 60, "refresh-value", "install_login", "cus_1")
    app = client()
    assert "access-value" not in repr(token) and "refresh-value" not in repr(token)
    assert SECRET not in repr(app)
    assert Token.from_dict(token.to_dict()) == token


def test_the_sdk_imports_nothing_of_the_server() -> None:
    """Apps install the SDK to call a server, not to run one: no web framework, ORM or settings."""
    probe = (
        "import sys, openplatform.client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'sqlalchemy', 'pydantic', "
        "'asyncpg', 'redis') or m.startswith(('openplatform.web', 'openplatform.storage', 'openplatform.config'))))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert found.stdout.strip() == "[]"
