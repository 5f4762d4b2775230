"""The one error table (SPEC §2): code → (RFC 6749 error string, default message).

The first three digits of a code are its HTTP status. Code raises
``OAuthError("invalid_grant", "...")``; nothing else writes error JSON. The message
is a safe sentence for the client; anything more detailed goes to the logs only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorKind:
    code: int
    error: str
    message: str

    @property
    def status(self) -> int:
        return self.code // 100


ERRORS: dict[str, ErrorKind] = {
    kind.error: kind
    for kind in (
        ErrorKind(40001, "invalid_request", "The request is missing a parameter or has a malformed one."),
        ErrorKind(40002, "unsupported_grant_type", "This endpoint does not accept that grant_type."),
        ErrorKind(40003, "unsupported_response_type", "response_type must be code."),
        ErrorKind(40004, "invalid_scope", "The scope is not allowed for this app or installation."),
        ErrorKind(40005, "invalid_redirect_uri", "redirect_uri must share the host of the app's host_url."),
        ErrorKind(40006, "invalid_grant", "The code or refresh token is invalid, expired, used or revoked."),
        ErrorKind(40101, "invalid_client", "Unknown app, wrong secret or suspended app."),
        ErrorKind(40102, "invalid_token", "The access token is missing, unknown, expired or revoked."),
        ErrorKind(40301, "access_denied", "The app is not installed for this customer or SPE."),
        ErrorKind(40302, "ip_not_allowed", "The caller's IP address is not in the app's whitelist."),
        ErrorKind(40303, "insufficient_scope", "The access token lacks the scope this API needs."),
        ErrorKind(40401, "not_found", "The resource does not exist."),
        ErrorKind(40501, "method_not_allowed", "This HTTP method is not allowed on this path."),
        ErrorKind(40901, "conflict", "The resource was changed by someone else; reload it and retry."),
        ErrorKind(42901, "rate_limited", "Too many requests; retry later."),
        ErrorKind(43101, "request_headers_too_large", "The request headers are larger than 16 KiB in total."),
        ErrorKind(50001, "server_error", "The server hit an unexpected error."),
        ErrorKind(50301, "temporarily_unavailable", "A backing service is unavailable; retry later."),
    )
}


class OAuthError(Exception):
    """An error the client may see; rendered from ERRORS by the HTTP layer."""

    def __init__(
        self,
        error: str,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        field: str | None = None,
    ) -> None:
        self.kind = ERRORS[error]
        self.message = message or self.kind.message
        self.headers = headers or {}
        self.field = field
        super().__init__(f"{error}: {self.message}")

    @property
    def code(self) -> int:
        return self.kind.code

    @property
    def error(self) -> str:
        return self.kind.error

    @property
    def status(self) -> int:
        return self.kind.status

    def envelope(self) -> dict[str, object]:
        body: dict[str, object] = {
            "code": self.code,
            "msg": self.message,
            "error": self.error,
            "result": None,
        }
        if self.field:
            body["field"] = self.field
        return body


class StorageUnavailable(Exception):
    """The database (or Redis) cannot be reached; rendered as 50301."""
