"""Run the app under uvicorn (uvloop + httptools), logging text or JSON lines (``openplatform.logs``).

uvicorn's access log is off on purpose: it prints query strings, and the
documented API carries codes and tokens there (``?access_token=``); the app's
own (``web.access_log``) logs paths only. uvicorn's
proxy-headers middleware is off too: by default it believes X-Forwarded-For from
127.0.0.1, which would let anyone on the host pass an IP whitelist; the app
honours that header only from ``OPENPLATFORM_TRUSTED_PROXIES`` (``core.ip_policy``).
What a connection's input may hold in memory is bounded (``BoundedHttpToolsProtocol``, SPEC §9).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import urllib.parse
import weakref
from typing import Any

import httptools
import uvicorn
from starlette.applications import Starlette
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope  # what uvicorn queues
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.flow_control import FlowControl, service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from openplatform import logs
from openplatform.config import Settings
from openplatform.errors import OAuthError
from openplatform.storage.cache import BoundedCache
from openplatform.web.access_log import AccessLog
from openplatform.web.app import create_app
from openplatform.web.limits import HEAD_READ_LIMIT, refusal
from openplatform.web.metrics import shared_directory
from openplatform.web.workers import supervise

# Collect the young generation every 20,000 net allocations instead of 700.
GC_THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path of a long-running server.

    Everything alive after start-up (modules, routes, settings: about 100,000
    objects) is moved out of the collector's sight, so full collections only
    walk what the server creates later (mostly its caches). In the benchmark's
    in-process profile this took the collector from about 60 to 2 µs per app
    token and removed full collections of 100+ ms from the tail latency.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# After refusing a request, read and drop what the client still sends for this long, then close:
# closing at once, with its data unread, would reset the connection before it reads the answer.
LINGER_SECONDS = 2.0
# A read longer than this goes to the parser in slices of it, so what the parser did within each
# slice is known: the head bytes of a read carrying a head and a large body are counted to within
# one slice (the app answers heads over 16 KiB itself, so the slack does not show), and reading
# stops within one slice of a pipelined request.
SLICE_BYTES = 4096
# Requests read ahead of the one being answered (HTTP/1.1 pipelining). One more ends the
# connection after the answers to those ahead of it; the client retries the rest (RFC 9112 §9.3.2).
MAX_PIPELINED = 16
# Bytes received and held unparsed while a pipelined request waits for its turn; past it, the
# connection closes. Reading stays paused while input is held (``HoldingFlow``), so what is held is
# the rest of the read that began it, at most uvloop's 256 KiB: the bound is only a backstop.
MAX_HELD_BYTES = 1024 * 1024


# How often a server looks for keep-alive connections idle past their timeout (``IdleSweep``): one
# is closed between ``timeout_keep_alive`` (uvicorn's option, 5 s by default) and this much later.
IDLE_SWEEP_SECONDS = 1.0
# A connection whose unsent answer has not shrunk for this long (its client reads nothing) is aborted
# by the same sweep, freeing what it holds; a close waits for that buffer to drain, so this also ends
# a closing connection the client never reads. uvicorn has no such limit; nginx's ``send_timeout``
# (60 s without progress) is the model. Progress is seen once a sweep (``IDLE_SWEEP_SECONDS``).
SEND_TIMEOUT_SECONDS = 60.0


class IdleSweep:
    """Closes one server's keep-alive connections once idle for its ``timeout_keep_alive``, and
    aborts those whose client has read nothing for ``SEND_TIMEOUT_SECONDS`` (SPEC §9).

    uvicorn arms a timer after each answer and cancels it when the connection's next request comes:
    about 3 µs an answer (docs/benchmarks.md, "One keep-alive timer a server"). Here an answer only
    notes when its connection became idle (``BoundedHttpToolsProtocol.idle_since``), and this one
    timer a second closes the connections idle that long. It runs while the server has connections.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, connections: set[Any], timeout: float) -> None:
        self.loop = loop
        self.connections = connections  # the server's, as uvicorn's protocols add and discard themselves
        self.timeout = timeout
        self.handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self.handle is None:
            self.handle = self.loop.call_later(IDLE_SWEEP_SECONDS, self.sweep)

    def sweep(self) -> None:
        self.handle = None
        now = self.loop.time()
        for protocol in list(self.connections):
            since = getattr(protocol, "idle_since", None)
            if since is not None and now - since >= self.timeout:
                protocol.timeout_keep_alive_handler()
            if isinstance(protocol, BoundedHttpToolsProtocol):
                protocol.check_progress(now)
        if self.connections:
            self.start()


