"""The documented redirect_uri rule: it "must share the same domain with host_url".

Read strictly (SPEC §2.1), because a loose reading is an open redirect that
leaks codes: an absolute URL; ``https`` (plain ``http`` only for loopback hosts);
host equal to host_url's host after lower-casing and IDNA (UTS #46)
normalisation — no other subdomain; the same effective port; no userinfo, no
fragment, no backslash, no whitespace or control character. Path and query are free.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import string
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

import idna

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# \s also catches Unicode spaces (U+00A0, U+3000...) that the ASCII range misses.
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\\#\s]|[\u0080-\u009f\u2028\u2029\ufeff]")
_HOSTNAME_CHARS = re.compile(r"^[^\s/?#@%:\[\]\\]+$")
_ASCII_PUNCTUATION = string.punctuation  # kept as they are by ascii_url: existing %-escapes stay


class RedirectUriError(ValueError):
    """The URL breaks the rule; the message says which part."""


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str  # normalised: ASCII lower-case, IPv6 without brackets
    port: int


# A pure function of the host as written, asked twice a code (the redirect_uri's host and the app's
# host_url's), nearly always with the same few hosts. UTS #46 processing in ``idna`` was most of it:
# cached, GET /oauth/connect costs 29 % fewer instructions (docs/benchmarks.md, "Many
# customers"). Bounded, so hosts an attacker invents only evict each other; a host refused raises
# again each time (lru_cache keeps no exception).
@functools.lru_cache(maxsize=1024)
def _normalise_host(raw: str) -> str:
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise RedirectUriError("The host is malformed.")
        try:
            return str(ipaddress.IPv6Address(raw[1:-1]))
        except ValueError as exc:
            raise RedirectUriError("The IPv6 host is malformed.") from exc
    if not raw or not _HOSTNAME_CHARS.match(raw):
        raise RedirectUriError("The host is missing or has forbidden characters.")
    try:
        return str(ipaddress.IPv4Address(raw))
    except ValueError:
        pass
    try:
        return idna.encode(raw, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise RedirectUriError("The host is not a valid domain name.") from exc


def _split_netloc(netloc: str) -> tuple[str, str | None]:
    if netloc.startswith("["):
        end = netloc.find("]")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise RedirectUriError("The host is malformed.")
        return host, rest[1:] if rest else None
    host, sep, port = netloc.rpartition(":")
    return (host, port) if sep else (netloc, None)


def parse_origin(url: str) -> Origin:
    """Scheme, normalised host and effective port of an absolute http(s) URL."""
    if _FORBIDDEN.search(url):
        raise RedirectUriError("The URL has whitespace, control characters, a backslash or a fragment.")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unbalanced bracket
        raise RedirectUriError("The URL is malformed.") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not url.lower().startswith(scheme + "://"):
        raise RedirectUriError("The URL must be absolute, with http or https.")
    if "@" in parts.netloc:
        raise RedirectUriError("The URL must not contain user information.")
    raw_host, raw_port = _split_netloc(parts.netloc)
    host = _normalise_host(raw_host)
    if raw_port is None or raw_port == "":
        if raw_port == "":
            raise RedirectUriError("The port is empty.")
        port = DEFAULT_PORTS[scheme]
    elif raw_port.isascii() and raw_port.isdigit() and 0 < int(raw_port) < 65536:
        port = int(raw_port)
    else:
        raise RedirectUriError("The port is not a number between 1 and 65535.")
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        raise RedirectUriError("Plain http is only allowed for localhost; use https.")
    return Origin(scheme, host, port)


def check_redirect_uri(redirect_uri: str, host_url: str) -> None:
    """Raise RedirectUriError unless redirect_uri may receive this app's codes."""
    target = parse_origin(redirect_uri)
    try:
        home = parse_origin(host_url)
    except RedirectUriError as exc:
        raise RedirectUriError("The app's host_url is not a valid URL.") from exc
    if target.host != home.host:
        raise RedirectUriError("The host must be the host of the app's host_url.")
    if target.port != home.port:
        raise RedirectUriError("The port must be the port of the app's host_url.")


def without_params(query: str, names: Collection[str]) -> str:
    """``query`` without its pairs named like one of ``names`` (however percent-encoded), the others
    as they are: the server appends those itself (a code to a redirect_uri, the signed launch
    parameters to a host_url), and a URL naming one already would send it twice, the app reading
    whichever its framework picks."""
    if not query:
        return query
    return "&".join(pair for pair in query.split("&") if unquote_plus(pair.split("=", 1)[0]) not in names)


def ascii_url(url: str) -> str:
    """The URL as it may go into a header or a stored field (SPEC §9): its host as IDNA
    A-labels (``例え.テスト`` → ``xn--r8jz45g.xn--zckzah``), any other non-ASCII character
    percent-encoded as UTF-8 (RFC 3987 §3.1). An ASCII URL comes back unchanged; the URL
    must already pass ``parse_origin``.
    """
    if url.isascii():
        return url
    parts = urlsplit(url)
    raw_host, port = _split_netloc(parts.netloc)
    host = _normalise_host(raw_host)
    netloc = (f"[{host}]" if ":" in host else host) + ("" if port is None else f":{port}")
    path, query, fragment = (quote(part, safe=_ASCII_PUNCTUATION) for part in (parts.path, parts.query, parts.fragment))
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def validate_host_url(host_url: str) -> str:
    """For app registration: host_url must itself pass the rule (so apps can work)."""
    parse_origin(host_url)
    return host_url
