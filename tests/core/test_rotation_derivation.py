"""A refresh token's successor is derived, not drawn (``Keyring.rotation_token``, SPEC §2.3): a retry
within the leeway gets the same pair again, also after a restart into a newer version. The derivation
is HMAC-SHA256 under the server key's ``refresh-rotation`` sub-key, however it is computed."""

from __future__ import annotations

import base64
import hashlib
import hmac

from openplatform.security import ORDER_BYTES, Keyring, issue_stamp, order_prefix, stamp_of

SERVER_KEY = b"a server key of thirty-two bytes"


def derived_as_first_released(refresh_token: str, kind: str) -> str:
    sub_key = hmac.new(SERVER_KEY, b"openplatform/refresh-rotation", hashlib.sha256).digest()
    mac = hmac.new(sub_key, f"{kind}\x00{refresh_token}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(order_prefix(refresh_token) + mac).rstrip(b"=").decode()


def test_the_successor_is_the_one_every_version_derives() -> None:
    """Stamped with the presented token's own prefix, as every version before the rotation's own
    stamp did, the pair is the one those versions handed out (so their retries still match)."""
    keyring = Keyring(SERVER_KEY)
    for _ in range(3):  # the pre-keyed MAC is copied, never updated in place
        raw, _digest = keyring.mint()
        for kind in ("access", "refresh"):
            assert keyring.rotation_token(raw, kind, order_prefix(raw)) == derived_as_first_released(raw, kind)
    raw = keyring.mint()[0]
    stamp = order_prefix(raw)
    assert keyring.rotation_token(raw, "access", stamp) != keyring.rotation_token(raw, "refresh", stamp)
    assert Keyring(b"another server key, 32 bytes lon").rotation_token(raw, "access", stamp) != keyring.rotation_token(
        raw, "access", stamp
    )


def test_the_stamp_is_the_successors_prefix_and_read_back_from_its_key() -> None:
    """A new pair is stamped with the rotation's time (its keys append to the index); the retry
    reads that stamp back from the stored successor (``stamp_of``) and derives the same value."""
    keyring = Keyring(SERVER_KEY)
    raw = keyring.mint()[0]
    later = (int.from_bytes(order_prefix(raw), "big") + 5000).to_bytes(ORDER_BYTES, "big")
    successor = keyring.rotation_token(raw, "refresh", later)
    assert order_prefix(successor) == later
    assert stamp_of(keyring.token_digest(successor)) == later
    again = keyring.rotation_token(raw, "refresh", stamp_of(keyring.token_digest(successor)))
    assert again == successor
    # Only the prefix differs from the pair stamped otherwise: the keyed part is the token's.
    assert successor[8:] == keyring.rotation_token(raw, "refresh", order_prefix(raw))[8:]
    assert issue_stamp() >= order_prefix(raw)  # now: not before a token minted earlier
