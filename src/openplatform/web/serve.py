"""Run the app under uvicorn (uvloop + httptools).

uvicorn's access log is off on purpose: it prints query strings, and the
documented API carries codes and tokens there (``?access_token=``).
"""

from __future__ import annotations

import logging

import uvicorn


def run(host: str, port: int, workers: int, log_level: str = "info") -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(
        "openplatform.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=log_level.lower(),
        server_header=False,
    )
