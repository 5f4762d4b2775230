"""App factories for tests/web/test_serve_workers.py, run by ``web.workers.supervise`` in a process of
the test's own: what a new worker does at its start is read from marker files in the working directory
(``hang``: never starts; ``slow``: starts after ``SLOW_SECONDS``; ``fail``: its app cannot be built)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

SLOW_SECONDS = 3.0


def broken_app() -> object:
    raise RuntimeError("this app cannot be built")


async def answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"8")]})
    await send({"type": "http.response.body", "body": b'"code":0'})


def marked_app() -> Any:
    if Path("fail").exists():
        raise RuntimeError("this app cannot be built now")
    if Path("hang").exists():
        time.sleep(3600)
    if Path("slow").exists():
        time.sleep(SLOW_SECONDS)
    return answer
