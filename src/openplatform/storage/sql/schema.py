"""SQLAlchemy Core tables: the one schema for SQLite and PostgreSQL.

Times are UNIX seconds as doubles (the leeway and rate windows need sub-second
precision, and both databases compare them cheaply). Codes and tokens are keyed
by their HMAC digest; no column ever holds a raw token, code or secret.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

spes = Table(
    "spes",
    metadata,
    Column("xspe", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(64), primary_key=True),
    Column("xspe", String(64), ForeignKey("spes.xspe"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("contact", String(320), nullable=False, default=""),
    Column("status", String(16), nullable=False, default="active"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("version", Integer, nullable=False, default=1),
)

apps = Table(
    "apps",
    metadata,
    Column("app_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("host_url", String(2048), nullable=False),
    Column("webhook_url", String(2048)),
    Column("scopes", Text, nullable=False, default=""),  # space-separated
    Column("ip_whitelist", Text, nullable=False, default=""),  # space-separated
    Column("status", String(16), nullable=False, default="active"),
    Column("owner_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# The current secret has expires_at NULL; after a rotation the previous one keeps
# working until its expires_at (the grace period), then it is deleted.
app_secrets = Table(
    "app_secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app_id", String(32), ForeignKey("apps.app_id"), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("secret_enc", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
)

installations = Table(
    "installations",
    metadata,
    Column("installation_id", String(64), primary_key=True),
    Column("app_id", String(32), ForeignKey("apps.app_id"), nullable=False),
    Column("xspe", String(64), ForeignKey("spes.xspe"), nullable=False),
    Column("customer_id", String(64), ForeignKey("customers.customer_id")),
    Column("installed_at", Float, nullable=False),
    Column("uninstalled_at", Float),
    Index("ix_installations_app", "app_id", "xspe", "customer_id"),
)

# Room for updates in place (PostgreSQL's fillfactor, migration 0008; SQLite has none). An UPDATE
# that changes no indexed column is HOT (heap-only) when the row's page has room for the new
# version: it writes no index entry. Otherwise the new version goes to another page and enters
# every index of the table again (five for a user token). The hot path updates a code once (its
# claim sets used_at) and a refresh token once (its rotation sets rotated_at and successor, ~75
# bytes more than the row had), and claims them in batches of rows issued together, side by
# side on the same pages: a code's page keeps room for a new version of each of its codes, a
# token's page for about three quarters of its refresh tokens at once (more as the old versions
# are pruned). An app token, never updated, pays for the emptier pages: docs/benchmarks.md
# ("PostgreSQL's exchange and rotation, database side") has the measurements.
CODES_FILLFACTOR = 45
TOKENS_FILLFACTOR = 70

auth_codes = Table(
    "auth_codes",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("app_id", String(32), nullable=False),
    # Not indexed (migration 0011): nothing finds a code by its installation; SPEC §8's backing,
    # read with the code, refuses it once the installation ends.
    Column("installation_id", String(64), nullable=False),
    Column("customer_id", String(64), nullable=False),
    Column("xspe", String(64), nullable=False),
    Column("redirect_uri", String(2048), nullable=False),
    Column("scope", Text, nullable=False),
    Column("code_challenge", String(128)),
    Column("expires_at", Float, nullable=False, index=True),
    Column("used_at", Float),
    postgresql_with={"fillfactor": CODES_FILLFACTOR},
)

# Access and refresh tokens. family_id is the digest of the code a user token
# descends from: replaying a code or an old refresh token revokes the family
# (a row of revoked_families, below).
#
# Every index costs each issued token an insert, and the app-token grant is the
# hot path (docs/benchmarks.md). So: digests start with the issue time
# (security.Keyring.mint) and append to the primary key's index, and the
# expiry's index appends too; nothing else is indexed. Not app_id: the screens'
# token statistics come from the audit log (one index serves them there). Not
# family_id (migration 0009), installation_id nor customer_id (0010): each user
# token would enter them at its family's, installation's or customer's place, a
# page written long ago. The family's was more than half of the WAL a rotation
# wrote on SQLite and a fifth of its server CPU; with tokens spread over many
# customers the other two were 71 % of it (docs/benchmarks.md, "A family revoked
# by one row", "Where issue 14 stands (2026-12-02)"). A revoked family is a row
# of revoked_families; an uninstall or a deleted customer ends its tokens through
# SPEC §8's backing, which every use of a user token reads with it.
tokens = Table(
    "tokens",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("app_id", String(32), nullable=False),
    Column("installation_id", String(64)),
    Column("customer_id", String(64)),
    Column("xspe", String(64)),
    Column("scope", Text, nullable=False),
    Column("family_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("revoked_at", Float),
    Column("rotated_at", Float),
    Column("successor", String(64)),
    # The end of the refresh family's absolute lifetime (SPEC §8), copied to every
    # token of the family; NULL for app tokens and tokens issued before 0004.
    Column("family_expires_at", Float),
    postgresql_with={"fillfactor": TOKENS_FILLFACTOR},
)

# Revoked token families (SPEC §2.3, §8): one row per family, written by a replayed code, a
# reused refresh token or a revoked one (RFC 7009), instead of an UPDATE of every token of the
# family. Every read of a token takes its revoked_at from here when its own is NULL
# (storage/sql/store.py, TOKEN_REVOKED_AT), so a token the family gains later (a rotation read
# before the revocation and committed after it) is revoked too. expires_at: when the family's
# last token expires (its family_expires_at; NULL when not known, kept for ever); the cleanup
# deletes the row as it deletes tokens, keep_seconds later.
revoked_families = Table(
    "revoked_families",
    metadata,
    Column("family_id", String(64), primary_key=True),
    Column("revoked_at", Float, nullable=False),
    Column("expires_at", Float, index=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("event", String(64), nullable=False),
    Column("app_id", String(32)),
    Column("xspe", String(64)),
    Column("customer_id", String(64)),
    Column("ip", String(64)),
    Column("detail", Text, nullable=False, default="{}"),
    # Identical events of one group commit are one row (storage.sql.store.AuditRows).
    Column("occurrences", Integer, nullable=False, default=1, server_default="1"),
    # An app's events, by kind, in time: the console's counts, charts and "last token" read it.
    # occurrences makes it covering for the counts: they read no table row (migration 0006).
    Index("ix_audit_events_app_event_at", "app_id", "event", "at", "occurrences"),
    # An app's events in time, of every kind: the console's newest events without a sort.
    Index("ix_audit_events_app_at", "app_id", "at"),
)

# Every change that must reach the in-process caches of all server processes
# (revocation, uninstall, suspension, rotation). Each process polls it.
invalidations = Table(
    "invalidations",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("key", String(128), nullable=False),
)

# ----------------------------------------------------------------- admin keys

# Credentials of the operators' own systems (SPEC §10): the admin API and
# /metrics take them as bearer tokens. Only a keyed digest of the key is stored;
# a key bound to an SPE (xspe) reaches only that SPE's customers and installations.
admin_keys = Table(
    "admin_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("xspe", String(64), ForeignKey("spes.xspe")),
    Column("key_digest", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    # "admin": the admin API (and /metrics); "metrics": /metrics only (migration 0007)
    Column("scope", String(16), nullable=False, server_default="admin"),
    Column("last_used_at", Float),  # written at most once a minute per key and process
)

# ---------------------------------------------------------------- web accounts

users = Table(
    "users",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),  # argon2id
    Column("role", String(16), nullable=False),  # admin | developer | spe-admin
    Column("xspe", String(64), ForeignKey("spes.xspe")),  # for spe-admin
    Column("status", String(16), nullable=False, default="active"),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", Float),
    Column("created_at", Float, nullable=False),
)

# Server-side sessions, keyed by the digest of the cookie value.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("user_id", String(64), ForeignKey("users.user_id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

# ------------------------------------------------------------ Open API objects

sites = Table(
    "sites",
    metadata,
    Column("site_id", String(64), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("xspe", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("domain", String(253), nullable=False),
    Column("status", String(16), nullable=False, default="active"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("version", Integer, nullable=False, default=1),
)

# ------------------------------------------------------------------- webhooks

# Install/uninstall notifications to an app's webhook_url, retried with backoff.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("app_id", String(32), nullable=False, index=True),
    Column("event", String(32), nullable=False),
    Column("payload", Text, nullable=False),  # JSON without the secret-derived signature
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False, index=True),
    Column("delivered_at", Float),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
)
