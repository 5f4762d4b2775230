"""Request parameters as the core sees them: one value per name, validated.

SPEC §2: parameters come as a form body (the docs' ``curl -d``), a JSON body or
the query string. A name given twice — in one source or across two — is
rejected (RFC 6749 §3.1: "parameters MUST NOT be included more than once"),
values must be valid UTF-8 without control characters, and everything is bounded.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote_plus

import orjson

from openplatform.core.text import CONTROL_CHARS
from openplatform.errors import OAuthError

MAX_PARAMS = 32
MAX_VALUE_LENGTH = 2048
MAX_NAME_LENGTH = 64
# state is echoed back byte for byte, so it may carry an app's own encoding.
LONG_VALUES = {"redirect_uri": 2048, "state": 1024}
SHORT_VALUE_LENGTH = 512
# A bytes.translate() table for core.text's control characters, at a quarter of the regex's cost:
# each byte that is or may begin one becomes 0, every other byte 1. In UTF-8 a C0 control or DEL is
# that one byte (no other character has a byte below 0x80), a C1 control begins with 0xC2 and
# U+2028/U+2029 with 0xE2; "no 0 after translating the encoded text" means no control character,
# and a 0 sends each value to the regex (a "£" or an "€" too, which then passes).
_CONTROL_BYTES = bytes(0 if byte < 0x20 or byte in (0x7F, 0xC2, 0xE2) else 1 for byte in range(256))
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# Levels of objects and arrays a JSON body may nest (the body itself is one). The API's bodies nest
# two; the bound is fixed here rather than left to the interpreter's recursion limit (about 990,
# less the caller's own depth), which the standard library's parser reached before.
MAX_JSON_DEPTH = 32


class TokenRequest(NamedTuple):
    """Everything a token-endpoint decision needs; built by the HTTP layer.

    A named tuple: immutable like the frozen dataclass it was, built for under half the
    instructions (a frozen dataclass sets each field through ``object.__setattr__``).
    """

    params: Mapping[str, str]
    client_ip: str
    basic_auth: tuple[str, str] | None = None

    def get(self, name: str) -> str | None:
        return self.params.get(name)

    def require(self, name: str) -> str:
        value = self.params.get(name)
        if not value:
            raise OAuthError("invalid_request", f"The {name} parameter is required.", field=name)
        return value


def _add(params: dict[str, str], name: str, value: str, checked: bool = False) -> None:
    """One parameter; ``checked`` when its source text is known to hold no control character."""
    if len(name) > MAX_NAME_LENGTH or not name:
        raise OAuthError("invalid_request", "A parameter name is empty or too long.")
    if not checked and CONTROL_CHARS.search(name):
        raise OAuthError("invalid_request", "A parameter name contains control characters.")
    if name in params:
        raise OAuthError("invalid_request", f"The {name} parameter is repeated.", field=name)
    limit = LONG_VALUES.get(name, SHORT_VALUE_LENGTH)
    if len(value) > limit:
        raise OAuthError("invalid_request", f"The {name} parameter is too long (max {limit}).", field=name)
    if not checked and CONTROL_CHARS.search(value):
        raise OAuthError("invalid_request", f"The {name} parameter contains control characters.", field=name)
    params[name] = value
    if len(params) > MAX_PARAMS:
        raise OAuthError("invalid_request", "Too many parameters.")


def _add_urlencoded(params: dict[str, str], raw: bytes | str, where: str) -> None:
    """Form-encoded pairs, as ``urllib.parse.parse_qsl`` reads them (blank values kept,
    strict UTF-8). Without ``%`` or ``+`` nothing needs decoding, and one scan of the
    whole text for control characters covers every name and value: the common token
    request then costs a third of going through parse_qsl (measured in-process)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise OAuthError("invalid_request", f"The {where} is not valid UTF-8 form encoding.") from exc
    if not text:
        return
    if "%" in text or "+" in text:
        for name, value in _pairs_from_urlencoded(text, where):
            _add(params, name, value)
        return
    # What parse_qsl's max_num_fields refuses (1 + the count of "&" over it): told by the pieces
    # rather than a count("&") scan of its own (1,800 instructions for an introspection's body). The
    # split stops past the limit: a body of "&"s alone (up to max_body_bytes) is not made into
    # millions of strings only to be refused.
    pieces = text.split("&", MAX_PARAMS * 2)
    if len(pieces) > MAX_PARAMS * 2:
        raise _too_many_fields(where)
    encoded = raw if isinstance(raw, bytes) else text.encode("utf-8", "surrogatepass")
    checked = 0 not in encoded.translate(_CONTROL_BYTES)
    for piece in pieces:
        if piece:
            name, _sep, value = piece.partition("=")
            # _add's checks inline, for the pair that passes them all (a call less per pair);
            # anything else goes through _add, which refuses it with its own message.
            if (
                checked and 0 < len(name) <= MAX_NAME_LENGTH and name not in params and len(params) < MAX_PARAMS
                and len(value) <= LONG_VALUES.get(name, SHORT_VALUE_LENGTH)
            ):  # fmt: skip
                params[name] = value
            else:
                _add(params, name, value, checked)


