"""Keep-alive connections of a real ``openplatform serve`` close once idle for uvicorn's
``timeout_keep_alive`` (5 s), swept once a second (``web.serve.IdleSweep``), and never while in use."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from uvicorn.config import Config

from openplatform.web.serve import IDLE_SWEEP_SECONDS
from tests.conftest import LiveServer
from tests.web.test_connection_input import answers, connect

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about HTTP, not storage

HEALTHZ = b"GET /healthz HTTP/1.1\r\nhost: a\r\n\r\n"
TIMEOUT = Config(app=None).timeout_keep_alive  # serve keeps uvicorn's default


def ask(sock: socket.socket) -> Any:
    sock.sendall(HEALTHZ)
    raw = b""
    while True:
        chunk = sock.recv(65536)
        assert chunk, "the server closed a connection in use"
        raw += chunk
        try:
            (answer,) = answers(raw)
        except (StopIteration, ValueError):
            continue
        return answer[1]


def idle_until_closed(base: str) -> float:
    """Seconds from an answer until the server closes the otherwise idle connection."""
    with connect(base) as sock:
        sock.settimeout(TIMEOUT + 3 * IDLE_SWEEP_SECONDS)
        assert ask(sock)["code"] == 0
        answered = time.monotonic()
        assert sock.recv(65536) == b""  # the server's FIN, not a timeout of ours
        return time.monotonic() - answered


def busy_for(base: str, seconds: float) -> int:
    """Requests asked every half second on one connection for ``seconds``: how many were answered."""
    asked = 0
    with connect(base) as sock:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            assert ask(sock)["code"] == 0
            asked += 1
            time.sleep(0.5)
    return asked


def test_idle_connections_close_after_the_timeout_and_busy_ones_stay(live_server: LiveServer) -> None:
    with ThreadPoolExecutor(3) as pool:
        idle = [pool.submit(idle_until_closed, live_server) for _ in range(2)]
        busy = pool.submit(busy_for, live_server, TIMEOUT + 2)
        waited = [future.result() for future in idle]
        assert busy.result() >= 2 * TIMEOUT
    for seconds in waited:
        assert TIMEOUT - 0.2 <= seconds <= TIMEOUT + IDLE_SWEEP_SECONDS + 1.0, waited
