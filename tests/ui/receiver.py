"""A webhook receiver on 127.0.0.1 for the console's tests: a plain HTTP server answering every POST."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """Answers every POST with ``status`` (``{"code": 0}`` with 200, which acknowledges; ``{"code": 1}``
    otherwise) and keeps the bodies it got."""

    def __init__(self) -> None:
        self.status = 500
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()
        self.url = ""

    def count(self) -> int:
        with self.lock:
            return len(self.bodies)


@contextmanager
def serving() -> Iterator[Receiver]:
    """A receiver on a free port of 127.0.0.1 while the block runs (``state.url`` is its URL)."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.bodies.append(body)
                status = state.status
            answer = b'{"code": 0}' if status == 200 else b'{"code": 1}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
