"""CPU a loopback TCP answer costs its sender, written in two system calls or in one.

    .venv/bin/python bench/sends.py [--answers 200000] [--rounds 3]

The sender (this process, on CPU 0) writes ``--answers`` answers of an app token's shape (a
147-byte head, a 120-byte body) to a reader process on CPU 1 that drains them, once as two
``send()`` calls (uvicorn's head, then its body) and once as one (``web.serve.OneWriteCycle``),
alternated for ``--rounds``. Printed: the sender's CPU (user + system) per answer for each, from
``getrusage``. On loopback the sender's system call also runs the receiving side of TCP, so this is
most of what one write less saves a server (docs/benchmarks.md, "One write an answer").
"""

from __future__ import annotations

import argparse
import os
import resource
import socket

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: no-store\r\n"
    b"pragma: no-cache\r\ncontent-length: 120\r\n\r\n"
)
BODY = b"x" * 120


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drain(port: int) -> None:
    os.sched_setaffinity(0, {1})
    with socket.create_connection(("127.0.0.1", port)) as reader:
        while reader.recv(1 << 20):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        child = os.fork()
        if child == 0:
            drain(port)
            os._exit(0)
        os.sched_setaffinity(0, {0})
        sender, _ = listener.accept()
    sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvloop sets it
    send = sender.send
    whole = HEAD + BODY
    for _ in range(opts.rounds):
        start = cpu_seconds()
        for _ in range(opts.answers):
            send(HEAD)
            send(BODY)
        two = (cpu_seconds() - start) / opts.answers * 1e6
        start = cpu_seconds()
        for _ in range(opts.answers):
            send(whole)
        one = (cpu_seconds() - start) / opts.answers * 1e6
        print(f"two writes {two:.2f} µs, one write {one:.2f} µs of the sender's CPU an answer: {two - one:.2f} µs less")
    sender.close()
    os.waitpid(child, 0)


if __name__ == "__main__":
    main()
