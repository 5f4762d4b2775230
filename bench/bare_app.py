"""The baseline: the same HTTP stack as ``openplatform serve`` answering a constant envelope.

Starlette routing + uvicorn (uvloop, httptools), access log, server header and
proxy headers off exactly as in ``openplatform.web.serve`` (``bare_app.py PORT [WORKERS]``). It answers every
GET and POST with the same JSON, without reading the body, so the ratio
``openplatform / Starlette`` is what the authorization server costs on top of Starlette's stack;
``bench/raw_asgi.py`` is the ceiling without Starlette.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    uvicorn.run("bare_app:app", app_dir=str(Path(__file__).resolve().parent), host="127.0.0.1",
                port=int(sys.argv[1]), workers=workers, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", server_header=False, proxy_headers=False)  # fmt: skip
