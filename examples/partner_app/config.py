"""The example app's settings, from environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_OPENPLATFORM_URL = "http://127.0.0.1:8000"
DEFAULT_PORT = 9000


@dataclass(frozen=True, slots=True)
class Config:
    app_id: str
    app_secret: str
    # Where the openplatform server is (the base of /oauth/... and /api/...).
    openplatform_url: str = DEFAULT_OPENPLATFORM_URL
    port: int = DEFAULT_PORT
    # The public URL of this app; its host and port must be those of the app's
    # registered host_url, because the platform only redirects there (SPEC §2.1).
    app_url: str = ""

    @property
    def base_url(self) -> str:
        return (self.app_url or f"http://localhost:{self.port}").rstrip("/")

    @property
    def callback_url(self) -> str:
        return f"{self.base_url}/callback"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        missing = [name for name in ("APP_ID", "APP_SECRET") if not env.get(name)]
        if missing:
            hint = "printed by `openplatform demo` or `openplatform app create`"
            raise SystemExit(f"set {' and '.join(missing)} ({hint})")
        return cls(
            app_id=env["APP_ID"],
            app_secret=env["APP_SECRET"],
            openplatform_url=env.get("OPENPLATFORM_URL", DEFAULT_OPENPLATFORM_URL),
            port=int(env.get("PORT", str(DEFAULT_PORT))),
            app_url=env.get("APP_URL", ""),
        )
