"""Verify what the platform signs for an app: launches and webhooks (SPEC §3).

The primitives are re-exported from ``openplatform.core.signing`` (one
implementation for the server that signs and the apps that verify); the
functions here add parsing into typed results and clear errors.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from openplatform.client.errors import InvalidSignature
from openplatform.client.models import Launch, WebhookEvent
from openplatform.core.signing import (
    LAUNCH_FIELDS,
    LAUNCH_MAX_AGE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    legacy_notification_signature,
    sign_launch,
    sign_webhook,
    verify_launch,
    verify_webhook,
)

__all__ = [
    "LAUNCH_FIELDS", "LAUNCH_MAX_AGE", "SIGNATURE_HEADER", "TIMESTAMP_HEADER",
    "legacy_notification_signature", "sign_launch", "sign_webhook", "verify_launch", "verify_webhook",
    "launch_from", "webhook_from", "legacy_signature_ok",
]  # fmt: skip


def launch_from(app_id: str, secret: str, params: Mapping[str, str], now: float | None = None) -> Launch:
    """The launch the platform signed for this app, or InvalidSignature."""
    if not verify_launch(secret, params, now):
        raise InvalidSignature("The launch signature is invalid or the launch is too old.", field="signature")
    if not hmac.compare_digest(params.get("app_id", ""), app_id):
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
    if not isinstance(expiration, int):
        return False
    current_ms = (time.time() if now is None else now) * 1000
    if expiration < current_ms:
        return False
    expected = legacy_notification_signature(app_id, secret, expiration)
    return hmac.compare_digest(expected, str(document.get("signature", "")))
