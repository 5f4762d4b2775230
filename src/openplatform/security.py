"""Secrets handling: random values, keyed digests, encryption at rest, comparisons.

Tokens, codes and app secrets are high-entropy random strings, so a keyed
SHA-256 (HMAC) is the right stored form: fast on the hot path, useless to
someone who steals the database without the server key. App secrets are also
kept AES-GCM encrypted, because the documented install notification signs with
the secret itself (SPEC §3). Nothing here ever logs a value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def new_token() -> str:
    """An opaque bearer value: 256 bits, URL-safe, 43 characters."""
    return secrets.token_urlsafe(32)


def new_app_id() -> str:
    """32 lowercase hex characters, like the documentation's APP_ID."""
    return secrets.token_hex(16)


def new_secret() -> str:
    """An app secret: 256 bits as 64 lowercase hex characters."""
    return secrets.token_hex(32)


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(8)}"


def constant_time_equals(left: str | bytes, right: str | bytes) -> bool:
    a = left.encode() if isinstance(left, str) else left
    b = right.encode() if isinstance(right, str) else right
    return hmac.compare_digest(a, b)


class Keyring:
    """Sub-keys derived from the one server key, each for one purpose."""

    def __init__(self, server_key: bytes) -> None:
        # Keyed once; each digest works on a copy, which skips the key schedule
        # (and, with OpenSSL 3, looking the hash up by name) on the hot path.
        self._digest_mac = hmac.new(self._derive(server_key, b"digest"), digestmod=hashlib.sha256)
        self._secret_mac = hmac.new(self._derive(server_key, b"app-secret"), digestmod=hashlib.sha256)
        self._rotation_key = self._derive(server_key, b"refresh-rotation")
        self._aead = AESGCM(self._derive(server_key, b"encryption"))

    @staticmethod
    def _derive(server_key: bytes, purpose: bytes) -> bytes:
        return hmac.new(server_key, b"openplatform/" + purpose, hashlib.sha256).digest()

    def digest(self, value: str) -> str:
        """The stored form of a token or code (hex HMAC-SHA256)."""
        mac = self._digest_mac.copy()
        mac.update(value.encode())
        return mac.hexdigest()

    def secret_hash(self, app_id: str, secret: str) -> str:
        """The stored verifier of an app secret, bound to its app."""
        mac = self._secret_mac.copy()
        mac.update(app_id.encode() + b"\x00" + secret.encode())
        return mac.hexdigest()

    def rotation_token(self, refresh_token: str, kind: str) -> str:
        """The successor of a refresh token, derived rather than drawn at random.

        Deriving the new pair from the presented refresh token lets a retry within
        the leeway (SPEC §2.3) get the *same* pair again without the server ever
        storing a raw token: only someone holding the old refresh token and the
        server key can compute it.
        """
        mac = hmac.new(self._rotation_key, f"{kind}\x00{refresh_token}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def encrypt(self, plaintext: str, associated: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), associated.encode())

    def decrypt(self, blob: bytes, associated: str) -> str:
        return self._aead.decrypt(blob[:12], blob[12:], associated.encode()).decode()
