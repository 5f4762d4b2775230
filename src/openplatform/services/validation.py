"""Validation of management input; raises ValidationError naming the field at fault."""

from __future__ import annotations

from collections.abc import Iterable

from openplatform.core.egress import host_refusal
from openplatform.core.ip_policy import parse_whitelist_entry
from openplatform.core.redirect_uri import RedirectUriError, ascii_url, parse_origin
from openplatform.core.text import has_control_chars
from openplatform.errors import echo
from openplatform.models import REGISTRABLE_SCOPES


class ValidationError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(LookupError):
    """Nothing by that name: ``NotFound("no SPE", xspe)`` reads ``no SPE 'spe_…'``, the caller's
    ``value`` repeated through ``errors.echo`` (at most 64 characters), so no call site can
    send back a 4 KB id; the admin API answers it 404 / 40401, the CLI exits 4."""

    def __init__(self, message: str, value: object = None) -> None:
        super().__init__(message if value is None else f"{message} {echo(value)}")


def text(field: str, value: str, max_length: int = 200, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ValidationError(field, "is required")
    if len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters")
    if has_control_chars(value):
        raise ValidationError(field, "must not contain control characters")
    return value


def url(field: str, value: str, required: bool = True) -> str | None:
    """An absolute https URL (http for localhost only), with its host as IDNA A-labels; None if empty and optional.

    Raises ValidationError naming ``field``; a missing or foreign scheme is named in the message
    ("must start with https://, not ftp://"), the other faults are those of ``parse_origin``.
    """
    value = (value or "").strip()
    if not value:
        if not required:
            return None
        raise ValidationError(field, "is required")
    if len(value) > 2048:
        raise ValidationError(field, "must be at most 2048 characters")
    scheme, sep, _ = value.partition("://")
    if not sep:
        raise ValidationError(field, "must be a full URL starting with https://, such as https://app.example.com/")
    if scheme.lower() not in ("http", "https"):
        shown = scheme if scheme.isascii() and scheme.isprintable() and len(scheme) <= 20 else "that scheme"
        raise ValidationError(field, f"must start with https:// (or http:// for localhost), not {shown}://")
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
                raise ValidationError("scope", f"{echo(part)} is not one of {', '.join(REGISTRABLE_SCOPES)}")
            if part not in found:
                found.append(part)
    return tuple(found)


def whitelist(values: Iterable[str]) -> tuple[str, ...]:
    """IP addresses and CIDR ranges (one per line, or separated by commas or spaces), normalised, no duplicates.

    Every bad entry is named in the one ValidationError ("'x' and '300.1.2.3' are not IP
    addresses or CIDR ranges"), so a pasted list is fixed in one go; at most 100 entries.
    """
    entries: list[str] = []
    bad: list[str] = []
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                entries.append(str(parse_whitelist_entry(part)))
            except ValueError:
                bad.append(echo(part))
    if len(bad) == 1:
        raise ValidationError("ip_whitelist", f"{bad[0]} is not an IP address or CIDR range")
    if bad:
        named = ", ".join(bad[:-1]) + f" and {bad[-1]}" if len(bad) <= 10 else ", ".join(bad[:10]) + " and others"
        raise ValidationError("ip_whitelist", f"{named} are not IP addresses or CIDR ranges")
    if len(entries) > 100:
        raise ValidationError("ip_whitelist", f"has {len(entries)} entries; at most 100 are allowed")
    return tuple(dict.fromkeys(entries))
