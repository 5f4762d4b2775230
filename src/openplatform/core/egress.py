"""Where the server may send a request on someone's behalf: public addresses only (SPEC §9).

The one place that fetches a URL someone registered is the webhook sender
(``services/webhooks.py``). So that a ``webhook_url`` cannot make the server reach
into the operator's own network (blind SSRF), it:

- reads a host that is an IP address the way browsers (the WHATWG URL standard)
  and ``inet_aton`` do: ``2130706433``, ``0x7f000001``, ``017700000001``,
  ``127.1`` and ``0`` are all IPv4 addresses, so no spelling passes as a name;
- resolves a name once and refuses it when *any* address it resolves to is not
  public (see ``refusal``: IPv4 and IPv6, looking inside IPv4-mapped, NAT64 and
  6to4 addresses);
- connects to the address it checked, with the original Host header and the TLS
  certificate checked for the host name, so a DNS answer that changes after the
  check (rebinding) changes nothing; and follows no redirect.

``OPENPLATFORM_WEBHOOK_PRIVATE_NETWORKS=allow`` lifts the refusal (for development);
resolving once and connecting to that address stay.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import urlsplit

Address = IPv4Address | IPv6Address


class Refused(Exception):
    """The destination is not a public address; the message says why (it never holds the URL's query)."""


# IANA special-purpose blocks, written out so that the rule does not change with
# the Python version's idea of is_global. Anything in them is refused.
_IPV4_BLOCKS: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), kind)
    for net, kind in (
        ("0.0.0.0/32", "an unspecified address"),
        ("0.0.0.0/8", "a reserved address"),  # "this network"; Linux connects 0.x to the host itself
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("100.64.0.0/10", "a private address"),  # shared address space (carrier-grade NAT)
        ("169.254.0.0/16", "a link-local address"),  # cloud metadata services live here
        ("224.0.0.0/4", "a multicast address"),
        ("192.0.0.0/24", "a reserved address"),
        ("192.0.2.0/24", "a reserved address"),
        ("192.88.99.0/24", "a reserved address"),
        ("198.18.0.0/15", "a reserved address"),
        ("198.51.100.0/24", "a reserved address"),
        ("203.0.113.0/24", "a reserved address"),
        ("240.0.0.0/4", "a reserved address"),  # includes 255.255.255.255
    )
)
_IPV6_BLOCKS: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), kind)
    for net, kind in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("fe80::/10", "a link-local address"),
        ("fc00::/7", "a private address"),  # unique local
        ("fec0::/10", "a private address"),  # site-local (deprecated)
        ("ff00::/8", "a multicast address"),
        ("2001::/23", "a reserved address"),  # IETF protocol assignments, Teredo included
        ("2001:db8::/32", "a reserved address"),
        ("3fff::/20", "a reserved address"),
    )
)
_GLOBAL_UNICAST = IPv6Network("2000::/3")  # every other IPv6 address is unallocated or special
_NAT64 = IPv6Network("64:ff9b::/96")  # well-known NAT64 prefix: the last 32 bits are IPv4


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def refusal(address: Address) -> str | None:
    """Why a request must not go to ``address`` (e.g. ``"a loopback address"``); None when it is public."""
    if isinstance(address, IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return refusal(inner)
        for net6, kind in _IPV6_BLOCKS:
            if address in net6:
                return kind
        return None if address in _GLOBAL_UNICAST else "a reserved address"
    for net4, kind in _IPV4_BLOCKS:
        if address in net4:
            return kind
    if not address.is_global or address.is_multicast or address.is_reserved:  # belt and braces
        return "a reserved address"
    return None


# ------------------------------------------------------------ reading hosts


_DIGITS = {8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


def _ipv4_number(part: str) -> int | None:
    """One dotted part: decimal, 0x hex or 0-prefixed octal (WHATWG "IPv4 number parser")."""
    if not part:
        return None
    radix = 10
    if part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, radix = part[1:], 8
    if not part:
        return 0
    if not all(ch in _DIGITS[radix] for ch in part):
        return None
    return int(part, radix)


def _ends_in_a_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    last = parts[-1]
    return bool(last) and ((last.isascii() and last.isdigit()) or _ipv4_number(last) is not None)


def ipv4_literal(host: str) -> IPv4Address | None:
    """The IPv4 address a host spells, as browsers read it; None for a name.

    Raises ValueError for a host that looks like an address but is none
    (``1.2.3.4.5``, ``256.1.1.1``, ``09``): browsers refuse those too.
    """
    if not _ends_in_a_number(host):
        return None
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    numbers = [_ipv4_number(part) for part in parts]
    if len(numbers) > 4 or any(n is None for n in numbers):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    value = values[-1]
    for index, n in enumerate(values[:-1]):
        value += n * 256 ** (3 - index)
    return IPv4Address(value)


def literal_address(host: str) -> Address | None:
    """The address a URL host (IPv6 with or without brackets) names literally; None for a name.

    Raises ValueError for a malformed address.
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        return IPv6Address(host)
    return ipv4_literal(host)


def is_localhost_name(host: str) -> bool:
    """``localhost`` and ``*.localhost`` always mean this machine (RFC 6761)."""
    name = host.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def host_refusal(host: str) -> str | None:
    """For registration: why ``host`` is certainly not public, without asking DNS; None otherwise."""
    if is_localhost_name(host):
        return "a loopback name"
    try:
        address = literal_address(host)
    except ValueError:
        return "not a valid IP address"
    return None if address is None else refusal(address)


# ---------------------------------------------------------------- resolving


async def getaddrinfo(host: str, port: int) -> list[tuple[int, str]]:
    """(family, address) of every TCP address ``host`` resolves to (tests replace this)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


async def resolve(host: str, port: int, *, allow_private: bool = False) -> tuple[Address, ...]:
    """The addresses to connect to for ``host`` (ASCII, IPv6 without brackets), checked.

    Raises Refused when the host is (or resolves to any address that is) not
    public, unless ``allow_private``; OSError when it does not resolve.
    """
    try:
        literal = literal_address(host)
    except ValueError as exc:
        raise Refused(f"{host} is not a valid IP address") from exc
    if literal is not None:
        addresses: tuple[Address, ...] = (literal,)
    else:
        if is_localhost_name(host) and not allow_private:
            raise Refused(f"{host} is a loopback name")
        found = await getaddrinfo(host, port)
        inet = (socket.AF_INET, socket.AF_INET6)
        addresses = tuple(dict.fromkeys(ipaddress.ip_address(address) for family, address in found if family in inet))
        if not addresses:
            raise OSError(f"{host} resolves to no IP address")
    if not allow_private:
        for address in addresses:
            kind = refusal(address)
            if kind is not None:
                # A name's addresses are not shown: they may come from the operator's internal DNS.
                raise Refused(f"{host} is {kind}" if literal is not None else f"{host} resolves to {kind}")
    return addresses


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path`` of a URL: what a log line may show (never the query or userinfo)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "(a malformed URL)"
    return f"{parts.scheme}://{netloc}{parts.path}"
