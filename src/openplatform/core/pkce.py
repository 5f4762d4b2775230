"""RFC 7636 (PKCE), S256 only: ``plain`` gives no protection where it matters."""

from __future__ import annotations

import base64
import hashlib
import re

from openplatform.errors import OAuthError
from openplatform.security import constant_time_equals

# §4.1: code_verifier = 43*128unreserved; the S256 challenge is 43 base64url chars.
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def validate_challenge(challenge: str | None, method: str | None) -> str | None:
    """§4.3: the authorization request's challenge, or None when PKCE is not used."""
    if challenge is None:
        if method is not None:
            raise OAuthError("invalid_request", "code_challenge_method was sent without code_challenge.")
        return None
    if method != "S256":
        raise OAuthError("invalid_request", "code_challenge_method must be S256.")
    if not _CHALLENGE.match(challenge):
        raise OAuthError("invalid_request", "code_challenge must be 43 base64url characters.")
    return challenge


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(challenge: str | None, verifier: str | None) -> None:
    """§4.6: the token request must prove possession of the verifier."""
    if challenge is None:
        if verifier is not None:
            raise OAuthError("invalid_grant", "code_verifier was sent but the code has no challenge.")
        return
    if verifier is None:
        raise OAuthError("invalid_grant", "code_verifier is required for this code.")
    if not _VERIFIER.match(verifier) or not constant_time_equals(s256(verifier), challenge):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge.")
