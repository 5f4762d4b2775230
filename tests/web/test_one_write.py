"""An answer leaves in one write (``web.serve.OneWriteCycle``): head and body in one TCP segment.

uvicorn writes an answer's head and its body apart: two system calls and two segments an answer.
The first test counts the segments a real ``openplatform serve`` sends (the client socket's
``TCP_INFO``); the others hold the server's protocol to uvicorn's own, byte for byte, for every
kind of answer that does not fit in one write (HEAD, a streamed or chunked body, a body of the
wrong length, an app failing half-way) and for pipelined requests.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
import uvloop
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from openplatform.web.serve import HEADS, BoundedHttpToolsProtocol
from tests.conftest import LiveServer, seed_world
from tests.web.test_connection_input import answers, connect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from proto import Transport  # noqa: E402 - bench/ is not a package

# ``struct tcp_info`` (linux/tcp.h): tcpi_data_segs_in, the segments that carried data, since Linux 4.6.
DATA_SEGS_IN = struct.Struct("=I")
DATA_SEGS_IN_OFFSET = 152
TCP_INFO_SIZE = 160


def data_segments_in(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    assert len(info) >= TCP_INFO_SIZE, "this kernel's tcp_info has no tcpi_data_segs_in"
    return int(DATA_SEGS_IN.unpack_from(info, DATA_SEGS_IN_OFFSET)[0])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_answer_of_a_real_server_is_one_segment(live_server: LiveServer, settings: Any) -> None:
    world = seed_world(settings)
    form = f"app_id={world.app_id}&secret={world.secret}&grant_type=client_credentials".encode()
    token = b"POST /oauth/credit/token HTTP/1.1\r\nhost: a\r\ncontent-type: application/x-www-form-urlencoded\r\n"
    token += b"content-length: %d\r\n\r\n" % len(form) + form
    requests = [b"GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n", token, b"GET /nowhere HTTP/1.1\r\nhost: a\r\n\r\n"]
    envelopes = []
    with connect(live_server) as sock:
        for request in requests:
            before = data_segments_in(sock)
            sock.sendall(request)
            raw = b""
            while not answers_complete(raw):
                raw += sock.recv(65536)
            assert data_segments_in(sock) - before == 1, (request, raw)
            envelopes.append(answers(raw)[0][1])
    assert envelopes[0] == {"code": 0, "msg": "success", "result": {"status": "ok"}}
    assert envelopes[1]["code"] == 0 and envelopes[1]["result"]["access_token"], envelopes[1]
    assert envelopes[2]["code"] != 0, envelopes[2]


def answers_complete(raw: bytes) -> bool:
    if not raw:
        return False
    try:
        return len(answers(raw)) == 1
    except (StopIteration, ValueError):
        return False


# ---------------------------------------------------------------------- against uvicorn's protocol


Message = dict[str, Any]
START: Message = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}


def answering(*messages: Message, fail: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        for message in messages:
            await send(dict(message))
        if fail:
            raise RuntimeError("the app failed half-way")

    return app


def serve(
    protocol_class: type[HttpToolsProtocol], app: Any, *requests: bytes, dated: list[tuple[bytes, bytes]] | None = None
) -> Transport:
    async def run() -> Transport:
        config = Config(app=app, http="httptools", loop="uvloop", access_log=False, log_config=None)
        config.load()
        state = ServerState()
        state.default_headers = dated if dated is not None else []
        protocol = protocol_class(config=config, server_state=state, app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        protocol.data_received(b"".join(requests))
        for _ in range(20):
            await asyncio.sleep(0)
        return transport

    return uvloop.run(run())


GET = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n"
WHOLE = (START, {"type": "http.response.body", "body": b"hello"})
CASES = {
    "a whole body": (WHOLE, [GET]),
    "pipelined whole bodies": (WHOLE, [GET, GET, GET]),
    "HEAD": (WHOLE, [b"HEAD / HTTP/1.1\r\nhost: a\r\n\r\n"]),
    "HTTP/1.0, closed after": (WHOLE, [b"GET / HTTP/1.0\r\nhost: a\r\n\r\n"]),
    "connection: close": (WHOLE, [b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"]),
    "an empty body": (
        ({"type": "http.response.start", "status": 204, "headers": []}, {"type": "http.response.body"}),
        [GET],
    ),
    "a body in parts": (
        (
            START,
            {"type": "http.response.body", "body": b"he", "more_body": True},
            {"type": "http.response.body", "body": b"llo"},
        ),
        [GET],
    ),
    "chunked": (
        (
            {"type": "http.response.start", "status": 200, "headers": []},
            {"type": "http.response.body", "body": b"he", "more_body": True},
            {"type": "http.response.body", "body": b"llo"},
        ),
        [GET, GET],
    ),
    "a body shorter than its length": ((START, {"type": "http.response.body", "body": b"hell"}), [GET]),
    "a body longer than its length": ((START, {"type": "http.response.body", "body": b"hello!"}), [GET]),
    "a POST whose body is read": (
        WHOLE,
        [b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc", GET],
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_server_writes_what_uvicorn_writes(case: str) -> None:
    messages, requests = CASES[case]
    ours = serve(BoundedHttpToolsProtocol, answering(*messages), *requests)
    theirs = serve(HttpToolsProtocol, answering(*messages), *requests)
    assert b"".join(ours.writes) == b"".join(theirs.writes)
    assert ours.closed == theirs.closed
    if case in ("a whole body", "pipelined whole bodies", "connection: close", "an empty body"):
        assert len(ours.writes) == len(requests) and len(theirs.writes) == 2 * len(requests)


def test_an_app_failing_after_its_head_closes_with_nothing_written() -> None:
    """uvicorn wrote the head, then closed: a cut answer. The head is held, so nothing is written."""
    failing = answering(START, fail=True)
    ours = serve(BoundedHttpToolsProtocol, failing, GET)
    theirs = serve(HttpToolsProtocol, failing, GET)
    assert ours.closed and theirs.closed
    assert ours.writes == [] and bytes(theirs.writes[0]).startswith(b"HTTP/1.1 200 OK\r\n")


def test_the_written_out_uvicorn_methods_still_match_uvicorn() -> None:
    """``start_cycle`` and ``on_response_complete`` write out uvicorn 0.54's methods (pyproject pins
    that release): what they call and pass must still exist, or every request would go unanswered."""
    passed = {"scope", "transport", "flow", "logger", "access_logger", "access_log", "default_headers"}
    passed |= {"message_event", "expect_100_continue", "keep_alive", "on_response"}
    assert set(inspect.signature(RequestResponseCycle.__init__).parameters) - {"self"} == passed
    for name in ("_start_asgi_task", "_should_upgrade", "timeout_keep_alive_handler", "_unset_keepalive_if_required"):
        assert callable(getattr(HttpToolsProtocol, name, None)), name
    source = inspect.getsource(HttpToolsProtocol.on_headers_complete)
    assert "self.cycle = RequestResponseCycle(" in source and "self._start_asgi_task(self.cycle, app)" in source
    assert "self.loop.call_later(" in inspect.getsource(HttpToolsProtocol.on_response_complete)


KERNEL_LIKE: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"cache-control", b"no-store"), (b"content-type", b"application/json"), (b"content-length", b"5")],
}


@pytest.mark.parametrize(
    "headers",
    [
        KERNEL_LIKE["headers"],
        [[b"content-type", b"application/json"], [b"content-length", b"5"]],  # pairs as lists: not a key
        [(b"Content-Length", b"5"), (b"Connection", b"close")],  # names lower-cased, the connection closed
        [(b"content-length", b"5"), (b"connection", b"keep-alive, close")],
    ],
)
def test_a_head_made_again_is_what_uvicorn_writes(headers: list[Any]) -> None:
    """A head is made once for its status, headers, keep-alive and method (``HEADS``), and then
    taken from there; with a date line that changes between servers, as uvicorn's server changes
    it every second, each answer is still uvicorn's, byte for byte."""
    messages = ({**KERNEL_LIKE, "headers": headers}, {"type": "http.response.body", "body": b"hello"})
    http10 = b"GET / HTTP/1.0\r\nhost: a\r\n\r\n"
    for date in (b"Tue, 01 Dec 2026 06:00:00 GMT", b"Tue, 01 Dec 2026 06:00:01 GMT"):
        dated = [(b"date", date)]
        for requests in ([GET, GET, GET], [http10], [b"HEAD / HTTP/1.1\r\nhost: a\r\n\r\n", GET]):
            ours = serve(BoundedHttpToolsProtocol, answering(*messages), *requests, dated=dated)
            theirs = serve(HttpToolsProtocol, answering(*messages), *requests, dated=dated)
            assert b"".join(ours.writes) == b"".join(theirs.writes), (headers, requests)
            assert ours.closed == theirs.closed
    hashable = all(type(pair) is tuple for pair in headers)
    assert ((200, tuple(map(tuple, headers)), True, False) in HEADS) == hashable  # made once, then taken


