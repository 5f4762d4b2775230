"""The ceiling: a plain ASGI callable on the same uvicorn as ``openplatform serve``.

    .venv/bin/python bench/raw_asgi.py PORT [WORKERS]

No framework: it reads the whole request body (as every openplatform endpoint must before it
answers) and sends a constant JSON envelope with two ``send()`` calls. uvicorn runs it with
the options of ``openplatform.web.serve.run``: uvloop, httptools, access log, server header and
proxy headers off. Nothing faster can answer an HTTP request on this stack, so
``openplatform / raw`` is the share of the stack's own speed that openplatform keeps (issue 14).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

ENVELOPE = b'{"code":0,"msg":"success","result":{"status":"ok"}}'
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(ENVELOPE)).encode())],
}
BODY = {"type": "http.response.body", "body": ENVELOPE, "more_body": False}

Message = MutableMapping[str, Any]


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """HTTP: drain the body, answer ENVELOPE. Lifespan: acknowledge start-up and shutdown."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(START)
    await send(BODY)


if __name__ == "__main__":
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    uvicorn.run("raw_asgi:app", app_dir=str(Path(__file__).resolve().parent), host="127.0.0.1",
                port=int(sys.argv[1]), workers=workers, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", server_header=False, proxy_headers=False)  # fmt: skip
