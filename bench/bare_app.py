"""The baseline: the same HTTP stack as ``openplatform serve`` answering a constant envelope.

Starlette routing + uvicorn (uvloop, httptools), one worker, access log and
server header and proxy headers off exactly as in ``openplatform.web.serve``. It answers every
GET and POST with the same JSON, without reading the body, so the ratio
``openplatform / bare`` is what the authorization server costs on top of the stack.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ENVELOPE = b'{"code":0,"msg":"success","result":{"status":"ok"}}'


async def constant(_request: Request) -> Response:
    return Response(ENVELOPE, media_type="application/json")


app = Starlette(routes=[Route("/{path:path}", constant, methods=["GET", "POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), workers=1, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", server_header=False, proxy_headers=False)  # fmt: skip
