"""Run the app under uvicorn (uvloop + httptools), logging JSON lines.

uvicorn's access log is off on purpose: it prints query strings, and the
documented API carries codes and tokens there (``?access_token=``).
"""

from __future__ import annotations

import uvicorn

from openplatform import logs


def run(host: str, port: int, workers: int, log_level: str = "info") -> None:
    uvicorn.run(
        "openplatform.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=logs.configure(log_level),
        log_level=log_level.lower(),
        server_header=False,
    )
