"""App factories for tests/web/test_serve_workers.py, run by ``web.workers.supervise`` in a process of
the test's own. What a new worker does at its start is read from marker files in the working directory:
``hang``, it never starts (and says so in a file ``hanging-<pid>``); ``slow``, it starts after
``SLOW_SECONDS``; ``fail``, its app cannot be built."""

from __future__ import annotations

import os
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
        Path(f"hanging-{os.getpid()}").touch()  # for the test to wait on
        time.sleep(3600)
    if Path("slow").exists():
        time.sleep(SLOW_SECONDS)
    return answer
