"""The form parser's shortcut for bodies without escapes reads exactly what parse_qsl reads."""

from __future__ import annotations

import tracemalloc
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openplatform.core.requests import MAX_PARAMS, parse_params
from openplatform.core.text import has_control_chars
from openplatform.errors import OAuthError

# Names and values from a small alphabet so that repeats, blanks, "=" inside values,
# stray "&" and control characters all come up often.
pieces = st.text(alphabet="ab=&\x01é", max_size=12)
forms = st.lists(pieces, max_size=8).map("&".join)


def reference(text: str) -> dict[str, str] | None:
    """What the general path (parse_qsl plus the same checks) answers; None for a refusal."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMS * 2):
        if not name or name in params or "\x01" in name + value:
            return None
        params[name] = value
    return params


@given(forms)
def test_shortcut_matches_parse_qsl(text: str) -> None:
    expected = reference(text)
    try:
        got: dict[str, str] | None = parse_params(b"", text.encode(), "application/x-www-form-urlencoded")
    except OAuthError as exc:
        assert exc.error == "invalid_request"
        got = None
    assert got == expected


@given(forms)
def test_escaped_and_plain_spellings_agree(text: str) -> None:
    escaped = text.replace("a", "%61")  # forces the general path; same meaning
    try:
        plain: object = parse_params(text, b"", "")
    except OAuthError:
        plain = "refused"
    try:
        general: object = parse_params(escaped, b"", "")
    except OAuthError:
        general = "refused"
    assert plain == general


def test_too_many_fields_is_refused_like_parse_qsl() -> None:
    for query, body in ((b"", b"&" * (MAX_PARAMS * 2)), (b"&" * (MAX_PARAMS * 2) + b"%41=1", b"")):  # both paths
        with pytest.raises(OAuthError, match="too many fields"):  # not "not valid UTF-8"
            parse_params(query, body, "")
    assert parse_params(b"", b"&" * (MAX_PARAMS * 2 - 1) + b"a=1", "") == {"a": "1"}


def test_a_body_of_separators_alone_is_refused_without_splitting_it_all() -> None:
    """Refusing too many fields costs about the body's own size, not a string per "&" (a 10 MiB body
    of them, max_body_bytes' ceiling, peaked at 99.8 MB when it was split whole)."""
    body = b"&" * (4 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(OAuthError):
            parse_params(b"", body, "")
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(body), peak


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(OAuthError, match="UTF-8"):
        parse_params(b"", b"a=\xff", "")


@pytest.mark.parametrize(
    "char",
    [chr(code) for code in range(0x80)] + ["é", "\x85", "\x9f", "\xa0", "£", "€", "\u2028", "\u2029", "\U0001f600"],
)
@pytest.mark.parametrize("as_bytes", [True, False])
def test_control_characters_are_refused_as_the_regex_finds_them(char: str, as_bytes: bool) -> None:
    """The shortcut's byte-table scan refuses exactly core.text's control characters (C0, DEL, C1,
    U+2028/U+2029), in names and values, from bytes (a body) and from text (a query string); other
    characters pass as parse_qsl reads them."""
    for text in (f"a=x{char}y&b=1", f"a{char}=1"):
        if char in "%+&=":
            continue  # not a control character, and not the shortcut's text
        source: bytes | str = text.encode() if as_bytes else text
        try:
            got: dict[str, str] | None = parse_params(source, b"", "")
        except OAuthError:
            got = None
        assert got == reference(text.replace(char, "\x01") if has_control_chars(char) else text)
