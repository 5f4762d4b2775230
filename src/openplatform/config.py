"""Settings: every key, its type, its default and why, read from ``OPENPLATFORM_*``.

One documented place (like node-oidc-provider's ``defaults.js``): the README's
configuration table is written from this file. Values are validated at start-up,
so a bad setting stops the server with a clear message instead of a 500 later.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_FILE = "openplatform.db"
SECRET_KEY_FILE = ".openplatform-secret-key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OPENPLATFORM_",
        env_file=os.environ.get("OPENPLATFORM_CONFIG_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Where data lives. sqlite:///path (default: a file in the working directory)
    # or postgresql://user@host/db; the driver is picked inside.
    database_url: str = f"sqlite:///{DEFAULT_DATABASE_FILE}"
    # Optional Redis (rate limits and revocation fan-out across nodes).
    redis_url: str | None = None
    # Lifetimes, in seconds.
    access_token_ttl: int = Field(7200, ge=60, le=86400 * 30)
    refresh_token_ttl: int = Field(86400 * 30, ge=300, le=86400 * 365)
    code_ttl: int = Field(300, ge=10, le=600)
    # Absolute lifetime of a refresh family, counted from the code exchange
    # (SPEC §8): rotation never extends it. Any value >= 1 (tests use seconds).
    refresh_family_max_age: int = Field(7_776_000, ge=1)
    # A client retrying a refresh within this many seconds gets the same new pair.
    refresh_leeway: float = Field(5.0, ge=0, le=60)
    # Require the app secret on /oauth/refresh_token (the docs do not send it).
    refresh_requires_secret: bool = False
    # Comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed.
    trusted_proxies: str = ""
    # Public base URL (used in metadata); empty = derived from the request.
    issuer: str = ""
    # Server key for keyed hashes and secret encryption. Generated and kept in
    # SECRET_KEY_FILE on first run when absent; set it explicitly on several nodes.
    secret_key: str = ""
    # Previous server keys, comma-separated (SPEC §10, docs/deployment.md "Rotating the
    # server key"): used only to find tokens, codes, sessions and admin keys made under
    # them and to decrypt app secrets sealed under them; everything new is made under
    # SECRET_KEY. Drop a key once `openplatform db reencrypt` ran and the longest token
    # lifetime has passed.
    old_secret_keys: str = ""
    # "http" = meaningful HTTP statuses; "always-200" = like the original platform.
    error_status: Literal["http", "always-200"] = "http"
    # "off", or comma-separated limits, see openplatform.core.ratelimit (token
    # endpoints, and sign-in: login=20/300 per client IP, login_failures=5/900
    # per account and IP; the last stays on under "off").
    rate_limits: str = "default"
    # A management-screen session ends after this many seconds without a request
    # (and in any case 12 hours after sign-in).
    session_idle_seconds: int = Field(1800, ge=60, le=43200)
    # Largest accepted request body, in bytes.
    max_body_bytes: int = Field(16384, ge=1024, le=10 * 1024 * 1024)
    # SQLite durability: NORMAL (WAL: survives a process crash, may lose the last
    # commits on power loss) or FULL (fsync on every group commit).
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    # How often each process polls the invalidation log (revocations made by
    # other processes reach its caches within this delay).
    invalidation_poll_seconds: float = Field(0.5, gt=0, le=5)
    # How often each process looks for due install/uninstall webhooks (the retry
    # schedule itself is fixed, see openplatform.services.webhooks).
    webhook_poll_seconds: float = Field(2.0, gt=0, le=60)
    # "deny": webhooks only go to public internet addresses, refused at
    # registration and at send time (SPEC §9). "allow" lifts that, for
    # development (`openplatform demo` sets it): receivers on localhost or a LAN.
    webhook_private_networks: Literal["deny", "allow"] = "deny"
    # How often each process deletes expired codes, tokens, invalidation records
    # and old audit events, in small batches (SPEC §8); `openplatform db cleanup`
    # runs one pass now.
    cleanup_interval: float = Field(300.0, gt=0, le=86400)
    # Audit events older than this many days are deleted by the cleanup.
    audit_retention_days: float = Field(180.0, gt=0)
    # Entries kept in the in-process token cache.
    token_cache_size: int = Field(100_000, ge=0)
    log_level: str = "info"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+asyncpg:")):
            raise ValueError("database_url must be sqlite:///path or postgresql://user@host/db")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _valid_rate_limits(cls, value: str) -> str:
        from openplatform.core.ratelimit import parse_limits

        parse_limits(value)  # raises ValueError naming the bad item
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("old_secret_keys")
    @classmethod
    def _valid_old_secret_keys(cls, value: str) -> str:
        if value.strip() and not all(part.strip() for part in value.split(",")):
            raise ValueError("old_secret_keys must be previous secret keys separated by single commas")
        return value

    @property
    def old_secret_key_list(self) -> tuple[bytes, ...]:
        """The previous server keys, in the configured order (empty when none)."""
        return tuple(part.strip().encode() for part in self.old_secret_keys.split(",") if part.strip())

    @cached_property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        parts = filter(None, (part.strip() for part in self.trusted_proxies.split(",")))
        return tuple(ipaddress.ip_network(part, strict=False) for part in parts)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:")

    @property
    def sqlite_path(self) -> str:
        """The file path of a ``sqlite:///path`` URL."""
        path = self.database_url.split(":", 1)[1].lstrip("/") if self.is_sqlite else ""
        if self.database_url.startswith("sqlite:////"):
            path = "/" + path
        return path or DEFAULT_DATABASE_FILE

    @property
    def postgres_dsn(self) -> str:
        """A DSN asyncpg understands (no SQLAlchemy driver suffix)."""
        rest = self.database_url.split("://", 1)[1]
        return "postgresql://" + rest

    def resolved_secret_key(self) -> bytes:
        """The server key; created once in SECRET_KEY_FILE when not configured."""
        if self.secret_key:
            return self.secret_key.encode()
        path = Path(SECRET_KEY_FILE)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip().encode()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
