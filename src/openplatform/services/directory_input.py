"""Validation of Open API bodies for customers and sites (SPEC §2.5).

Every error is an ``invalid_request`` envelope naming the field at fault.
Bodies arrive as JSON (strings and integers) or forms (strings only), so each
reader accepts both shapes and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

import idna

from openplatform.core.text import has_control_chars
from openplatform.errors import MAX_ECHO, OAuthError
from openplatform.services import validation as check
from openplatform.services.validation import ValidationError

Fields = Mapping[str, object]

CUSTOMER_STATUSES = ("active", "disabled")
SITE_STATUSES = ("active", "paused")
NAME_MAX = 200
CONTACT_MAX = 320
FILTER_MAX = 200
DOMAIN_MAX = 253  # RFC 1035 §2.3.4, without the trailing dot
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # RFC 1123 §2.1 LDH label, ≤ 63
NOT_IN_HOSTNAME = re.compile(r"[\s/\\:@?#\[\]%*]")  # scheme, path, port, userinfo, query, wildcard


def invalid(field: str, message: str) -> OAuthError:
    """400 / 40001 naming ``field``; a field name is the caller's input too (a JSON key), so at
    most ``MAX_ECHO`` characters of it are repeated, in the message and in ``field``."""
    if len(field) > MAX_ECHO:
        field = field[:MAX_ECHO] + "…"
    return OAuthError("invalid_request", f"{field} {message}.", field=field)


def only(fields: Fields, allowed: Collection[str]) -> None:
    for name in fields:
        if name not in allowed:
            raise invalid(name, f"is not a known field (expected one of: {', '.join(allowed)})")


def string(fields: Fields, name: str) -> str | None:
    value = fields.get(name)
    if value is None or isinstance(value, str):
        return value
    raise invalid(name, "must be a string")


def text(fields: Fields, name: str, max_length: int, required: bool = False) -> str | None:
    value = string(fields, name)
    if value is None and not required:
        return None
    try:
        return check.text(name, value or "", max_length, required=required)
    except ValidationError as exc:
        raise invalid(exc.field, exc.message) from exc


def choice(fields: Fields, name: str, options: tuple[str, ...]) -> str | None:
    value = string(fields, name)
    if value is not None and value not in options:
        raise invalid(name, f"must be one of {', '.join(options)}")
    return value


def hostname(value: str | None, field: str = "domain") -> str:
    """A bare DNS name, IDNA-normalised to lower-case A-labels (RFC 5891, UTS #46).

    No scheme, path, port, userinfo or wildcard; not an IP address; at least two
    labels of at most 63 letters, digits or hyphens; at most 253 characters.
    """
    raw = (value or "").strip()
    if not raw:
        raise invalid(field, "is required")
    if len(raw) > 4 * DOMAIN_MAX or NOT_IN_HOSTNAME.search(raw) or has_control_chars(raw):
        raise invalid(field, "must be a bare hostname such as shop.example.com (no scheme, path or port)")
    raw = raw[:-1] if raw.endswith(".") else raw  # the root label is implied
    try:
        name = idna.encode(raw, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise invalid(field, "is not a valid domain name") from exc
    labels = name.split(".")
    if len(name) > DOMAIN_MAX:
        raise invalid(field, f"must be at most {DOMAIN_MAX} characters")
    if len(labels) < 2:
        raise invalid(field, "must have at least two labels, such as example.com")
    if not all(LABEL.fullmatch(label) for label in labels):
        raise invalid(field, "has a label that is empty, longer than 63 characters or not letters/digits/hyphens")
    if labels[-1].isdigit():
        raise invalid(field, "must be a domain name, not an IP address")
    return name


def whole_number(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid(field, "must be a whole number")
    text_value = str(value)
    if not text_value.isascii() or not text_value.isdigit() or len(text_value) > 9 or int(text_value) < 1:
        raise invalid(field, "must be a whole number of at least 1")
    return int(text_value)


def if_match_version(header: str | None) -> int | None:
    """``If-Match: "3"`` (RFC 9110 §13.1.1); our entity tags are the version numbers.

    ``*`` means "whatever the current version is", i.e. no precondition. One
    strong tag only: a weak tag never matches under If-Match's strong
    comparison (RFC 9110 §8.8.3.2), so it is refused as a client mistake.
    """
    if header is None or header.strip() == "*":
        return None
    tag = header.strip()
    if "," in tag or tag.startswith("W/"):
        raise invalid("If-Match", 'must carry exactly one strong entity tag, such as "3"')
    bare = tag[1:-1] if len(tag) >= 2 and tag[0] == tag[-1] == '"' else tag
    return whole_number(bare, "If-Match")


def expected_version(fields: Fields, if_match: str | None) -> int | None:
    """The version the writer last saw: ``version`` in the body and/or ``If-Match``."""
    body = whole_number(fields["version"], "version") if fields.get("version") is not None else None
    header = if_match_version(if_match)
    if body is not None and header is not None and body != header:
        raise invalid("version", "and the If-Match header disagree")
    return body if body is not None else header


def customer_changes(fields: Fields, if_match: str | None) -> tuple[dict[str, str], int | None]:
    """What an update of a customer asks for (Open API ``PUT /api/spe/customer/{id}``, SPEC §2.5; the
    admin API's): the fields given among name, contact and status, checked (40001 otherwise, as for
    any other field), and the version the writer last saw (``expected_version``; None: no precondition)."""
    only(fields, ("name", "contact", "status", "version"))
    changes = {
        "name": text(fields, "name", NAME_MAX, required="name" in fields),
        "contact": text(fields, "contact", CONTACT_MAX),
        "status": choice(fields, "status", CUSTOMER_STATUSES),
    }
    given = {name: value for name, value in changes.items() if value is not None}
    return given, expected_version(fields, if_match)


def filter_text(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > FILTER_MAX or has_control_chars(value):
        raise invalid(field, f"must be at most {FILTER_MAX} characters without control characters")
    return value