SWEEPS: weakref.WeakKeyDictionary[ServerState, IdleSweep] = weakref.WeakKeyDictionary()


class HoldingFlow(FlowControl):
    """uvicorn's flow control for one connection, except that reading stays paused while the
    protocol holds input or requests wait: uvicorn resumes reading after each answer and whenever
    an app awaits its body, and each read would land in the held input (a client pipelining small
    requests before a large body grew it by a read per answer)."""

    def __init__(self, transport: asyncio.Transport, protocol: BoundedHttpToolsProtocol) -> None:
        super().__init__(transport)
        self.protocol = protocol

    def resume_reading(self) -> None:
        # FlowControl.resume_reading's own two lines, not a call to it: this runs twice a request
        # (an app's receive(), each answer), and super() cost 3,700 instructions a request there.
        if self.read_paused and not (self.protocol.held or self.protocol.pipeline):
            self.read_paused = False
            self._transport.resume_reading()


# Heads uvicorn's ``send`` made, after the server's own lines (``default_headers``), with the state it
# set, by what decides them: (status, the app's header pairs, keep-alive, HEAD) -> (the head's rest,
# expected_content_length, chunked_encoding, keep_alive). The API's answers repeat a few sets of
# headers; any other answer costs one lookup and one insert (``OneWriteCycle.send``).
HEADS = BoundedCache(1024)
MAX_MADE_BYTES = 1024  # a longer head is not kept (the API's are about 150 bytes)
# Heads that carry what is not kept beyond its answer: cookies (sessions) and redirects (codes).
UNKEPT = (b"set-cookie", b"location")
_DATED: list[Any] = [None, None]  # the server's own lines last formatted: [default_headers, their bytes]


