"""Secrets handling: random values, keyed digests, encryption at rest, comparisons.

Tokens, codes and app secrets are high-entropy random strings, so a keyed
SHA-256 (HMAC) is the right stored form: fast on the hot path, useless to
someone who steals the database without the server key. App secrets are also
kept AES-GCM encrypted, because the documented install notification signs with
the secret itself (SPEC §3). Nothing here ever logs a value.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

T = TypeVar("T")


def new_token() -> str:
    """An opaque bearer value: 256 bits, URL-safe, 43 characters."""
    return secrets.token_urlsafe(32)


# Bearer tokens and codes start with their issue time: 6 bytes of milliseconds
# since the epoch (not secret; expires_in tells about as much). Their stored keys
# start with the same bytes, so the keys of tokens issued together sort together
# and the database appends to one end of its indexes instead of dirtying a random
# page per token. Measured on SQLite (docs/benchmarks.md): a token and its audit
# row cost about a third of the CPU with ordered keys than with random ones.
ORDER_BYTES = 6
MAC_BYTES = 26  # the keyed hash in a stored key, cut to 208 bits so the key stays 64 hex chars
_UNORDERED = bytes(ORDER_BYTES)


# The random part of minted tokens, drawn from the kernel 4 KiB at a time: one os.urandom call
# per 128 tokens instead of one each (a system call, measured 1.5–1.8 µs here: 12 % of an app-token
# grant's handler). The chunks are the kernel's CSPRNG output, used once each; a forked child
# empties the pool first, so parent and child never hand out the same bytes. deque.popleft is
# atomic, so threads never share a chunk either.
_ENTROPY_CHUNK = 32
_ENTROPY_READ = 4096
_entropy: deque[bytes] = deque()
os.register_at_fork(after_in_child=_entropy.clear)


def token_entropy() -> bytes:
    """32 bytes from the operating system's CSPRNG (``os.urandom``), never handed out twice."""
    try:
        return _entropy.popleft()
    except IndexError:
        block = os.urandom(_ENTROPY_READ)
        _entropy.extend(block[i : i + _ENTROPY_CHUNK] for i in range(_ENTROPY_CHUNK, _ENTROPY_READ, _ENTROPY_CHUNK))
        return block[:_ENTROPY_CHUNK]


# base64's URL-safe alphabet, as ``base64.urlsafe_b64encode``/``urlsafe_b64decode`` translate it
# (the same binascii calls and tables, without their two Python-level calls per value).
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def issue_stamp() -> bytes:
    """The issue-time prefix of a value made now: ``ORDER_BYTES`` of milliseconds since the epoch."""
    return (time.time_ns() // 1_000_000).to_bytes(ORDER_BYTES, "big")


def stamp_of(digest: str) -> bytes:
    """The issue-time prefix a stored key (``Keyring.token_digest``) starts with."""
    return bytes.fromhex(digest[: 2 * ORDER_BYTES])


def order_prefix(raw: str) -> bytes:
    """The issue-time bytes a bearer value starts with (zeros for anything else)."""
    try:  # base64.urlsafe_b64decode, inlined (non-ASCII text is its ValueError too)
        head = binascii.a2b_base64(raw[:8].encode("ascii").translate(_FROM_URLSAFE)) if len(raw) >= 8 else b""
    except (binascii.Error, ValueError):
        return _UNORDERED
    return head if len(head) == ORDER_BYTES else _UNORDERED


def new_app_id() -> str:
    """32 lowercase hex characters, like the documentation's APP_ID."""
    return secrets.token_hex(16)


def new_secret() -> str:
    """An app secret: 256 bits as 64 lowercase hex characters."""
    return secrets.token_hex(32)


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(8)}"


def constant_time_equals(left: str | bytes, right: str | bytes) -> bool:
    if isinstance(left, str) and isinstance(right, str) and left.isascii() and right.isascii():
        return hmac.compare_digest(left, right)  # hex digests, the usual case: nothing to encode
    a = left.encode() if isinstance(left, str) else left
    b = right.encode() if isinstance(right, str) else right
    return hmac.compare_digest(a, b)


_IPAD = bytes(x ^ 0x36 for x in range(256))  # RFC 2104's ipad and opad, as translate() tables
_OPAD = bytes(x ^ 0x5C for x in range(256))


