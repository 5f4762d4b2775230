"""The one error table (SPEC §2): code → (RFC 6749 error string, default message).

The first three digits of a code are its HTTP status. Code raises
``OAuthError("invalid_grant", "...")``; nothing else writes error JSON. The message
is a safe sentence for the client; anything more detailed goes to the logs only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """One row of the table: ``code`` (first three digits: the HTTP status), the RFC 6749/6750
    ``error`` string, the default ``message`` sent to the client, and ``when`` it is answered
    (Markdown, the row of docs/errors.md: ``python -m tools.gen_docs``)."""

    code: int
    error: str
    message: str
    when: str

    @property
    def status(self) -> int:
        return self.code // 100


ERRORS: dict[str, ErrorKind] = {
    kind.error: kind
    for kind in (
        ErrorKind(40001, "invalid_request", "The request is missing a parameter or has a malformed one.",
                  "a parameter is missing, repeated, malformed or too long; the body is too large, not UTF-8, "
                  "or neither form nor JSON"),
        ErrorKind(40002, "unsupported_grant_type", "This endpoint does not accept that grant_type.",
                  "grant_type not accepted by that endpoint"),
        ErrorKind(40003, "unsupported_response_type", "response_type must be code.",
                  "response_type is not `code`"),
        ErrorKind(40004, "invalid_scope", "The scope is not allowed for this app or installation.",
                  "scope not allowed for this app/installation"),
        ErrorKind(40005, "invalid_redirect_uri", "redirect_uri must share the host of the app's host_url.",
                  "redirect_uri does not share the app's host_url host (see the rule in [api.md](api.md))"),
        ErrorKind(40006, "invalid_grant", "The code or refresh token is invalid, expired, used or revoked.",
                  "code / refresh token unknown, expired, used, revoked, or bound to another app"),
        ErrorKind(40101, "invalid_client", "Unknown app, wrong secret or suspended app.",
                  "unknown app_id, wrong or missing secret, suspended app — one sentence for all, so it tells nothing "
                  "about which (SPEC §9); `WWW-Authenticate: Basic realm=\"openplatform\"` on every token endpoint"),
        ErrorKind(40102, "invalid_token", "The access token is missing, unknown, expired or revoked.",
                  "access token missing, unknown, expired or revoked, or its app suspended or uninstalled "
                  "(`WWW-Authenticate: Bearer realm=\"openplatform\"`, with `error=\"invalid_token\"` unless no "
                  "token was sent)"),
        ErrorKind(40301, "access_denied", "The app is not installed for this customer or SPE.",
                  "app not installed for that customer/SPE, or xspe and customer_id do not match"),
        ErrorKind(40302, "ip_not_allowed", "The caller's IP address is not in the app's whitelist.",
                  "caller IP not in the app's whitelist"),
        ErrorKind(40303, "insufficient_scope", "The access token lacks the scope this API needs.",
                  "token lacks the scope the Open API needs"),
        ErrorKind(40401, "not_found", "The resource does not exist.",
                  "Open API resource does not exist or is not visible to the token; unknown path"),
        ErrorKind(40501, "method_not_allowed", "This HTTP method is not allowed on this path.",
                  "the path exists but not with this HTTP method"),
        ErrorKind(40901, "conflict", "The resource was changed by someone else; reload it and retry.",
                  "an update's version precondition does not match (someone else changed the object)"),
        ErrorKind(42901, "rate_limited", "Too many requests; retry later.",
                  "too many requests; `Retry-After` header set"),
        ErrorKind(43101, "request_headers_too_large", "The request headers are larger than 16 KiB in total.",
                  "the request's headers are larger than 16 KiB in total (SPEC §9)"),
        ErrorKind(50001, "server_error", "The server hit an unexpected error.",
                  "unexpected failure"),
        ErrorKind(50301, "temporarily_unavailable", "A backing service is unavailable; retry later.",
                  "a backing service (database, Redis) is down; `Retry-After` header set"),
    )
}  # fmt: skip


MAX_ECHO = 64  # characters of the caller's input any error message repeats (issue 10 review)


def echo(value: object, limit: int = MAX_ECHO) -> str:
    """``value`` as an error message repeats it: ``repr``-quoted (control characters escaped),
    at most ``limit`` characters of it and then ``…``. Every message that repeats input goes
    through here (``services.validation.NotFound``, ``directory_input.invalid``), so a 4 KB id
    comes back as 64 characters, to the client, the logs and the terminal."""
    text = str(value)
    return repr(text[:limit] + "…" if len(text) > limit else text)


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


class IntegrityError(Exception):
    """A constraint refused a write (a key taken, a reference naming nothing), on every backend.

    The SQL drivers translate their own (``sqlite3.IntegrityError``, asyncpg's
    ``IntegrityConstraintViolationError``) into it; the memory backend raises it where the tables'
    keys would refuse the write, and writes nothing. One class, so that a caller and the contract
    tests (``tests/storage/test_contract_*``) catch the same thing on every backend.
    """


class StorageUnavailable(Exception):
    """The database (or Redis) cannot be reached; rendered as 50301."""
