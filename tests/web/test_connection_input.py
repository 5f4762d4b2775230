"""What one connection's input may make ``openplatform serve`` hold (SPEC §9, ``web.serve``).

Each test talks raw HTTP/1.1 to a real server process: the request head counted apart from a body
in the same network read, pipelined requests waiting in a bounded queue with reading paused,
chunked trailers counted and dropped, and input that is not HTTP answered with the envelope.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from openplatform.web.serve import MAX_PIPELINED
from tests.conftest import LiveServer, seed_world
from tests.web.test_header_limit import assert_refused

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about HTTP, not storage


def connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def answers(raw: bytes) -> list[tuple[bytes, Any]]:
    """The (head, JSON body) of each answer on a connection, in order (bodies by content-length)."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
        )
        found.append((head, orjson.loads(rest[:length])))
        raw = rest[length:]
    return found


def read_answers(sock: socket.socket, count: int) -> list[tuple[bytes, Any]]:
    """Read until ``count`` whole answers have arrived (the connection stays open)."""
    raw = b""
    while True:
        try:
            found = answers(raw)
        except (StopIteration, orjson.JSONDecodeError):
            found = []
        if len(found) >= count:
            return found
        chunk = sock.recv(65536)
        assert chunk, f"closed after {raw.count(b'HTTP/1.1 ')} answers"
        raw += chunk


FORM_HEAD = (
    b"POST /oauth/credit/token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\n"
)


def token_request(app_id: str, secret: str) -> bytes:
    body = urlencode({"app_id": app_id, "secret": secret, "grant_type": "client_credential"}).encode()
    head = (
        b"POST /oauth/credit/token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\n"
    )
    return head + b"content-length: %d\r\n\r\n" % len(body) + body


HEALTH = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_body_read_with_its_head_does_not_count_as_head(live_server: LiveServer, settings: Any) -> None:
    """40 KB of body in the same read as a small head: the app's body limit answers, not 431."""
    world = seed_world(settings)
    form = urlencode({"app_id": world.app_id, "secret": world.secret, "grant_type": "client_credential"})
    body = (form + "&pad=" + "a" * 40_000).encode()
    head = (
        b"POST /oauth/credit/token HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/x-www-form-urlencoded\r\n"
    )
    with connect(live_server) as sock:
        sock.sendall(head + b"content-length: %d\r\n\r\n" % len(body) + body)
        [(answer_head, envelope)] = read_answers(sock, 1)
    assert answer_head.startswith(b"HTTP/1.1 400 ")
    assert envelope["code"] == 40001 and "larger than 16384 bytes" in envelope["msg"]


def test_pipelined_requests_are_answered_in_order_with_bodies_held_until_their_turn(
    live_server: LiveServer, settings: Any
) -> None:
    world = seed_world(settings)
    token = token_request(world.app_id, world.secret)
    with connect(live_server) as sock:
        # three requests in one write, the third one's body cut short: it arrives later, while held
        sock.sendall(token + HEALTH + token[:-10])
        time.sleep(0.3)
        sock.sendall(token[-10:])
        found = read_answers(sock, 3)
        assert [envelope["code"] for _, envelope in found] == [0, 0, 0]
        assert "access_token" in found[0][1]["result"] and found[1][1]["result"] == {"status": "ok"}
        assert found[2][1]["result"]["access_token"] != found[0][1]["result"]["access_token"]
        sock.sendall(HEALTH)  # the connection is still open and reads on
        assert read_answers(sock, 1)[0][0].startswith(b"HTTP/1.1 200 ")


def test_at_most_max_pipelined_requests_wait_then_the_connection_ends(live_server: LiveServer) -> None:
    with connect(live_server) as sock:
        sock.sendall(HEALTH * 200)
        found = answers(read_until_closed(sock))
    assert len(found) == 1 + MAX_PIPELINED  # the one answered at once, and those that waited
    assert all(head.startswith(b"HTTP/1.1 200 ") for head, _ in found)
    assert b"connection: close" in found[-1][0].lower()


def test_a_client_streaming_pipelined_requests_cannot_grow_the_server(live_server: LiveServer) -> None:
    """Requests written without waiting for answers, answers read in step: the server's memory
    stays flat (uvicorn alone queues them all and keeps reading)."""
    with connect(live_server) as warm:  # the first answers allocate what every later one reuses
        warm.sendall(HEALTH * 4)
        read_answers(warm, 4)
    before = resident_kib(live_server.pid)
    sock = connect(live_server)
    sock.settimeout(5)
    sent = 0
    try:
        with sock:
            for _ in range(2000):
                sock.sendall(HEALTH * 500)
                sent += 500
                sock.recv(65536)
    except OSError:
        pass  # the server ended the connection
    assert sent < 2000 * 500  # it did not read a million requests ahead
    assert resident_kib(live_server.pid) - before < 16 * 1024


