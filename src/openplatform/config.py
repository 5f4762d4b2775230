"""Settings: every key, its type, its default and why, read from ``OPENPLATFORM_*``.

One documented place (like node-oidc-provider's ``defaults.js``): the README's
configuration table is written from this file. Values are validated at start-up,
so a bad setting stops the server with a clear message instead of a 500 later.

The upper-case constants left in other modules are not operator knobs (issue 11):
protocol and format sizes (RFC and SPEC limits, key prefixes, MAC lengths, the
webhook signature's 5 minutes and retry schedule), bounds on input that protect the
server (header, form, parameter and page sizes), and internal tuning measured in
docs/benchmarks.md (group-commit batch, invalidation page, gap wait, cache age,
lock retry, GC thresholds) whose change would need a new measurement, not a setting.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import secrets
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_FILE = "openplatform.db"
MEMORY_URL = "memory://"  # OPENPLATFORM_DATABASE_URL of the in-memory backend
SECRET_KEY_FILE = ".openplatform-secret-key"
# The server key keys HMAC-SHA256 digests and AES-256-GCM (security.py): at least as many bytes as
# those keys (a shorter text is guessable offline from one leaked digest); the generated one has 64.
MIN_SECRET_KEY_BYTES = 32


def check_server_key(key: str, which: str = "") -> None:
    """The rule of every server key, current or old (SPEC §10): ``key`` stripped is at least
    MIN_SECRET_KEY_BYTES bytes of UTF-8, else ValueError; ``which`` names the key in the message
    (a place in a list), which never holds its value."""
    if len(key.strip().encode()) < MIN_SECRET_KEY_BYTES:
        example = "e.g. 48 random bytes, URL-safe base64"
        raise ValueError(f"{which}must be at least {MIN_SECRET_KEY_BYTES} bytes ({example})")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OPENPLATFORM_",
        env_file=os.environ.get("OPENPLATFORM_CONFIG_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Each field's description is its row in the README's settings table
    # (generated: python -m tools.gen_docs); "shown" replaces a default that needs words.

    database_url: str = Field(
        f"sqlite:///{DEFAULT_DATABASE_FILE}",
        description="`sqlite:///path` or `postgresql://user@host/db` (the driver is picked inside); `memory://`: "
        "nothing kept, for an app built in-process by tests (no CLI command takes it)",
    )
    redis_url: str | None = Field(
        None,
        description="optional Redis: cluster-wide rate limits and instant revocation fan-out "
        "([docs/deployment.md](docs/deployment.md))",
    )
    access_token_ttl: int = Field(7200, ge=60, le=86400 * 30, description="access token lifetime, seconds")
    refresh_token_ttl: int = Field(
        86400 * 30, ge=300, le=86400 * 365, description="refresh token lifetime, seconds",
        json_schema_extra={"shown": "`2592000` (30 days)"},
    )  # fmt: skip
    code_ttl: int = Field(300, ge=10, le=600, description="authorization code lifetime, seconds")
    refresh_family_max_age: int = Field(
        7_776_000, ge=1,
        description="absolute lifetime of a refresh family, seconds from the code exchange; rotation never extends "
        "it (SPEC §8)",
        json_schema_extra={"shown": "`7776000` (90 days)"},
    )  # fmt: skip
    refresh_leeway: float = Field(
        5.0, ge=0, le=60, description="seconds during which the previous refresh token gets the same new pair again"
    )
    refresh_requires_secret: bool = Field(
        False, description="require `secret` on `/oauth/refresh_token` (the docs do not send it)"
    )
    trusted_proxies: str = Field("", description="comma-separated proxy IPs/CIDRs whose `X-Forwarded-For` is believed")
    issuer: str = Field(
        "", description="public base URL (metadata); the original runs white-labelled under several domains",
        json_schema_extra={"shown": "derived from the request"},
    )  # fmt: skip
    secret_key: str = Field(
        "",
        description="server key for keyed hashes and secret encryption, at least 32 bytes (a bad setting "
        "otherwise); **set the same value on every node**",
        json_schema_extra={"shown": f"generated into `{SECRET_KEY_FILE}` on first run (`memory://`: kept nowhere)"},
    )
    old_secret_keys: str = Field(
        "",
        description="previous server keys, comma-separated: only to find tokens, codes, sessions and admin keys "
        "made under them and to decrypt app secrets sealed under them; everything new is made under the "
        "current key; each at least 32 bytes, like the key. Drop one once `openplatform db reencrypt` ran and the "
        "longest token lifetime has passed ([rotating the server key](docs/deployment.md#rotating-the-server-key))",
    )
    error_status: Literal["http", "always-200"] = Field(
        "http", description="`always-200` answers errors with HTTP 200 like the original platform"
    )
    rate_limits: str = Field(
        "default",
        description="`off`, or `ip=300/60,app=600/60,bad_secret=10/300,login=20/300,login_failures=5/900,"
        "admin=100/2` (count/seconds: a burst of count, refilled at count per seconds; `admin` is per admin key "
        "on the admin API and `/metrics`; `login_failures`, the sign-in lock-out, stays on under `off`)",
    )
    session_idle_seconds: int = Field(
        1800, ge=60, le=43200,
        description="a management-screen session ends after this many seconds without a request "
        "(12 hours after sign-in in any case)",
    )  # fmt: skip
    max_body_bytes: int = Field(16384, ge=1024, le=10 * 1024 * 1024, description="largest accepted request body, bytes")
    sqlite_synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL",
        description="`NORMAL` (WAL: survives a process crash, may lose the last commits on power loss) or `FULL` "
        "(fsync on every group commit) — see durability in [docs/benchmarks.md](docs/benchmarks.md)",
    )
    postgres_pool_size: int = Field(
        8, ge=1, le=200,
        description="PostgreSQL connections each server process (each worker) keeps for reads and management "
        "transactions (one pool for both); its group-commit writer holds one more, and the batched reads of "
        "codes and tokens up to four more (no more than this number)",
    )  # fmt: skip
    invalidation_poll_seconds: float = Field(
        0.5, gt=0, le=5,
        description="how fast revocations made elsewhere reach this process's caches without Redis "
        "(with Redis: at once)",
    )  # fmt: skip
    webhook_poll_seconds: float = Field(
        2.0, gt=0, le=60,
        description="how often each process looks for due install/uninstall webhooks (the retry schedule is "
        "fixed, [docs/webhooks.md](docs/webhooks.md))",
    )  # fmt: skip
    webhook_private_networks: Literal["deny", "allow"] = Field(
        "deny",
        description="`allow` lets webhooks go to localhost and private networks — development only "
        "(`openplatform demo` sets it); see [docs/webhooks.md](docs/webhooks.md#webhooks-and-private-networks)",
    )
    cleanup_interval: float = Field(
        300.0, gt=0, le=86400,
        description="seconds between cleanup passes of each server process: expired codes, tokens and "
        "invalidation records, old audit events and webhook deliveries ([docs/deployment.md](docs/deployment.md)); "
        "`openplatform db cleanup` runs one pass now",
    )  # fmt: skip
    cleanup_batch_size: int = Field(
        500, ge=10, le=100_000,
        description="rows per DELETE of the cleanup: on SQLite each batch holds the write lock about a "
        "millisecond per 500 rows ([docs/benchmarks.md](docs/benchmarks.md))",
    )  # fmt: skip
    audit_retention_days: float = Field(
        180.0, gt=0, description="audit events older than this many days are deleted by the cleanup, and so are "
        "webhook deliveries delivered or abandoned this long ago (pending ones never)",
    )  # fmt: skip
    token_cache_size: int = Field(100_000, ge=0, description="entries kept in each process's token cache")
    log_level: str = Field("info", description="`debug`, `info`, `warning` or `error`")
    log_format: Literal["text", "json"] | None = Field(
        None,
        description="log lines on stderr: `text` (one readable line each, for a person) or `json` (one object "
        "each, for a log collector)",
        json_schema_extra={"shown": "`text` when stderr is a terminal, `json` otherwise"},
    )
    access_log: bool | None = Field(
        None,
        description="one line per HTTP request: method, path without the query string, status, milliseconds (never "
        "a token, a code, a query string or a header); off by default with json logs, as each line costs about "
        "17 µs of CPU, more than half of an app-token grant ([docs/benchmarks.md](docs/benchmarks.md)). Lines "
        "are INFO: `LOG_LEVEL=warning` hides them",
        json_schema_extra={"shown": "on with `text` logs, off with `json`"},
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value != MEMORY_URL and not value.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+asyncpg:")):
            raise ValueError(f"must be sqlite:///path, postgresql://user@host/db or {MEMORY_URL}")  # caller names it
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

    @field_validator("secret_key")
    @classmethod
    def _strong_secret_key(cls, value: str) -> str:
        if value:  # empty: generated (64 characters)
            check_server_key(value)
        return value

    @field_validator("old_secret_keys")
    @classmethod
    def _valid_old_secret_keys(cls, value: str) -> str:
        keys = value.split(",") if value.strip() else []
        if not all(key.strip() for key in keys):
            raise ValueError("must be previous server keys separated by single commas")
        for number, key in enumerate(keys, 1):
            check_server_key(key, which=f"key {number} of the list ")  # its place, never its value
        return value

    @property
    def old_secret_key_list(self) -> tuple[bytes, ...]:
        """The previous server keys, in the configured order (empty when none)."""
        return tuple(part.strip().encode() for part in self.old_secret_keys.split(",") if part.strip())

    @cached_property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        parts = filter(None, (part.strip() for part in self.trusted_proxies.split(",")))
        return tuple(ipaddress.ip_network(part, strict=False) for part in parts)

    @cached_property
    def _unkept_key(self) -> bytes:
        """A random server key of these settings (``memory://`` without a configured key): the
        same for every part built from them (the token side and the admin services share it)."""
        return secrets.token_urlsafe(48).encode()

    @property
    def is_memory(self) -> bool:
        """The in-memory backend (``storage/memory/``): one process, nothing kept."""
        return self.database_url == MEMORY_URL

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
        """The server key; created once in SECRET_KEY_FILE when not configured, except for
        ``memory://``: then one made for these settings, kept nowhere (what it signs and seals
        lives in the process's memory and ends with it, so nothing is written to disk)."""
        if self.secret_key:
            return self.secret_key.encode()
        if self.is_memory:
            return self._unkept_key
        path = Path(SECRET_KEY_FILE)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip().encode()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


# The cleanup's defaults (SPEC §8) for a caller without settings (`openplatform db cleanup` and the
# servers pass their settings'), the one source both backends read.
CLEANUP_KEEP_SECONDS = 3600.0  # expired codes, tokens and invalidation records stay this long (seconds)
CLEANUP_BATCH_SIZE: int = Settings.model_fields["cleanup_batch_size"].default
AUDIT_RETENTION_SECONDS: float = Settings.model_fields["audit_retention_days"].default * 86400.0


# OPENPLATFORM_ names read outside Settings, so no "unknown setting" warning for them (grep the code for
# os.environ and process.env before adding one here).
OTHER_VARIABLES = {
    "OPENPLATFORM_CONFIG_FILE": "the settings file to read instead of .env (cli.py, Settings.model_config)",
    "OPENPLATFORM_REQUIRE_SERVICES": "tests: fail instead of skip when PostgreSQL or Redis is missing (.ci/run)",
    "OPENPLATFORM_TEST_POSTGRES": "tests: the PostgreSQL server to use",
    "OPENPLATFORM_TEST_REDIS": "tests and bench/: the Redis to use",
    "OPENPLATFORM_FUZZ_EXAMPLES": "tests: examples per fuzz test",
    "OPENPLATFORM_SCREENSHOTS": "tests: where the browser journey saves its screenshots",
    "OPENPLATFORM_BIN": "the TypeScript SDK's tests: the server binary",
    "OPENPLATFORM_PYTHON": "the TypeScript SDK's tests: the Python that runs the server",
    "OPENPLATFORM_URL": "the example partner app (examples/): the platform's base URL",
}


def unknown_variables(names: Iterable[str]) -> list[str]:
    """One warning line per ``OPENPLATFORM_`` name (any case, as the settings are read) that is
    neither a setting nor in OTHER_VARIABLES: a misspelt setting is otherwise silently ignored.

    A close setting is suggested (difflib, on the part after the prefix), e.g.
    ``OPENPLATFORM_ACESS_TOKEN_TTL is not a setting, ignored (did you mean OPENPLATFORM_ACCESS_TOKEN_TTL?)``.
    Names only: a value may be a key or a password.
    """
    prefix = str(Settings.model_config.get("env_prefix", ""))
    settings = sorted(name.upper() for name in Settings.model_fields)
    lines = []
    given = {name.upper(): name for name in names if name.upper().startswith(prefix)}  # as written
    for upper, name in sorted(given.items()):
        if upper in OTHER_VARIABLES or upper.removeprefix(prefix) in settings:
            continue
        close = difflib.get_close_matches(upper.removeprefix(prefix), settings, n=1, cutoff=0.75)
        hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
        lines.append(f"{name} is not a setting, ignored{hint}")
    return lines


def configured_names() -> list[str]:
    """The names set in the environment and in the settings file (``OPENPLATFORM_CONFIG_FILE`` or
    ``.env``; a file that cannot be read gives none here: ``cli.settings`` reports it)."""
    names = list(os.environ)
    env_file = Settings.model_config.get("env_file")
    if isinstance(env_file, str | os.PathLike) and os.path.isfile(env_file):
        from dotenv import dotenv_values  # pydantic-settings' own reader of the file

        try:
            names += list(dotenv_values(env_file, encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            pass
    return names


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
