"""Validation of management input; raises ValidationError naming the field at fault."""

from __future__ import annotations

from collections.abc import Iterable

from openplatform.core.egress import host_refusal
from openplatform.core.ip_policy import parse_whitelist_entry
from openplatform.core.redirect_uri import RedirectUriError, ascii_url, parse_origin
from openplatform.models import REGISTRABLE_SCOPES


class ValidationError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(LookupError):
    pass


def text(field: str, value: str, max_length: int = 200, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationError(field, "is required")
    if len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters")
    if any(ord(ch) < 0x20 for ch in value):
        raise ValidationError(field, "must not contain control characters")
    return value


def url(field: str, value: str, required: bool = True) -> str | None:
    value = (value or "").strip()
    if not value and not required:
        return None
    if len(value) > 2048:
        raise ValidationError(field, "must be at most 2048 characters")
    try:
        parse_origin(value)
    except RedirectUriError as exc:
        raise ValidationError(field, str(exc)) from exc
    return ascii_url(value)  # stored with its host as IDNA A-labels (SPEC §9, docs/architecture.md)


def webhook_url(value: str, allow_private_networks: bool = False) -> str | None:
    """An app's webhook_url: a URL like any other, and not a literal private address (SPEC §9).

    Only what is certain without DNS is refused here (IP addresses in any spelling,
    ``localhost``); the sender checks what a name resolves to at every attempt.
    """
    checked = url("webhook_url", value, required=False)
    if checked is None or allow_private_networks:
        return checked
    kind = host_refusal(parse_origin(checked).host)
    if kind is not None:
        raise ValidationError(
            "webhook_url", f"The host is {kind}; webhooks are only sent to public internet addresses."
        )
    return checked


def scopes(values: Iterable[str]) -> tuple[str, ...]:
    found: list[str] = []
    for scope in values:
        for part in scope.replace(",", " ").split():
            if part == "install_login":
                continue  # implied by installation
            if part not in REGISTRABLE_SCOPES:
                raise ValidationError("scope", f"{part!r} is not one of {', '.join(REGISTRABLE_SCOPES)}")
            if part not in found:
                found.append(part)
    return tuple(found)


def whitelist(values: Iterable[str]) -> tuple[str, ...]:
    entries: list[str] = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                entries.append(str(parse_whitelist_entry(part)))
            except ValueError as exc:
                raise ValidationError("ip_whitelist", str(exc)) from exc
    if len(entries) > 100:
        raise ValidationError("ip_whitelist", "at most 100 entries")
    return tuple(dict.fromkeys(entries))
