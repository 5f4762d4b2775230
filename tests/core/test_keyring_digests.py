"""The stored forms of tokens, codes, sessions and app secrets never change with how they are
computed (issue 14): rows written by earlier versions must still be found. The expected values
below were computed by the version that keyed ``hmac.HMAC`` objects (8266b54)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from openplatform.security import Keyring, _b64, constant_time_equals, order_prefix

SERVER_KEY = b"a server key of thirty-two bytes"
RAW = "AZN0bXJzabcdefghijklmnopqrstuvwxyz0123456789-_AB"
STAMP = b"\x01\x02\x03\x04\x05\x06"


def test_stored_forms_are_those_of_earlier_versions() -> None:
    keyring = Keyring(SERVER_KEY)
    assert keyring.token_digest(RAW) == "0193746d7273368c7f59a4e4dde49fb733f464bd4de83cfb642a2ec18196eebd"
    assert keyring.token_digest(RAW, STAMP) == "010203040506368c7f59a4e4dde49fb733f464bd4de83cfb642a2ec18196eebd"
    assert keyring.token_digest("x" * 43) == "c71c71c71c713d18cc891bc09604c85f90588f61f5f2b71f7a7343e3d7b89366"
    assert keyring.digest("a session cookie value") == (
        "956c9f0dd3470d5158bccf3b0d37f5e071bc67587fb127da0586e6cbb8cb66c9"
    )
    assert keyring.secret_hash("0123456789abcdef0123456789abcdef", "ab" * 32) == (
        "6edfa39816fd6bda5b1883d8c6893a5c520ce8eb89326aed25bdc2730f0bfe33"
    )
    assert keyring.rotation_token(RAW, "refresh", STAMP) == "AQIDBAUGeaOnFqwkEhfluO17LQgVqv8Cf6hgULOPgm4nC4kHT44"


def _sub_key(server_key: bytes, purpose: bytes) -> bytes:
    return hmac.new(server_key, b"openplatform/" + purpose, hashlib.sha256).digest()


@pytest.mark.parametrize("server_key", [SERVER_KEY, b"", b"k" * 64, b"long key " * 20])
@pytest.mark.parametrize("value", ["", "é", "x" * 200, RAW])
def test_every_digest_is_hmac_sha256_under_its_sub_key(server_key: bytes, value: str) -> None:
    """Under any server key (sub-keys are 32 bytes; the pads also cover other lengths), each
    stored form is the standard library's HMAC, twice in a row (the keyed states are copied)."""
    keyring = Keyring(server_key)
    digest_key = _sub_key(server_key, b"digest")
    for _ in range(2):
        assert keyring.digest(value) == hmac.new(digest_key, value.encode(), hashlib.sha256).hexdigest()
        mac = hmac.digest(digest_key, value.encode(), "sha256")[:26]
        assert keyring.token_digest(value, STAMP) == (STAMP + mac).hex()
        secret = hmac.new(_sub_key(server_key, b"app-secret"), b"app\x00" + value.encode(), hashlib.sha256)
        assert keyring.secret_hash("app", value) == secret.hexdigest()
        rotation = hmac.digest(_sub_key(server_key, b"refresh-rotation"), f"access\x00{value}".encode(), "sha256")
        assert keyring.rotation_token(value, "access", STAMP) == _b64(STAMP + rotation)


def test_a_minted_tokens_key_is_its_token_digest() -> None:
    for keyring in (Keyring(SERVER_KEY), Keyring(b"another server key")):
        for _ in range(3):
            raw, key = keyring.mint()
            assert key == keyring.token_digest(raw) == keyring.token_digest(raw, order_prefix(raw))
            assert order_prefix(raw) != bytes(6)


@pytest.mark.parametrize("stamp", [STAMP, bytes(6), b"\xff" * 6])
def test_a_derived_successors_key_is_the_same_given_its_stamp(stamp: bytes) -> None:
    """A rotation passes the stamp its successors start with (tokens.user_pair), sparing the decode."""
    keyring = Keyring(SERVER_KEY)
    for kind in ("access", "refresh"):
        successor = keyring.rotation_token(RAW, kind, stamp)
        assert order_prefix(successor) == stamp
        assert keyring.token_digest(successor, stamp) == keyring.token_digest(successor)


@pytest.mark.parametrize(
    "raw", ["", "short", "AZN0bXJz", "AZN0+/Jz", "AZN0bX-_rest", "AZN0bXé=", "====____", "AZN0bX\x00z", "AZN0 bXJzz"]
)
def test_order_prefix_reads_what_urlsafe_b64decode_reads(raw: str) -> None:
    try:
        head = base64.urlsafe_b64decode(raw[:8]) if len(raw) >= 8 else b""
    except ValueError:  # binascii.Error is one
        head = b""
    assert order_prefix(raw) == (head if len(head) == 6 else bytes(6))


@pytest.mark.parametrize("raw", [b"", b"\xfb\xff", bytes(range(38)), bytes(range(200, 256))])
def test_b64_is_urlsafe_b64encode_unpadded(raw: bytes) -> None:
    assert _b64(raw) == base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [("ab", "ab", True), ("ab", "ac", False), (b"ab", "ab", True), ("é", "é", True), ("é", b"\xc3\xa9", True),
     ("é", "e", False), (b"", "", True)],
)  # fmt: skip
def test_constant_time_equals_compares_text_as_utf8(left: str | bytes, right: str | bytes, equal: bool) -> None:
    assert constant_time_equals(left, right) is equal