class _KeyedSha256:
    """HMAC-SHA256 (RFC 2104) under one key: SHA-256 of the key's inner and outer pads, hashed
    once. Each MAC copies the two states, as ``hmac.HMAC.copy`` does with the same two OpenSSL
    contexts (the key schedule is skipped either way), but through ``hashlib``'s C methods only:
    about a third fewer instructions than hmac's pre-keyed object, whose copy() is Python code,
    and half of ``hmac.digest``'s, which keys OpenSSL's HMAC afresh on every call (both
    counted under callgrind, docs/benchmarks.md). The bytes are HMAC's; a test compares them."""

    __slots__ = ("inner", "outer")

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\x00")
        self.inner = hashlib.sha256(padded.translate(_IPAD))
        self.outer = hashlib.sha256(padded.translate(_OPAD))

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of ``data`` under this key (32 bytes); the stored states are only copied."""
        inner, outer = self.inner.copy(), self.outer.copy()
        inner.update(data)
        outer.update(inner.digest())
        return outer.digest()


class Keyring:
    """Sub-keys derived from the one server key, each for one purpose.

    ``old_keys`` are previous server keys (``OPENPLATFORM_OLD_SECRET_KEYS``, SPEC §10):
    each becomes a keyring of its own in ``old``, used only to *find* what was made
    under it (``find``; token, code, session and admin-key digests; app secret
    verifiers) and to *decrypt* secrets sealed under it. Everything new is made
    under the current key.
    """

    def __init__(self, server_key: bytes, old_keys: Iterable[bytes] = ()) -> None:
        # Keyed once; each digest works on copies of the padded key's hash states, which skips
        # the key schedule (and, with OpenSSL 3, looking the hash up by name) on the hot path.
        self._digest_mac = _KeyedSha256(self._derive(server_key, b"digest"))
        self._secret_mac = _KeyedSha256(self._derive(server_key, b"app-secret"))
        self._rotation_mac = _KeyedSha256(self._derive(server_key, b"refresh-rotation"))
        self._aead = AESGCM(self._derive(server_key, b"encryption"))
        # In the configured order; the current key and repeats are left out (nothing to try twice).
        unique = dict.fromkeys(key for key in old_keys if key != server_key)
        self.old: tuple[Keyring, ...] = tuple(Keyring(key) for key in unique)

    @staticmethod
    def _derive(server_key: bytes, purpose: bytes) -> bytes:
        return hmac.new(server_key, b"openplatform/" + purpose, hashlib.sha256).digest()

    def digest(self, value: str) -> str:
        """The stored form of a session cookie and other random values (hex HMAC-SHA256)."""
        return self._digest_mac.mac(value.encode()).hex()

    def token_digest(self, raw: str, prefix: bytes | None = None) -> str:
        """The stored key of a bearer token or code: its issue-time prefix, then its keyed
        hash (HMAC-SHA256 cut to 208 bits); 64 hex characters, never the value itself."""
        return ((prefix or order_prefix(raw)) + self._digest_mac.mac(raw.encode())[:MAC_BYTES]).hex()

    async def find(
        self, fetch: Callable[[str], Awaitable[T | None]], key: Callable[[Keyring, str], str], value: str
    ) -> T | None:
        """What ``fetch`` finds under ``key(keyring, value)``: the current key's stored form
        first, then — only when that misses — each old key's, in order (SPEC §10).

        ``key`` is ``Keyring.token_digest`` or ``Keyring.digest``; a value made under
        the current key costs one lookup, whatever the old keys.
        """
        found = await fetch(key(self, value))
        for old in self.old if found is None else ():
            found = await fetch(key(old, value))
            if found is not None:
                break
        return found

    def mint(self) -> tuple[str, str]:
        """A new bearer token or code, and its stored key."""
        stamp = issue_stamp()
        raw = _b64(stamp + token_entropy())
        return raw, self.token_digest(raw, stamp)

    def secret_hash(self, app_id: str, secret: str) -> str:
        """The stored verifier of an app secret, bound to its app."""
        return self._secret_mac.mac(app_id.encode() + b"\x00" + secret.encode()).hex()

    def rotation_token(self, refresh_token: str, kind: str, stamp: bytes) -> str:
        """The successor of a refresh token, derived rather than drawn at random.

        Deriving the new pair from the presented refresh token lets a retry within
        the leeway (SPEC §2.3) get the *same* pair again without the server ever
        storing a raw token: only someone holding the old refresh token and the
        server key can compute it. ``stamp`` (``ORDER_BYTES``) is the issue-time
        prefix: ``issue_stamp()`` for a new pair, so its keys append to the indexes
        like every other new token's; for a retry, the one the first rotation used,
        read from the successor it stored (``stamp_of``). Rotations before this
        argument existed used the presented token's own prefix (``order_prefix``).
        """
        return _b64(stamp + self._rotation_mac.mac(f"{kind}\x00{refresh_token}".encode()))

    def encrypt(self, plaintext: str, associated: str) -> bytes:
        """AES-GCM under the current key: a 12-byte random nonce, then ciphertext and tag."""
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), associated.encode())

    def decrypt(self, blob: bytes, associated: str) -> str:
        """``encrypt``'s plaintext, under the current key or else an old one (SPEC §10).

        Raises ``cryptography.exceptions.InvalidTag`` when no configured key sealed
        ``blob`` for ``associated`` (a wrong key, or a blob moved to another app).
        """
        return self.opened(blob, associated)[0]

    def opened(self, blob: bytes, associated: str) -> tuple[str, bool]:
        """The plaintext, and whether the current key sealed it (False: an old key did;
        ``openplatform db reencrypt`` moves it). Raises ``InvalidTag`` as ``decrypt``."""
        try:
            return self._open(blob, associated), True
        except InvalidTag:
            for old in self.old:
                try:
                    return old._open(blob, associated), False
                except InvalidTag:
                    continue
            raise

    def _open(self, blob: bytes, associated: str) -> str:
        return self._aead.decrypt(blob[:12], blob[12:], associated.encode()).decode()