def dated_lines(default_headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The head line of uvicorn's ``default_headers`` when they are one valid ``date`` pair, as under
    ``serve`` (uvicorn's server replaces the list once a second), formatted once for each list;
    None for any other server lines, whose heads are then not kept (``HEADS``)."""
    if default_headers is not _DATED[0]:
        line = None
        if len(default_headers) == 1 and default_headers[0][0] == b"date":
            value = default_headers[0][1]
            if type(value) is bytes and not HEADER_VALUE_RE.search(value):
                line = b"date: " + value + b"\r\n"
        _DATED[:] = [default_headers, line]
    return _DATED[1]  # type: ignore[no-any-return]


def memorable(headers: list[Any]) -> bool:
    """Whether a head of these pairs may be kept: every name and value bytes, none of ``UNKEPT``."""
    return all(type(name) is bytes and type(value) is bytes and name.lower() not in UNKEPT for name, value in headers)


class OneWriteCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, writing an answer's head and body in one write.

    uvicorn writes the head when the app sends ``http.response.start`` and the body when it sends
    ``http.response.body``: two writes, so two system calls and two TCP segments an answer. Here
    the head (built and checked by uvicorn's own ``send``) is held until the body comes; a whole
    body of the declared ``content-length`` leaves with it in one write. Anything else (a streamed
    or chunked body, HEAD, a body of the wrong length) writes the held head first and goes on
    through uvicorn's ``send``, as before. On loopback one write less is about 2.3 µs of CPU an
    answer (``bench/sends.py``; docs/benchmarks.md, "One write an answer").

    If the app fails between the two messages, uvicorn closes the connection, as it did after a
    written head: the client gets no partial answer instead of a cut one.

    A head is made by uvicorn's ``send`` once for each status, list of header pairs, keep-alive and
    HEAD, and then taken from ``HEADS``: uvicorn checks each pair with two regular expressions and
    lower-cases its name: 27,700 instructions fewer an answer of the kernel's four header lines and
    ``date`` (bench/proto.py, 135,528 -> 107,800; docs/benchmarks.md, "One head a set of headers").
    The server's own lines before the app's (``default_headers``: only ``date`` under ``serve``, no
    ``connection`` or length among them) are formatted apart.
    """

    head: bytes | None = None  # the answer's head, built and not yet written

    def write(self, data: bytes) -> None:
        """The transport of uvicorn's ``send`` while it builds the head: keeps it (see ``send``)."""
        self.head = data

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:  # uvicorn's send begins so, too
            await self.flow.drain()
        if self.disconnected:
            return
        head = self.head
        if head is None:
            if self.response_started or message["type"] != "http.response.start":
                await RequestResponseCycle.send(self, message)
                return
            headers, status = message.get("headers", ()), message.get("status")
            dated = dated_lines(self.default_headers)
            key = None
            if type(headers) is list and dated is not None and not self.access_log:  # an iterable is read once
                try:
                    key = (status, tuple(headers), self.keep_alive, self.scope["method"] == "HEAD")
                    made = HEADS.get(key)
                except (TypeError, ValueError):  # unhashable pairs or values: uvicorn's own way
                    key = made = None
                if made is not None:
                    rest, self.expected_content_length, self.chunked_encoding, self.keep_alive = made
                    self.response_started = True
                    self.waiting_for_100_continue = False
                    self.head = b"".join((STATUS_LINE[status], dated, rest))
                    return
            transport, self.transport = self.transport, self  # type: ignore[assignment]
            try:
                await RequestResponseCycle.send(self, message)  # the head goes to ``write``
            finally:
                self.transport = transport
            if key is not None and self.head is not None and dated is not None and memorable(headers):
                start = STATUS_LINE[status] + dated
                if self.head.startswith(start) and len(self.head) - len(start) <= MAX_MADE_BYTES:
                    made = (
                        self.head[len(start) :],
                        self.expected_content_length,
                        self.chunked_encoding,
                        self.keep_alive,
                    )
                    HEADS.put(key, made)
            return
        self.head = None
        body = message.get("body", b"")
        if (
            message["type"] == "http.response.body"
            and not message.get("more_body", False)
            and not self.chunked_encoding  # a content-length was given, or a 204 / 304 (no body)
            and len(body) == self.expected_content_length
            and self.scope["method"] != "HEAD"
        ):
            # uvicorn's body branch for this case, with the head in front
            self.transport.write(b"".join((head, body)))  # body may be any bytes-like object
            self.expected_content_length = 0
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
            return
        self.transport.write(head)
        await RequestResponseCycle.send(self, message)


class PipelineFull(Exception):
    """Raised from a parser callback to stop parsing: MAX_PIPELINED requests already wait."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, holding a bounded amount of each connection's input (SPEC §9).

    httptools and uvicorn bound nothing themselves: a request head (or a chunked body's trailer)
    of any size would be held in memory, and pipelined requests would be queued without end, each
    with its body. So:

    - a request head is read up to ``HEAD_READ_LIMIT`` bytes (request line and headers, counted
      to within ``SLICE_BYTES``); past it the answer is the app's 431 / 43101 and the connection
      closes. Chunked trailers count the same way and are dropped, not added to the headers (too
      many end the connection: their request is still being read, so it cannot be answered);
    - input the HTTP parser refuses gets 400 / 40001 with the envelope, not uvicorn's plain text;
    - requests read before a refused one are answered first;
    - while a pipelined request waits for its turn, reading pauses and what was already received
      is held unparsed (at most ``MAX_HELD_BYTES``); at most ``MAX_PIPELINED`` requests wait.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0  # read since the parser last ended a head or gave body
        self.passed = False  # the parser did one of those within the slice being fed
        self.body_bytes = 0  # body bytes the parser gave within the slice being fed
        self.held = bytearray()  # received and not yet parsed: a pipelined request waits
        self.ending = False  # no more requests are read on this connection
        self.idle_since: float | None = None  # the loop's time of the answer after which none is asked
        self.answering: RequestResponseCycle | None = None  # the cycle whose app was started last
        self.unsent = 0  # bytes the transport held at the last sweep (``check_progress``)
        self.stalled_since: float | None = None  # since when they have not shrunk

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = HoldingFlow(transport, self)
        sweep = SWEEPS.get(self.server_state)
        if sweep is None or sweep.loop is not self.loop:
            sweep = SWEEPS[self.server_state] = IdleSweep(self.loop, self.connections, self.timeout_keep_alive)
        sweep.start()

    def check_progress(self, now: float) -> None:
        """``IdleSweep``'s look at what this connection has not sent yet: aborted once that has not
        shrunk for ``SEND_TIMEOUT_SECONDS`` (the client reads nothing; SPEC §9)."""
        unsent = self.transport.get_write_buffer_size()
        if not unsent:
            self.stalled_since = None
        elif self.stalled_since is None or unsent < self.unsent:
            self.stalled_since = now  # the client read some since the last sweep
        elif now - self.stalled_since >= SEND_TIMEOUT_SECONDS:
            self.transport.abort()  # a close would wait for the buffer to drain: for ever
        self.unsent = unsent

    def connection_lost(self, exc: Exception | None) -> None:
        # uvicorn marks only the newest cycle (``self.cycle``) disconnected; with requests pipelined
        # behind it, the one being answered is an older one, and its app, woken from waiting for the
        # client to read, wrote to the closed transport (an error in the log).
        answering = self.answering
        if answering is not None and answering is not self.cycle and not answering.response_complete:
            answering.disconnected = True
            answering.message_event.set()
        super().connection_lost(exc)

    # ------------------------------------------------------------------ keep-alive (``IdleSweep``)

    def on_response_complete(self) -> None:
        """uvicorn's, noting when the connection became idle instead of arming a timer."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.idle_since = None
        self.flow.resume_reading()
        if self.pipeline:  # the next waiting request starts
            cycle, app = self.pipeline.pop()
            self.answering = cycle
            self._start_asgi_task(cycle, app)
        else:
            self.idle_since = self.loop.time()

    def _unset_keepalive_if_required(self) -> None:
        self.idle_since = None

    # ------------------------------------------------------------------ reading

    def data_received(self, data: bytes) -> None:
        if self.held or self.pipeline or self.ending or len(data) > SLICE_BYTES:
            self.receive_in_slices(data)
            return
        # The usual read: one request, or its end, parsed whole.
        self.idle_since = None  # a request comes: not idle (``IdleSweep``)
        if self.feed(data) and self.pipeline:  # uvicorn paused reading when it queued one; stay paused
            self.flow.pause_reading()

    def receive_in_slices(self, data: bytes) -> None:
        if self.ending:
            return
        if self.held or self.pipeline:  # what came first is parsed first, after those waiting
            self.hold(data)
            return
        self.idle_since = None
        view = memoryview(data)
        for start in range(0, len(data), SLICE_BYTES):
            if self.pipeline:  # a request waits for its turn: parse no further until then
                self.hold(view[start:])
                return
            if not self.feed(view[start : start + SLICE_BYTES]):
                return

    def feed(self, piece: bytes | memoryview) -> bool:
        """Parse one read, or one slice of a large one; False when the connection is done with
        (refused or ending). Counts the bytes of the head as they come (``HEAD_READ_LIMIT``)."""
        self.passed = False
        self.body_bytes = 0
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserError as exc:
            self.parser_failed(exc)
            return False
        except httptools.HttpParserUpgrade:
            self.upgrade()
            return False
        not_body = len(piece) - self.body_bytes
        self.head_bytes = not_body if self.passed else self.head_bytes + not_body
        if self.head_bytes > HEAD_READ_LIMIT:
            self.refuse(OAuthError("request_headers_too_large"))
            return False
        return True

    def parser_failed(self, exc: httptools.HttpParserError) -> None:
        if isinstance(exc.__context__, PipelineFull):  # httptools wraps what a callback raises
            self.end_after_pipeline()
        else:
            self.refuse(OAuthError("invalid_request", "The request is not valid HTTP."))

    def upgrade(self) -> None:
        if self._should_upgrade():  # pragma: no cover - serve runs uvicorn with ws="none"
            self.handle_websocket_upgrade()

    def _unsupported_upgrade_warning(self) -> None:
        # uvicorn warns about a missing WebSocket library for every upgrade request; there is
        # nothing to install (``run`` turns WebSockets off): the request was answered as HTTP.
        self.logger.debug("upgrade request answered as plain HTTP")

    def hold(self, data: bytes | memoryview) -> None:
        self.held += data
        self.flow.pause_reading()
        if len(self.held) > MAX_HELD_BYTES:
            self.transport.close()

    def answered_while_holding(self) -> None:
        """The ``on_response`` of pipelined requests and of the one each waited behind (the only
        ones whose answers can come while input is held; the usual answer calls
        ``on_response_complete`` alone, about 2,500 instructions less, bench/proto.py): that
        callback (which starts the next waiting request; reading stays paused meanwhile,
        ``HoldingFlow``), then the held input is parsed once no request waits."""
        self.on_response_complete()
        if not (self.ending or self.transport.is_closing() or self.pipeline) and self.held:
            self.loop.call_soon(self.feed_held)

    def feed_held(self) -> None:
        if self.parser is None or self.ending or self.transport.is_closing() or not self.held:
            return  # the connection is gone, or data_received has fed it since
        held, self.held = bytes(self.held), bytearray()
        self.data_received(held)
        self.flow.resume_reading()  # unless it was held again (HoldingFlow)

    def end_after_pipeline(self) -> None:
        """Read nothing more; the last waiting request's answer closes the connection."""
        self.ending = True
        self.held = bytearray()
        self.flow.pause_reading()
        self.pipeline[0][0].keep_alive = False  # appendleft: [0] is the last one queued

    # ------------------------------------------------------------------ parser callbacks

    def on_headers_complete(self) -> None:
        self.passed = True
        if len(self.pipeline) >= MAX_PIPELINED:
            raise PipelineFull
        previous = self.cycle
        self.start_cycle()
        if self.pipeline:  # this request waits behind ``previous``
            for cycle in (previous, self.cycle):
                if cycle is not None and cycle.on_response == self.on_response_complete:
                    cycle.on_response = self.answered_while_holding
        # uvicorn appends header lines to the list the request's scope holds, chunked trailers too,
        # while the app already runs: they go to a list nobody reads instead (RFC 9110 §6.5.1 lets
        # a recipient drop trailers; the next message's start makes a new list). An upgrade request
        # keeps its list: uvicorn reads it again to decide on the upgrade.
        if not self.parser.should_upgrade():
            self.headers = []

    def start_cycle(self) -> None:
        """uvicorn's ``HttpToolsProtocol.on_headers_complete`` (0.54), making a ``OneWriteCycle``.

        Written out because uvicorn names its cycle class inside that method. Making uvicorn's
        cycle and then setting its ``__class__`` cost 15,500 instructions a request (bench/proto.py:
        CPython turns the instance's attributes into a dict of their own), six times the method.
        """
        parser = self.parser
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = parsed_url.query or b""
        app = self.app
        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency or len(self.tasks) >= self.limit_concurrency
        ):  # pragma: no cover - serve sets no limit; kept as uvicorn has it
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        existing_cycle = self.cycle
        self.cycle = OneWriteCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            self.answering = self.cycle
            self._start_asgi_task(self.cycle, app)
        else:  # pipelined: waits for the one before it
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    def on_body(self, body: bytes) -> None:
        self.passed = True
        self.body_bytes += len(body)
        HttpToolsProtocol.on_body(self, body)

    # ------------------------------------------------------------------ refusing

    def send_400_response(self, msg: str) -> None:
        self.refuse(OAuthError("invalid_request", "The request is not valid HTTP."))

    def refuse(self, error: OAuthError) -> None:
        """Answer ``error`` with the envelope and end the connection.

        Requests read before the bad input are answered first, then the refusal; so is a request
        whose body turns out bad while it waits its turn (its own app never runs). Bad input within
        the body of the request being answered (its chunk lines or trailers) ends the connection
        with no answer: its app is still reading it, so nothing else can be written.
        """
        self.ending = True
        self.held = bytearray()
        self.flow.pause_reading()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            if self.pipeline and self.pipeline[0][0] is cycle:  # it waits its turn: answered then
                self.pipeline[0] = (cycle, self.refusing_app(cycle, error))
            else:
                self.transport.close()
            return
        last = self.pipeline[0][0] if self.pipeline else cycle
        if last is None or last.response_complete:
            self.write_refusal(error)
            return

        def answered_then_refuse() -> None:
            self.on_response_complete()  # starts the next waiting request, if any
            if not self.pipeline and not self.transport.is_closing():
                self.write_refusal(error)

        last.on_response = answered_then_refuse

    def refusal(self, error: OAuthError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        app = self.app
        if hasattr(app, "refusal"):
            return app.refusal(error)  # type: ignore[no-any-return]
        return refusal(error, always_200=False)  # pragma: no cover - the app is always an OpenPlatformApp

    def refusing_app(self, cycle: RequestResponseCycle, error: OAuthError) -> ASGI3Application:
        """The app of ``cycle``, a request that waited its turn and turned out bad: its turn writes
        the refusal as ``write_refusal`` does, lingering for what the client still sends. Answered
        through the cycle, it closed at once, and a client still sending got a reset instead."""

        async def refuse(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            cycle.response_started = cycle.response_complete = True  # answered here, not by ``send``
            self.write_refusal(error)

        return refuse

    def write_refusal(self, error: OAuthError) -> None:
        status, headers, body = self.refusal(error)
        lines = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *headers]:
            lines.extend([name, b": ", value, b"\r\n"])
        self.transport.write(b"".join([*lines, b"\r\n", body]))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()  # read and drop what still comes, until the linger ends
        self.loop.call_later(LINGER_SECONDS, self.transport.close)  # a client reading nothing: check_progress


# uvicorn's options for every server ``run`` starts; bench/proto.py measures the protocol with them.
UVICORN_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": BoundedHttpToolsProtocol,
    "ws": "none",  # no WebSocket route: an upgrade request is answered as plain HTTP
    "access_log": False,  # see the module's docstring
    "server_header": False,
    "proxy_headers": False,  # see the module's docstring
}


def access_log_wanted(settings: Settings) -> bool:
    """Whether each request gets a line (``Settings.access_log``; unset: only with text logs).

    Off as well when the log level hides INFO lines: the wrapper would then only cost time.
    """
    wanted = settings.access_log
    if wanted is None:
        wanted = (settings.log_format or logs.default_format()) == "text"
    level = logging.getLevelName(settings.log_level.upper())
    return wanted and isinstance(level, int) and level <= logging.INFO


def create_served_app() -> Starlette | AccessLog:
    """The factory each uvicorn worker process calls (tests use create_app directly)."""
    settings = Settings()
    app = create_app(settings)
    tune_gc()
    return AccessLog(app) if access_log_wanted(settings) else app


def run(host: str, port: int, workers: int, log_level: str = "info", log_format: logs.LogFormat | None = None) -> None:
    """Serve until stopped; ``log_format`` None: text on a terminal, JSON otherwise (``logs.configure``).

    One worker: uvicorn in this process. Several: ``web.workers.supervise``, a listening socket for
    each worker. Exits with status 3 when the server could not start (uvicorn's ``STARTUP_FAILURE``).
    """
    config = uvicorn.Config(
        "openplatform.web.serve:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=logs.configure(log_level, log_format),
        log_level=log_level.lower(),
        **UVICORN_OPTIONS,
    )
    with shared_directory(workers):  # several workers: /metrics sums them (web.metrics)
        if workers > 1:
            status = supervise(config, workers)
        else:
            server = uvicorn.Server(config)
            try:
                server.run()
            except KeyboardInterrupt:  # uvicorn raises the SIGINT it caught again once it has stopped
                pass
            status = 0 if server.started else STARTUP_FAILURE
    if status:
        raise SystemExit(status)
