"""Pipelined input held while the request ahead is answered, against the server's protocol in its
own process with a slow echo app (``tests.web.echo_server``): no route of the real app is slow on
purpose, and these cases need a slow answer (docs/security.md, "What one connection can make the
server hold")."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.web.test_connection_input import connect, read_answers


@pytest.fixture
def echo_server(tmp_path: Path) -> Iterator[str]:
    """``tests.web.echo_server`` (the server's protocol, a slow echo app) in its own process."""
    with running_echo_server(tmp_path) as base:
        yield base


@contextlib.contextmanager
def running_echo_server(tmp_path: Path, *options: str) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "echo.log").open("w")
    command = [sys.executable, "-m", "tests.web.echo_server", str(port), *options]
    process = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, (tmp_path / "echo.log").read_text()
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_small_pipelined_requests_before_a_large_body_are_all_answered(echo_server: str) -> None:
    """Reading stays paused while input is held: each answer used to let one more read (up to
    256 KiB) into the held input, until 1 MiB closed the connection of an ordinary client."""
    sent = b"GET /?id=first&delay=0.1 HTTP/1.1\r\nhost: a\r\n\r\n"
    sent += b"".join(b"GET /?id=%d&delay=0.01 HTTP/1.1\r\nhost: a\r\n\r\n" % n for n in range(4))
    large = b"x" * 1_500_000
    sent += b"POST /?id=large HTTP/1.1\r\nhost: a\r\ncontent-length: %d\r\n\r\n" % len(large) + large
    with connect(echo_server) as sock:
        sock.settimeout(20)
        sock.sendall(sent)
        found = read_answers(sock, 6)
    assert [envelope["id"] for _, envelope in found] == ["first", "0", "1", "2", "3", "large"]
    assert found[5][1]["length"] == len(large) and found[5][1]["sha1"] == hashlib.sha1(large).hexdigest()


def test_a_waiting_request_refused_in_its_turn_lingers_for_what_the_client_still_sends(echo_server: str) -> None:
    """A pipelined request whose body turns out bad while it waits is refused in its turn; the
    connection then ends as after any refusal (``write_refusal``): the answer, the end of the
    server's writing, and what the client still sends read and dropped until the linger ends.
    Closing at once, with the client's later bytes unread, reset the connection, and the reset
    threw away the answers the client had not read yet."""
    broken = (
        b"POST /?id=broken HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\nZZ\r\n"  # not a chunk size
    )
    with connect(echo_server) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /?id=first&delay=0.3 HTTP/1.1\r\nhost: a\r\n\r\n" + broken)
        time.sleep(0.1)  # both are in: the first is being answered, the broken one waits
        sock.sendall(b"x" * 100_000)  # more of the same body, sent before the client reads
        time.sleep(0.8)  # the first is answered, then the broken one is refused
        raw = b""
        while chunk := sock.recv(65536):  # a reset raises ConnectionResetError here
            raw += chunk
    heads = [answer.split(b"\r\n", 1)[0] for answer in raw.split(b"HTTP/1.1 ")[1:]]
    assert heads == [b"200 OK", b"400 Bad Request"], raw[:300]
    assert b"The request is not valid HTTP." in raw


def read_all(sock: socket.socket) -> bytes:
    """What the connection brings until it ends (a reset ends it too)."""
    raw = b""
    try:
        while chunk := sock.recv(1 << 20):
            raw += chunk
    except ConnectionResetError:
        pass
    return raw


def small_window(base: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = base.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    return sock


BROKEN = b"POST /?id=broken HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n"


def test_a_client_that_reads_nothing_is_cut_off_after_the_send_timeout(tmp_path: Path) -> None:
    """An answer far larger than the socket buffers, to a client that reads nothing: once what the
    connection holds has not shrunk for ``SEND_TIMEOUT_SECONDS`` (2 s here) it is aborted. The
    keep-alive timeout (1 s here) comes first and closes the connection, but a close waits for the
    buffer to drain, so the connection stayed, with the answer, for ever (uvicorn has no limit)."""
    size = 20_000_000
    with running_echo_server(tmp_path, "2", "1") as base, small_window(base) as sock:
        sock.sendall(b"GET /?id=large&size=%d HTTP/1.1\r\nhost: a\r\n\r\n" % size)
        time.sleep(6)  # the keep-alive close at 1 s, no progress for 2 s, the sweep after it
        sock.settimeout(10)
        received = len(read_all(sock))
    assert received < size  # the server ended the connection before the answer was whole


def test_a_refusal_behind_an_answer_the_client_does_not_read_ends_with_the_send_timeout(tmp_path: Path) -> None:
    """The refusal's linger ends in a close, which waits for the answers before it to be read: the
    send timeout (1 s here) ends a connection whose client reads nothing."""
    size = 20_000_000
    with running_echo_server(tmp_path, "1") as base, small_window(base) as sock:
        sock.sendall(b"GET /?id=large&size=%d HTTP/1.1\r\nhost: a\r\n\r\n" % size + BROKEN)
        time.sleep(5)
        sock.settimeout(10)
        received = len(read_all(sock))
    assert received < size


def test_a_client_reading_slowly_gets_every_answer_and_the_refusal(tmp_path: Path) -> None:
    """A client reading steadily makes progress every sweep, so the send timeout (1 s here) never
    cuts it, however long the answer takes to leave the server's buffer: it gets the large answer
    (larger than what the sockets hold) whole, then the refusal."""
    size = 30_000_000
    with running_echo_server(tmp_path, "1") as base, connect(base) as sock:
        sock.sendall(b"GET /?id=large&size=%d HTTP/1.1\r\nhost: a\r\n\r\n" % size + BROKEN)
        sock.settimeout(10)
        chunks = []
        started = time.monotonic()
        while chunk := sock.recv(65536):  # at most 6.5 MB/s: the answer takes several seconds
            chunks.append(chunk)
            time.sleep(0.01)
        took = time.monotonic() - started
    raw = b"".join(chunks)
    heads = [answer.split(b"\r\n", 1)[0] for answer in raw.split(b"HTTP/1.1 ")[1:]]
    assert heads == [b"200 OK", b"400 Bad Request"], (took, len(raw))
    assert took > 2  # longer than the send timeout
