"""A webhook receiver on 127.0.0.1 for the tests (console, webhook delivery, key rotation): a plain
HTTP server that keeps every POST it gets and answers it from a script of its path, else by ``status``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson

Answer = tuple[int, bytes, dict[str, str]]  # status, body, extra headers
ACK: Answer = (200, b'{"code": 0}', {})  # what acknowledges a notification (SPEC §3)


@dataclass(frozen=True)
class Received:
    """One POST as it arrived; ``headers`` reads names in any case."""

    path: str
    headers: httpx.Headers
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


class Receiver:
    """What the server got and what it answers.

    ``url`` (``base`` + ``/hook``) and any path without a script answer ``status``: ``{"code": 0}``
    with 200, which acknowledges, ``{"code": 1}`` otherwise (a refusal by default). ``hook()`` gives a
    fresh URL answering a script of its own. ``delay`` (seconds) holds every answer back.
    """

    def __init__(self) -> None:
        self.base = ""
        self.url = ""
        self.status = 500
        self.delay = 0.0
        self.scripts: dict[str, list[Answer]] = {}
        self.received: list[Received] = []
        self.lock = threading.Lock()

    def hook(self, *answers: Answer) -> str:
        """A fresh URL answering ``answers`` in turn, the last one forever (default: ``ACK``)."""
        with self.lock:
            path = f"/hook/{len(self.scripts)}"
            self.scripts[path] = list(answers or [ACK])
        return self.base + path

    def requests(self, url: str | None = None) -> list[Received]:
        """What reached ``url`` (every path when None), in order of arrival."""
        path = None if url is None else url.removeprefix(self.base)
        with self.lock:
            return [r for r in self.received if path is None or r.path == path]

    @property
    def bodies(self) -> list[bytes]:
        return [r.body for r in self.requests()]

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def wait_for(self, count: int, url: str | None = None, within: float = 20.0) -> Received:
        """The ``count``-th POST to ``url`` (any path when None), once it has arrived (blocks; for
        tests that drive other processes, not the event loop). AssertionError after ``within`` s."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            got = self.requests(url)
            if len(got) >= count:
                return got[count - 1]
            time.sleep(0.05)
        raise AssertionError(f"webhook {count} never arrived")

    def answer(self, path: str, headers: httpx.Headers, body: bytes) -> Answer:
        """Keep the POST; the answer its path's script gives next, else the one ``status`` gives."""
        with self.lock:
            self.received.append(Received(path, headers, body))
            script = self.scripts.get(path)
            if script is None:
                return ACK if self.status == 200 else (self.status, b'{"code": 1}', {})
            return script.pop(0) if len(script) > 1 else script[0]


@contextmanager
def serving() -> Iterator[Receiver]:
    """A receiver on a free port of 127.0.0.1 while the block runs."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, answer, extra = state.answer(self.path, httpx.Headers(self.headers.items()), body)
            time.sleep(state.delay)
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **extra}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        # socketserver's default backlog of 5 overflows when several webhook workers send their
        # batches at once under load; connections then fail (ReadError) and deliveries are retried
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    state.url = f"{state.base}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
