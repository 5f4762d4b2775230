"""Launch and webhook signatures (SPEC §3): the server signs with the SDK's own code.

One implementation for the server that signs and the apps that verify: the
functions live in the Python SDK, ``openplatform_client.signing`` (clients/python,
standard library only), and are re-exported here for the services and the
portal. The scheme is described there and in docs/launch.md and docs/webhooks.md.
"""

from __future__ import annotations

from openplatform_client.signing import (
    LAUNCH_FIELDS,
    LAUNCH_MAX_AGE,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    derived_key,
    launch_canonical,
    legacy_notification_signature,
    sign_launch,
    sign_webhook,
    verify_launch,
    verify_webhook,
)

__all__ = [
    "LAUNCH_FIELDS", "LAUNCH_MAX_AGE", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "derived_key", "launch_canonical",
    "legacy_notification_signature", "sign_launch", "sign_webhook", "verify_launch", "verify_webhook",
]  # fmt: skip
