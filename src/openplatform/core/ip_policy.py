"""Per-app IP whitelists and the client address behind trusted proxies.

``X-Forwarded-For`` is only believed when the TCP peer is a configured proxy,
and then it is read from the right, skipping further trusted proxies: the first
untrusted address is the client (anything left of it could be forged).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from openplatform.errors import OAuthError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8192)  # every request parses its peer; the same few addresses come back
def parse_address(value: str) -> Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def parse_whitelist_entry(entry: str) -> Network:
    """An IP or CIDR (IPv4 or IPv6); raises ValueError with a readable message."""
    try:
        network = ipaddress.ip_network(entry.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"{entry!r} is not an IP address or CIDR range") from exc
    # Callers are compared as IPv4 when they arrive IPv4-mapped, so entries are too.
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}")
    return network


@lru_cache(maxsize=4096)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(parse_whitelist_entry(e) for e in entries)


def ip_allowed(client_ip: str, whitelist: tuple[str, ...]) -> bool:
    if not whitelist:
        return True
    address = parse_address(client_ip)
    if address is None:
        return False
    return any(address.version == net.version and address in net for net in _networks(whitelist))


def enforce_whitelist(client_ip: str, whitelist: tuple[str, ...]) -> None:
    if not ip_allowed(client_ip, whitelist):
        raise OAuthError("ip_not_allowed")


def _trusted(address: Address | None, proxies: Iterable[Network]) -> bool:
    return address is not None and any(address.version == net.version and address in net for net in proxies)


@lru_cache(maxsize=4096)  # per request; the same peers (and proxy chains) come back
def client_ip(peer: str, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """The caller's address: the peer, or from X-Forwarded-For when the peer is a proxy."""
    peer_address = parse_address(peer)
    if not forwarded_for or not proxies or not _trusted(peer_address, proxies):
        return str(peer_address) if peer_address else peer
    hops = [h.strip() for h in forwarded_for.split(",")]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break  # garbage in the chain: stop believing it
        if not _trusted(address, proxies):
            return str(address)
    return str(peer_address)
