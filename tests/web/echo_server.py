"""A test server: ``openplatform serve``'s HTTP protocol (``web.serve.BoundedHttpToolsProtocol``) in
front of an app that reads the body and answers after ``?delay=`` seconds (with ``?size=`` bytes of
padding), for the connection tests that need a request to be slow (no route of the real app is slow
on purpose) or an answer large. A second argument sets ``web.serve.SEND_TIMEOUT_SECONDS``, a third
uvicorn's ``timeout_keep_alive`` (5 s).

    python -m tests.web.echo_server PORT [SEND_TIMEOUT_SECONDS [KEEP_ALIVE_SECONDS]]
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from typing import Any
from urllib.parse import parse_qs

import orjson
import uvicorn

from openplatform.web import serve
from openplatform.web.serve import BoundedHttpToolsProtocol


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    query = {name: values[0] for name, values in parse_qs(scope["query_string"].decode()).items()}
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message["type"] == "http.request" and message.get("more_body", False)
    await asyncio.sleep(float(query.get("delay", 0)))
    answer = orjson.dumps({"id": query.get("id"), "length": len(body), "sha1": hashlib.sha1(body).hexdigest(),
                           "padding": "x" * int(query.get("size", 0))})  # fmt: skip
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


if __name__ == "__main__":
    if len(sys.argv) > 2:
        serve.SEND_TIMEOUT_SECONDS = float(sys.argv[2])
    keep_alive = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http=BoundedHttpToolsProtocol,
                ws="none", lifespan="off", access_log=False, log_level="warning",
                timeout_keep_alive=keep_alive)  # fmt: skip
