"""Signatures an app can verify with its secret: signed launches and webhooks (SPEC §3).

This is the one implementation: the server signs with these functions
(``openplatform.core.signing`` re-exports them) and apps verify with them. The
module imports only the standard library and the SDK's plain models and errors
(no httpx), so the server's core may import it.

Keys are derived from the app secret (``HMAC-SHA256(secret, purpose)``) so a
signature never exposes the secret, and a launch signature cannot be replayed as
a webhook signature or the other way round.

Signed launch (docs/launch.md): the portal sends the browser to ``host_url`` with
the query parameters ``app_id``, ``xspe``, ``customer_id`` (empty for an SPE-wide
launch), ``timestamp`` (UNIX seconds) and ``signature``. The canonical string is
those parameters except ``signature``, sorted by name, form-encoded and joined
with ``&`` — e.g. ``app_id=…&customer_id=…&timestamp=1700000000&xspe=…`` — and
``signature = hex(HMAC-SHA256(HMAC-SHA256(secret, "launch"), canonical))``.
Launches older than ``LAUNCH_MAX_AGE`` seconds (or more than that in the future) are rejected.

Webhook (docs/webhooks.md): headers ``X-OpenPlatform-Timestamp: <UNIX seconds>`` and
``X-OpenPlatform-Signature: hex(HMAC-SHA256(HMAC-SHA256(secret, "webhook"), "<timestamp>.<raw body>"))``,
next to the original platform's MD5 ``signature`` field inside the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from openplatform_client.errors import InvalidSignature
from openplatform_client.models import Launch, WebhookEvent

LAUNCH_MAX_AGE = 300
LAUNCH_FIELDS = ("app_id", "customer_id", "timestamp", "xspe")
TIMESTAMP_HEADER = "X-OpenPlatform-Timestamp"
SIGNATURE_HEADER = "X-OpenPlatform-Signature"

__all__ = [
    "LAUNCH_FIELDS", "LAUNCH_MAX_AGE", "SIGNATURE_HEADER", "TIMESTAMP_HEADER",
    "derived_key", "launch_canonical", "legacy_notification_signature", "legacy_signature_ok",
    "launch_from", "sign_launch", "sign_webhook", "verify_launch", "verify_webhook", "webhook_from",
]  # fmt: skip


# ---------------------------------------------------------------- primitives


def _equal(expected: str, given: str) -> bool:
    """Constant-time comparison of two strings of any characters (a forged value may hold non-ASCII)."""
    return hmac.compare_digest(expected.encode(errors="surrogatepass"), given.encode(errors="surrogatepass"))


def derived_key(secret: str, purpose: str) -> bytes:
    return hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()


def launch_canonical(params: Mapping[str, str]) -> str:
    return urlencode(sorted((k, params.get(k, "")) for k in LAUNCH_FIELDS))


def sign_launch(
    secret: str, app_id: str, xspe: str, customer_id: str | None, timestamp: int | None = None
) -> dict[str, str]:
    """The query parameters of a signed launch."""
    params = {
        "app_id": app_id,
        "xspe": xspe,
        "customer_id": customer_id or "",
        "timestamp": str(int(time.time()) if timestamp is None else timestamp),
    }
    mac = hmac.new(derived_key(secret, "launch"), launch_canonical(params).encode(), hashlib.sha256)
    return {**params, "signature": mac.hexdigest()}


def verify_launch(secret: str, params: Mapping[str, str], now: float | None = None) -> bool:
    """True when the launch parameters are authentic and fresh."""
    signature = params.get("signature", "")
    timestamp = params.get("timestamp", "")
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > LAUNCH_MAX_AGE:
        return False
    mac = hmac.new(derived_key(secret, "launch"), launch_canonical(params).encode(), hashlib.sha256)
    return _equal(mac.hexdigest(), signature)


def sign_webhook(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers that authenticate a webhook body."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(derived_key(secret, "webhook"), ts.encode() + b"." + body, hashlib.sha256)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: mac.hexdigest()}


def verify_webhook(secret: str, body: bytes, timestamp: str, signature: str, now: float | None = None) -> bool:
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > LAUNCH_MAX_AGE:
        return False
    expected = sign_webhook(secret, body, int(timestamp))[SIGNATURE_HEADER]
    return _equal(expected, signature)


def legacy_notification_signature(app_id: str, secret: str, expiration_time: int) -> str:
    """The original platform's notification signature: MD5 hex of ``app_id:app_secret:expiration_time``.

    MD5 is what existing receivers check; it is kept for them, and the HMAC header
    above is the one that actually protects the body.
    """
    return hashlib.md5(f"{app_id}:{secret}:{expiration_time}".encode(), usedforsecurity=False).hexdigest()


# ------------------------------------------------------- typed verification


def launch_from(app_id: str, secret: str, params: Mapping[str, str], now: float | None = None) -> Launch:
    """The launch the platform signed for this app, or InvalidSignature."""
    if not verify_launch(secret, params, now):
        raise InvalidSignature("The launch signature is invalid or the launch is too old.", field="signature")
    if not _equal(params.get("app_id", ""), app_id):
        raise InvalidSignature("The launch is for another app.", field="app_id")
    if not params.get("xspe"):
        raise InvalidSignature("The launch names no xspe.", field="xspe")
    return Launch(app_id, params["xspe"], params.get("customer_id") or None, int(params["timestamp"]))


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), "")


def webhook_from(
    app_id: str, secret: str, body: bytes, headers: Mapping[str, str], now: float | None = None
) -> WebhookEvent:
    """The notification in ``body``, after checking the HMAC headers and the legacy MD5 field.

    Both must hold: the HMAC covers the body, the MD5 is what the original
    platform sent and proves the sender knew the secret when the event was built.
    """
    timestamp, signature = _header(headers, TIMESTAMP_HEADER), _header(headers, SIGNATURE_HEADER)
    if not verify_webhook(secret, body, timestamp, signature, now):
        raise InvalidSignature("The webhook signature is invalid or too old.", field=SIGNATURE_HEADER)
    try:
        document: Any = json.loads(body)
    except ValueError as exc:
        raise InvalidSignature("The webhook body is not JSON.") from exc
    if not isinstance(document, dict) or not legacy_signature_ok(app_id, secret, document, now):
        raise InvalidSignature("The webhook's signature field does not match.", field="signature")
    return WebhookEvent(
        type=int(document.get("type", 0)), customer_id=document.get("customer_id") or None,
        action_time=int(document.get("action_time", 0)), expiration_time=int(document["expiration_time"]),
        app_id=document.get("app_id"), xspe=document.get("xspe"), event_id=document.get("event_id"),
        body=document,
    )  # fmt: skip


def legacy_signature_ok(app_id: str, secret: str, document: Mapping[str, Any], now: float | None = None) -> bool:
    """The original platform's check: MD5 of ``app_id:secret:expiration_time``, not yet expired."""
    expiration = document.get("expiration_time")
    if not isinstance(expiration, int) or isinstance(expiration, bool):
        return False
    current_ms = (time.time() if now is None else now) * 1000
    if expiration < current_ms:
        return False
    expected = legacy_notification_signature(app_id, secret, expiration)
    return _equal(expected, str(document.get("signature", "")))
