"""A refresh token's successor is derived, not drawn (``Keyring.rotation_token``, SPEC §2.3): a retry
within the leeway gets the same pair again, also after a restart into a newer version. The derivation
is HMAC-SHA256 under the server key's ``refresh-rotation`` sub-key, however it is computed."""

from __future__ import annotations

import base64
import hashlib
import hmac

from openplatform.security import Keyring, order_prefix

SERVER_KEY = b"a server key of thirty-two bytes"


def derived_as_first_released(refresh_token: str, kind: str) -> str:
    sub_key = hmac.new(SERVER_KEY, b"openplatform/refresh-rotation", hashlib.sha256).digest()
    mac = hmac.new(sub_key, f"{kind}\x00{refresh_token}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(order_prefix(refresh_token) + mac).rstrip(b"=").decode()


def test_the_successor_is_the_one_every_version_derives() -> None:
    keyring = Keyring(SERVER_KEY)
    for _ in range(3):  # the pre-keyed MAC is copied, never updated in place
        raw, _digest = keyring.mint()
        for kind in ("access", "refresh"):
            assert keyring.rotation_token(raw, kind) == derived_as_first_released(raw, kind)
    raw = keyring.mint()[0]
    assert keyring.rotation_token(raw, "access") != keyring.rotation_token(raw, "refresh")
    assert Keyring(b"another server key, 32 bytes lon").rotation_token(raw, "access") != keyring.rotation_token(
        raw, "access"
    )
