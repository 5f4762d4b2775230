"""Typed errors of the SDK, one class per code of the server's table (SPEC §2).

Every error the SDK raises is an ``OpenPlatformError`` carrying the envelope's
``code``, ``msg`` and ``error``. Failures detected on the app's side (a state
that does not match, a bad launch signature, the network) use the code the
server would use for the same situation, so callers handle both the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class OpenPlatformError(Exception):
    """Base of every error the SDK raises."""

    default_code = 50001
    default_error = "server_error"

    def __init__(
        self,
        msg: str,
        *,
        code: int | None = None,
        error: str | None = None,
        status: int | None = None,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = code if code is not None else self.default_code
        self.error = error or self.default_error
        self.status = status  # HTTP status of the answer, None for local failures
        self.field = field
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        return f"{self.code} {self.error}: {self.msg}{where}"


class ValidationError(OpenPlatformError):
    """40001 invalid_request: a parameter is missing or malformed; ``field`` names it."""

    default_code, default_error = 40001, "invalid_request"


class CustomerIdRequired(ValidationError, ValueError):
    """A call that needs a customer got None or an empty id; found before any request is sent.

    Also a ``ValueError``. An app opened for a whole SPE has no customer
    (``launch.customer_id`` is None): list the SPE's customers
    (``client.customers.list(xspe=launch.xspe)``) and pick one, or call the SPE-level
    APIs with the app token. ``field`` names the parameter.
    """


class UnsupportedGrantType(OpenPlatformError):
    default_code, default_error = 40002, "unsupported_grant_type"


class UnsupportedResponseType(OpenPlatformError):
    default_code, default_error = 40003, "unsupported_response_type"


class InvalidScopeError(OpenPlatformError):
    default_code, default_error = 40004, "invalid_scope"


class InvalidRedirectUriError(OpenPlatformError):
    default_code, default_error = 40005, "invalid_redirect_uri"


class InvalidGrantError(OpenPlatformError):
    """40006: the code (or refresh token) is unknown, expired, used or revoked."""

    default_code, default_error = 40006, "invalid_grant"


class InvalidClientError(OpenPlatformError):
    """40101: wrong app_id or secret, or the app is suspended."""

    default_code, default_error = 40101, "invalid_client"


class InvalidTokenError(OpenPlatformError):
    """40102: the access token is unknown, expired or revoked (after one refresh and retry)."""

    default_code, default_error = 40102, "invalid_token"


class AccessDenied(OpenPlatformError):
    default_code, default_error = 40301, "access_denied"


class IpNotAllowed(OpenPlatformError):
    default_code, default_error = 40302, "ip_not_allowed"


class InsufficientScope(OpenPlatformError):
    default_code, default_error = 40303, "insufficient_scope"


class NotFound(OpenPlatformError):
    """40401: the object does not exist or is outside the token's reach."""

    default_code, default_error = 40401, "not_found"


class MethodNotAllowed(OpenPlatformError):
    default_code, default_error = 40501, "method_not_allowed"


class Conflict(OpenPlatformError):
    """40901: the object changed since the version you sent; reload and retry."""

    default_code, default_error = 40901, "conflict"


class RateLimited(OpenPlatformError):
    """42901: slow down; ``retry_after`` is the server's Retry-After in seconds."""

    default_code, default_error = 42901, "rate_limited"

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after", "")
        return float(value) if value.replace(".", "", 1).isdigit() else None


class RequestHeadersTooLarge(OpenPlatformError):
    """43101: the request's headers are larger than 16 KiB in total."""

    default_code, default_error = 43101, "request_headers_too_large"


class ServerError(OpenPlatformError):
    default_code, default_error = 50001, "server_error"


class ServiceUnavailable(OpenPlatformError):
    default_code, default_error = 50301, "temporarily_unavailable"


class TransportError(ServiceUnavailable):
    """The server could not be reached or did not answer in time."""


class RequestTimeout(TransportError):
    """The request exceeded the client's timeout."""


class StateMismatch(OpenPlatformError):
    """The callback's ``state`` is not the one this app issued (RFC 6749 §10.12: CSRF)."""

    default_code, default_error = 40001, "invalid_request"


class InvalidSignature(OpenPlatformError):
    """A signed launch or webhook failed verification (forged, altered, stale or for another app)."""

    default_code, default_error = 40001, "invalid_request"


class ReauthorizationRequired(OpenPlatformError):
    """The customer's tokens are gone: refresh was refused (revoked family, uninstall, theft
    detected) or none were ever stored. Send the customer through ``connect_url`` again."""

    default_code, default_error = 40006, "invalid_grant"

    def __init__(self, msg: str, *, customer_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(msg, **kwargs)
        self.customer_id = customer_id


BY_ERROR: dict[str, type[OpenPlatformError]] = {
    cls.default_error: cls
    for cls in (
        ValidationError,
        UnsupportedGrantType,
        UnsupportedResponseType,
        InvalidScopeError,
        InvalidRedirectUriError,
        InvalidGrantError,
        InvalidClientError,
        InvalidTokenError,
        AccessDenied,
        IpNotAllowed,
        InsufficientScope,
        NotFound,
        MethodNotAllowed,
        Conflict,
        RateLimited,
        RequestHeadersTooLarge,
        ServerError,
        ServiceUnavailable,
    )  # fmt: skip
}


def from_envelope(body: Mapping[str, Any], status: int, headers: Mapping[str, str]) -> OpenPlatformError:
    """The typed error for an error envelope (looked up by ``error``, then by ``code``)."""
    code = body.get("code")
    error = str(body.get("error") or "")
    cls = BY_ERROR.get(error) or next((c for c in BY_ERROR.values() if c.default_code == code), None)
    if cls is None:
        cls = ServerError if status >= 500 else OpenPlatformError
    field = body.get("field")
    return cls(
        str(body.get("msg") or "The server refused the request."),
        code=code if isinstance(code, int) else cls.default_code,
        error=error or cls.default_error,
        status=status,
        field=str(field) if field else None,
        headers={k.lower(): v for k, v in headers.items()},
    )
