"""``python -m partner_app`` (from examples/): serve the partner app on 127.0.0.1:$PORT."""

from __future__ import annotations

import logging

import uvicorn

from .app import create_app
from .config import Config


def main() -> None:
    config = Config.from_env()
    # The app's own lines (a webhook received) next to uvicorn's: without a handler they would be dropped.
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    print(f"partner app on {config.base_url}/ (openplatform at {config.openplatform_url})", flush=True)
    uvicorn.run(create_app(config), host="127.0.0.1", port=config.port, log_level="info")


if __name__ == "__main__":
    main()
