"""Instructions per request spent in the server's HTTP protocol alone (``web.serve``), for callgrind.

    valgrind --tool=callgrind --callgrind-out-file=/tmp/p.1000 .venv/bin/python bench/proto.py 1000
    valgrind --tool=callgrind --callgrind-out-file=/tmp/p.6000 .venv/bin/python bench/proto.py 6000

One ``BoundedHttpToolsProtocol`` with ``serve``'s uvicorn options (``UVICORN_OPTIONS``) on a
transport that keeps what it is given, uvloop, and an ASGI app that reads the body and answers two
bytes: ``N`` form POSTs of the app-token's size, one per read, each answered before the next. The
difference of the two runs' "Collected" totals over the difference of ``N`` (5,000 here) is the
protocol's and uvicorn's cost of a request, start-up excluded; ``PYTHONPATH=<worktree>/src``
measures another commit (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.server import ServerState

from openplatform.web.serve import UVICORN_OPTIONS, BoundedHttpToolsProtocol

REQUEST = (
    b"POST /oauth/credit/token HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 96\r\n\r\n" + b"a" * 96
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class Transport(asyncio.Transport):
    """Keeps what is written and whether it was closed; reading is never really paused (the
    requests come one at a time). ``tests/web/test_one_write.py`` uses it too."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[Any] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5555)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def main(requests: int) -> None:
    config = Config(app=app, log_config=None, **UVICORN_OPTIONS)  # serve's options
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Tue, 01 Dec 2026 06:00:00 GMT")]  # as uvicorn's server sets them
    protocol = BoundedHttpToolsProtocol(config=config, server_state=state, app_state={})
    transport = Transport()
    protocol.connection_made(transport)
    for _ in range(200 + requests):  # 200 to warm up, in both runs alike
        protocol.data_received(REQUEST)
        await asyncio.sleep(0)  # the app's task runs
        await asyncio.sleep(0)  # and its answer completes
    writes = len(transport.writes)
    assert writes >= 200 + requests, writes
    print(f"{requests} requests answered, {writes / (200 + requests):.2f} writes each")


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
