"""The audit events, each named once (issue 11): the ``event`` column of ``audit_events``.

Every call site passes one of these constants, never a string literal
(``tests/core/test_events.py``), so the list below is the whole vocabulary of
the audit log (SPEC §4 "audit log of every grant, failure, install, uninstall,
rotation"). The strings are stored in audit rows and filtered on by the
screens, the CLI and operators' queries: never change one. Each constant's
docstring is its meaning; ``docs/events.md`` is generated from them
(``python -m tools.gen_docs``). The detail fields of a row are the keyword
arguments of its call site.

Plain ``str`` constants rather than an enum: they cost nothing on the hot path
(a token grant writes one) and go into the database and JSON as they are.
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------- the protocol (core/, SPEC §2, §3)

CLIENT_AUTH_FAILED: Final = "client.auth_failed"
"""An app's credentials were refused (unknown app, wrong secret, suspended app); ``app_id`` only if the app exists."""

CONNECT_DENIED: Final = "connect.denied"
"""``GET /oauth/connect`` refused an app's request and redirected the error back (SPEC §2.1)."""

CODE_ISSUED: Final = "code.issued"
"""An authorization code was issued for an installation (SPEC §2.1)."""

CODE_REPLAYED: Final = "code.replayed"
"""A used authorization code was presented again; the tokens issued from it are revoked (RFC 6749 §4.1.2)."""

TOKEN_ISSUED: Final = "token.issued"
"""An access token was issued; ``grant`` is ``authorization_code`` or ``client_credentials`` (SPEC §2.2, §2.4)."""

TOKEN_REFRESHED: Final = "token.refreshed"
"""A refresh token was rotated: a new access and refresh token were issued (SPEC §2.3)."""

TOKEN_REFRESH_RETRIED: Final = "token.refresh_retried"
"""A refresh retried within the leeway got the pair its first request got; nothing was issued (SPEC §2.3)."""

REFRESH_REUSED: Final = "refresh.reused"
"""A rotated refresh token was presented after the leeway; its whole family is revoked (SPEC §2.3)."""

TOKEN_REVOKED: Final = "token.revoked"
"""An app revoked one of its tokens (RFC 7009); ``kind`` says which kind."""

TOKEN_DENIED: Final = "token.denied"
"""A token endpoint refused a request with ``error`` (every error but ``rate_limited``, which would flood the log)."""

# ---------------------------------------------------------------- SPEs, customers, sites (SPEC §2.5, §5)

SPE_CREATED: Final = "spe.created"
"""An SPE was created (CLI or admin screen)."""

CUSTOMER_CREATED: Final = "customer.created"
"""A customer was created; ``via`` is ``open_api`` when an app created it through the Open API."""

CUSTOMER_UPDATED: Final = "customer.updated"
"""A customer's name, contact or status was changed (console or Open API)."""

CUSTOMER_DELETED: Final = "customer.deleted"
"""A customer was deleted through the Open API; its tokens and codes stop working (SPEC §8)."""

SITE_CREATED: Final = "site.created"
"""A site was created under a customer through the Open API (SPEC §2.5)."""

SITE_UPDATED: Final = "site.updated"
"""A site was changed through the Open API (SPEC §2.5)."""

SITE_DELETED: Final = "site.deleted"
"""A site was deleted through the Open API (SPEC §2.5)."""

# ---------------------------------------------------------------- apps and installations (SPEC §3, §4, §5)

APP_CREATED: Final = "app.created"
"""An app was registered (CLI or developer console)."""

APP_UPDATED: Final = "app.updated"
"""An app's name, URLs, scopes or IP whitelist were changed in the developer console."""

APP_SECRET_ROTATED: Final = "app.secret_rotated"
"""An app's secret was replaced; the old one works for ``grace_seconds`` more."""

APP_SECRET_SHOWN: Final = "app.secret_shown"
"""A new app secret was shown on screen; it is never shown again (SPEC §4 "secret once")."""

APP_SUSPENDED: Final = "app.suspended"
"""An app was suspended: its tokens stop working (SPEC §8)."""

APP_RESUMED: Final = "app.resumed"
"""A suspended app was made active again."""

APP_INSTALLED: Final = "app.installed"
"""An app was installed for a customer or a whole SPE (installation is consent, SPEC §2.1)."""

APP_UNINSTALLED: Final = "app.uninstalled"
"""An installation was removed: the tokens issued under it stop working (SPEC §8)."""

APP_LAUNCHED: Final = "app.launched"
"""An SPE admin opened an installed app with a signed launch (SPEC §3)."""

# ---------------------------------------------------------------- webhooks (SPEC §3)

WEBHOOK_DELIVERED: Final = "webhook.delivered"
"""A notification was accepted by the app's webhook_url."""

WEBHOOK_FAILED: Final = "webhook.failed"
"""A notification attempt failed; it is tried again after ``retry_in`` seconds."""

WEBHOOK_ABANDONED: Final = "webhook.abandoned"
"""A notification failed its last attempt and is given up."""

WEBHOOK_RESENT: Final = "webhook.resent"
"""The app's developer pressed "Send again" in the console: notification ``delivery_id`` is due at once (a
pending one at its own time), with fresh attempts (``previous_attempts``; ``was``: delivered, pending or
failed) and the same ``event_id``."""

# ---------------------------------------------------------------- admin keys (SPEC §10)

ADMIN_KEY_CREATED: Final = "admin_key.created"
"""An admin key was created (for the platform, or for one SPE when ``xspe`` is set; ``scope`` is ``admin``,
or ``metrics`` for a key of ``/metrics`` only)."""

ADMIN_KEY_REVOKED: Final = "admin_key.revoked"
"""An admin key was revoked."""

ADMIN_KEY_USED: Final = "admin_key.used"
"""An admin API request with a live key: ``key_id`` (never the key), ``operation`` and the answer's ``code``.
Every write; a read (GET) at most once a minute per key and operation in each server process (so with
several nodes or workers, once per process), with the code of the first read of that minute."""

# ---------------------------------------------------------------- people on the screens (SPEC §4)

USER_CREATED: Final = "user.created"
"""A user account was created with ``role`` (and ``xspe`` for an SPE admin)."""

USER_SIGNED_IN: Final = "user.signed_in"
"""A user signed in."""

USER_SIGN_IN_FAILED: Final = "user.sign_in_failed"
"""A sign-in was refused for a wrong e-mail address or password (with the IP)."""

USER_LOCKED: Final = "user.locked"
"""Too many failed sign-ins: the account is locked from that IP for ``seconds`` (SPEC §9)."""

USER_SIGN_IN_LOCKED: Final = "user.sign_in_locked"
"""A sign-in was tried while locked out; the password was not checked."""

USER_SIGNED_OUT: Final = "user.signed_out"
"""A user signed out."""

USER_PASSWORD_CHANGED: Final = "user.password_changed"
"""A user changed their own password."""

USER_PASSWORD_CHANGE_FAILED: Final = "user.password_change_failed"
"""A password change was refused: the current password was wrong."""

USER_PASSWORD_SET: Final = "user.password_set"
"""A user's password was set by a platform admin (``by``) or the CLI."""

USER_DISABLED: Final = "user.disabled"
"""A user account was disabled: it can no longer sign in."""

USER_ENABLED: Final = "user.enabled"
"""A disabled user account was enabled again."""

USER_UNLOCKED: Final = "user.unlocked"
"""A platform admin lifted a user's sign-in lock."""
