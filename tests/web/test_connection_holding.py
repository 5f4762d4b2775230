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


def test_a_client_that_reads_nothing_is_cut_off_after_the_send_timeout(tmp_path: Path) -> None:
    """An answer far larger than the socket buffers, to a client that reads nothing: writing stays
    paused, and once it has for ``SEND_TIMEOUT_SECONDS`` (1 s here) the connection is aborted, with
    what it held. Without the limit it waited for the client for ever (uvicorn has none)."""
    size = 20_000_000
    with running_echo_server(tmp_path, "1") as base:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        host, port = base.removeprefix("http://").split(":")
        sock.connect((host, int(port)))
        with sock:
            sock.sendall(b"GET /?id=large&size=%d HTTP/1.1\r\nhost: a\r\n\r\n" % size)
            time.sleep(4)  # past the timeout and the sweep after it
            sock.settimeout(10)
            received = 0
            try:
                while chunk := sock.recv(1 << 20):
                    received += len(chunk)
            except ConnectionResetError:
                pass
    assert received < size  # the server ended the connection before the answer was whole


def test_a_refusal_to_a_client_that_reads_nothing_ends_with_the_linger(echo_server: str) -> None:
    """After a refusal the connection closes when the linger ends; if the client has not read what
    was written by then, it is aborted: a close waits for the write buffer to drain, which such a
    client never lets happen (the send timeout, 60 s here, would be the only end)."""
    size = 20_000_000
    broken = b"POST /?id=broken HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = echo_server.removeprefix("http://").split(":")
    sock.connect((host, int(port)))
    with sock:
        sock.sendall(b"GET /?id=large&size=%d HTTP/1.1\r\nhost: a\r\n\r\n" % size + broken)
        time.sleep(4)  # the large answer written, the refusal after it, the 2 s linger over
        sock.settimeout(10)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert received < size