def _pairs_from_urlencoded(text: str, where: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict",
                         max_num_fields=MAX_PARAMS * 2)  # fmt: skip
    except UnicodeDecodeError as exc:
        raise OAuthError("invalid_request", f"The {where} is not valid UTF-8 form encoding.") from exc
    except ValueError as exc:  # parse_qsl's max_num_fields: the only ValueError without strict_parsing
        raise _too_many_fields(where) from exc


def _too_many_fields(where: str) -> OAuthError:
    """parse_qsl's ``max_num_fields``: the pieces between "&"s, empty ones included."""
    return OAuthError(
        "invalid_request", f"The {where} has too many fields (at most {MAX_PARAMS * 2}, empty ones included)."
    )


def json_object(raw: bytes) -> dict[str, object]:
    """A JSON body that must be an object (token endpoints, Open API and admin API writes).

    Raises OAuthError ``invalid_request`` (40001) when it is malformed, not an object, or names a
    field twice in any of its objects (SPEC §2: a parameter given twice is refused; RFC 8259 §4
    leaves repeated names to the reader, and orjson keeps the last, so ``{"secret": "wrong",
    "secret": "right"}`` was read as the second)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise OAuthError("invalid_request", "The JSON body is malformed.") from exc
    if not isinstance(data, dict):
        raise OAuthError("invalid_request", "The JSON body must be an object.")
    if not _nested_within(data, MAX_JSON_DEPTH):
        raise OAuthError("invalid_request", f"The JSON body is nested too deeply (more than {MAX_JSON_DEPTH} levels).")
    _refuse_repeated_names(raw)
    return data


def _nested_within(document: dict[str, object], limit: int) -> bool:
    """Whether no object or array in ``document`` lies more than ``limit`` levels deep (the
    document itself is level 1); iterative, so any depth orjson accepts is looked at safely."""
    stack: list[tuple[dict[str, object] | list[object], int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return False
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def _refuse_repeated_names(raw: bytes) -> None:
    """Read the document orjson accepted once more, with the standard library's parser (its only
    way to see every name of an object, ``object_pairs_hook``), refusing a name given twice. Only
    JSON bodies pay for it: the token endpoints' forms, the hot path, do not come here."""
    json.loads(raw.decode("utf-8"), object_pairs_hook=_unrepeated)  # within MAX_JSON_DEPTH: no RecursionError


def _unrepeated(pairs: list[tuple[str, object]]) -> None:
    seen: set[str] = set()
    for name, _value in pairs:
        if name in seen:
            raise OAuthError(
                "invalid_request",
                f"The JSON body gives the {name[:MAX_NAME_LENGTH]} field twice.",
                field=name[:MAX_NAME_LENGTH],
            )
        seen.add(name)


def _pairs_from_json(raw: bytes) -> list[tuple[str, str]]:
    data = json_object(raw)
    pairs: list[tuple[str, str]] = []
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise OAuthError("invalid_request", f"The {name} parameter must be a string.", field=name)
        pairs.append((name, str(value)))
    return pairs


def parse_params(query: bytes | str, body: bytes, content_type: str) -> dict[str, str]:
    """Merge query-string and body parameters, rejecting repeats and bad encodings."""
    params: dict[str, str] = {}
    if query:
        _add_urlencoded(params, query, "query string")
    if body:
        media = content_type if content_type == FORM_MEDIA_TYPE else content_type.split(";", 1)[0].strip().lower()
        if media == FORM_MEDIA_TYPE or not media:
            _add_urlencoded(params, body, "request body")
        elif media == "application/json" or media.endswith("+json"):
            for name, value in _pairs_from_json(body):
                _add(params, name, value)
        else:
            raise OAuthError("invalid_request", "The body must be form-encoded or JSON.")
    return params


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: ``Authorization: Basic base64(app_id:secret)`` (form-urlencoded parts).

    The header arrives as latin-1 text: any byte may be in it. Whatever is not
    base64 of UTF-8 ``id:secret`` within the parameter limits is 40001, never
    an exception (issue 9: non-ASCII bytes here answered 500).
    """
    if not header or not header[:6].lower() == "basic ":
        return None
    malformed = OAuthError("invalid_request", "The Basic authorization header is malformed.")
    encoded = header[6:].strip()
    if not encoded.isascii() or len(encoded) > 4 * SHORT_VALUE_LENGTH:
        raise malformed
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        values = unquote_plus(user, errors="strict"), unquote_plus(password, errors="strict")
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise malformed from exc
    if not sep:
        raise malformed
    for value in values:
        if len(value) > SHORT_VALUE_LENGTH or CONTROL_CHARS.search(value):
            raise malformed
    return values
