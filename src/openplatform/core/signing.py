"""Signatures an app can verify with its secret: signed launches and webhooks (SPEC §3).

Keys are derived from the app secret (``HMAC-SHA256(secret, purpose)``) so a
signature never exposes the secret, and a launch signature cannot be replayed as
a webhook signature or the other way round.

Signed launch: the portal sends the browser to ``host_url`` with the query
parameters ``app_id``, ``xspe``, ``customer_id`` (empty for an SPE-wide launch),
``timestamp`` (UNIX seconds) and ``signature``. The canonical string is those
parameters except ``signature``, sorted by name, form-encoded and joined with
``&`` — e.g. ``app_id=…&customer_id=…&timestamp=1700000000&xspe=…`` — and
``signature = hex(HMAC-SHA256(HMAC-SHA256(secret, "launch"), canonical))``.
Launches older than ``LAUNCH_MAX_AGE`` seconds (or more than that in the future) are rejected.

Webhook: headers ``X-OpenPlatform-Timestamp: <UNIX seconds>`` and
``X-OpenPlatform-Signature: hex(HMAC-SHA256(HMAC-SHA256(secret, "webhook"), "<timestamp>.<raw body>"))``,
next to the original platform's MD5 ``signature`` field inside the body.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import urlencode

LAUNCH_MAX_AGE = 300
LAUNCH_FIELDS = ("app_id", "customer_id", "timestamp", "xspe")
TIMESTAMP_HEADER = "X-OpenPlatform-Timestamp"
SIGNATURE_HEADER = "X-OpenPlatform-Signature"


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
    if not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > LAUNCH_MAX_AGE:
        return False
    mac = hmac.new(derived_key(secret, "launch"), launch_canonical(params).encode(), hashlib.sha256)
    return hmac.compare_digest(mac.hexdigest(), signature)


def sign_webhook(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers that authenticate a webhook body."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(derived_key(secret, "webhook"), ts.encode() + b"." + body, hashlib.sha256)
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: mac.hexdigest()}


def verify_webhook(secret: str, body: bytes, timestamp: str, signature: str, now: float | None = None) -> bool:
    if not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > LAUNCH_MAX_AGE:
        return False
    expected = sign_webhook(secret, body, int(timestamp))[SIGNATURE_HEADER]
    return hmac.compare_digest(expected, signature)


def legacy_notification_signature(app_id: str, secret: str, expiration_time: int) -> str:
    """The original platform's notification signature: MD5 hex of ``app_id:app_secret:expiration_time``.

    MD5 is what existing receivers check; it is kept for them, and the HMAC header
    above is the one that actually protects the body.
    """
    return hashlib.md5(f"{app_id}:{secret}:{expiration_time}".encode(), usedforsecurity=False).hexdigest()