def test_headers_given_as_an_iterator_are_read_once() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        pairs = iter([(b"content-length", b"5")])
        await send({"type": "http.response.start", "status": 200, "headers": pairs})
        await send({"type": "http.response.body", "body": b"hello"})

    ours = serve(BoundedHttpToolsProtocol, app, GET, GET)
    theirs = serve(HttpToolsProtocol, app, GET, GET)
    assert b"".join(ours.writes) == b"".join(theirs.writes)
    assert b"content-length: 5" in b"".join(ours.writes)


@pytest.mark.parametrize(
    "dated",
    [
        [(b"date", b"Tue, 01 Dec 2026 06:00:00 GMT"), (b"connection", b"close")],
        [(b"date", b"Tue, 01 Dec 2026 06:00:00 GMT"), (b"content-length", b"3")],
        [(b"date", b"Tue, 01 Dec 2026 06:00:00 GMT\r\nx-injected: 1")],
        [(b"server", b"uvicorn"), (b"date", b"Tue, 01 Dec 2026 06:00:00 GMT")],
    ],
)
def test_server_lines_other_than_one_date_take_uvicorns_way(dated: list[tuple[bytes, bytes]]) -> None:
    """Heads are kept only under one valid ``date`` line (``serve``'s); other server lines change
    what uvicorn writes and does, so a head kept under one must not serve under another."""
    plain = [(b"date", b"Tue, 01 Dec 2026 06:00:00 GMT")]
    for lines in (plain, dated, plain, dated):
        ours = serve(BoundedHttpToolsProtocol, answering(*WHOLE), GET, GET, dated=lines)
        theirs = serve(HttpToolsProtocol, answering(*WHOLE), GET, GET, dated=lines)
        assert b"".join(ours.writes) == b"".join(theirs.writes), lines
        assert ours.closed == theirs.closed


@pytest.mark.parametrize(
    "pair",
    [
        (b"set-cookie", b"session=secret"),
        (b"Location", b"https://app.example/cb?code=secret"),
        (b"content-type", memoryview(bytearray(b"text/plain"))),  # unhashable: uvicorn's way
    ],
)
def test_heads_with_secrets_or_odd_values_are_not_kept(pair: tuple[bytes, Any]) -> None:
    messages = (
        {**START, "headers": [pair, (b"content-length", b"5")]},
        {"type": "http.response.body", "body": b"hello"},
    )
    dated = [(b"date", b"Tue, 01 Dec 2026 06:00:00 GMT")]
    ours = serve(BoundedHttpToolsProtocol, answering(*messages), GET, GET, dated=dated)
    theirs = serve(HttpToolsProtocol, answering(*messages), GET, GET, dated=dated)
    assert b"".join(ours.writes) == b"".join(theirs.writes)
    if type(pair[1]) is bytes:  # a secret's: no kept head names it
        assert not any(pair[0] in (name for name, _value in key[1]) for key in HEADS)