def test_chunked_trailers_count_towards_the_head_limit_and_are_dropped(live_server: LiveServer, settings: Any) -> None:
    world = seed_world(settings)
    form = urlencode({"app_id": world.app_id, "secret": world.secret, "grant_type": "client_credential"}).encode()
    head = (
        b"POST /oauth/credit/token HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        b"content-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    chunked = b"%x\r\n" % len(form) + form + b"\r\n0\r\n"
    with connect(live_server) as sock:  # a small trailer: the request goes through
        sock.sendall(head + chunked + b"x-trailer: 1\r\n\r\n")
        assert read_answers(sock, 1)[0][1]["code"] == 0

    before = resident_kib(live_server.pid)
    line = b"x-trailer: " + b"v" * 8000 + b"\r\n"
    sock = connect(live_server)
    got = b""
    try:
        with sock:
            sock.sendall(head + chunked)
            for _ in range(2000):  # 16 MB of trailer in small writes, so that no one read is large
                sock.sendall(line)
                time.sleep(0.0005)
            sock.sendall(b"\r\n")
            got = read_until_closed(sock)
    except OSError:
        pass  # reset while still sending: the server stopped reading
    assert b'"code":0' not in got
    assert resident_kib(live_server.pid) - before < 16 * 1024


def test_input_that_is_not_http_gets_the_envelope(live_server: LiveServer) -> None:
    with connect(live_server) as sock:
        sock.sendall(b"HELLO THERE\r\n\r\n")
        [(head, envelope)] = answers(read_until_closed(sock))
    assert head.startswith(b"HTTP/1.1 400 ") and b"content-type: application/json" in head.lower()
    assert envelope == {"code": 40001, "msg": "The request is not valid HTTP.", "error": "invalid_request",
                        "result": None}  # fmt: skip


def test_an_oversized_head_still_gets_431(live_server: LiveServer) -> None:
    with connect(live_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"a" * 40_000 + b"\r\n\r\n")
        assert_refused(read_until_closed(sock))


@pytest.mark.parametrize(
    ("bad", "status"),
    [(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-big: " + b"a" * 40_000 + b"\r\n\r\n", b"431"),
     (b"xyz\r\n\r\n", b"400")],
)  # fmt: skip
def test_requests_read_before_a_refused_one_are_answered_first(
    live_server: LiveServer, settings: Any, bad: bytes, status: bytes
) -> None:
    world = seed_world(settings)
    with connect(live_server) as sock:
        sock.sendall(token_request(world.app_id, world.secret) + HEALTH + bad)
        found = answers(read_until_closed(sock))
    assert [head.split(b" ")[1] for head, _ in found] == [b"200", b"200", status]
    assert found[0][1]["code"] == 0 and found[1][1]["result"] == {"status": "ok"}
    assert found[2][1]["code"] == int(status) * 100 + 1


def test_an_upgrade_request_is_answered_as_plain_http(live_server: LiveServer) -> None:
    """The server has no WebSocket route and runs uvicorn without WebSockets: an upgrade request,
    fresh, after another request or with a body, is answered as HTTP (uvicorn's WebSocket side left
    some such connections open with no answer); nothing in the log asks to install a library."""
    upgrade = (
        b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n"
    )
    for sent, count in ((upgrade + b"\r\n", 1), (HEALTH + upgrade + b"\r\n", 2),
                        (upgrade + b"content-length: 5\r\n\r\nhello", 1)):  # fmt: skip
        with connect(live_server) as sock:
            sock.settimeout(10)
            sock.sendall(sent)
            found = read_answers(sock, count)
        assert [envelope["result"] for _, envelope in found] == [{"status": "ok"}] * count
    assert "WebSocket" not in live_server.log.read_text()


def test_a_pipelined_body_held_while_the_request_before_is_answered_is_read_after(
    live_server: LiveServer, settings: Any
) -> None:
    """The body of a request waiting behind another is held unparsed; the answer before it must
    resume the parsing (a 5 KB body in the same write as a GET hung, once, with no answer)."""
    world = seed_world(settings)
    form = urlencode({"app_id": world.app_id, "secret": world.secret, "grant_type": "client_credential"})
    body = (form + "&" + "&".join(f"p{n}={'v' * 480}" for n in range(10))).encode()  # 5 KB, 13 fields
    assert 4096 < len(body) < 16384
    with connect(live_server) as sock:
        sock.settimeout(10)
        sock.sendall(HEALTH + FORM_HEAD + b"content-length: %d\r\n\r\n" % len(body) + body)
        found = read_answers(sock, 2)
    assert found[0][1]["result"] == {"status": "ok"} and found[1][1]["code"] == 0


def test_a_waiting_request_with_a_broken_body_is_refused_in_its_turn(live_server: LiveServer) -> None:
    broken = (
        b"POST /oauth/credit/token HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\nZZ\r\n"  # not a chunk size
    )
    with connect(live_server) as sock:
        sock.sendall(HEALTH + broken)
        found = answers(read_until_closed(sock))
    assert [head.split(b" ")[1] for head, _ in found] == [b"200", b"400"]
    assert found[1][1]["msg"] == "The request is not valid HTTP."


def test_a_client_reset_while_pipelined_answers_wait_for_it_to_read_logs_no_error(live_server: LiveServer) -> None:
    """A client pipelines large answers without reading them, then resets the connection. The
    answer being written waits for the client to read (flow control); uvicorn marks only the
    newest request of the connection as disconnected, so the one being answered went on writing
    to the closed connection and the log got ``Exception in ASGI application``."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = live_server.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    sock.sendall(b"GET /openapi.json HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n" * 15)
    time.sleep(1.0)  # the first answer fills the buffers; the others wait their turn
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close: reset
    sock.close()
    time.sleep(1.0)
    with connect(live_server) as probe:  # still serving
        probe.sendall(HEALTH)
        assert read_answers(probe, 1)[0][1]["result"] == {"status": "ok"}
    assert "Exception in ASGI application" not in live_server.log.read_text()
