"""Which network addresses a webhook may reach (the SSRF guard's rules; no I/O here).

Refused unless explicitly allowed: loopback, private (RFC 1918, ULA), link-local (incl.
169.254.0.0/16, cloud metadata), carrier-grade NAT (100.64.0.0/10), multicast, reserved,
unspecified, and IPv6 forms that embed such an IPv4 address (IPv4-mapped, IPv4-compatible,
6to4, Teredo, NAT64). Host spellings that the C library reads as an IPv4 address
(``2130706433``, ``0x7f.1``, ``0177.0.0.1``) are treated as that address.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def parse_networks(value: str | None) -> tuple[IPNetwork, ...]:
    """``HERALD_WEBHOOK_ALLOWED_NETWORKS``: comma-separated CIDRs (or single addresses)."""
    if not value:
        return ()
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    )


def literal_address(host: str) -> IPAddress | None:
    """The address a host name spells directly, in any form a resolver would accept."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        # inet_aton accepts the legacy forms: decimal, octal, hex, and shortened dotted.
        packed = socket.inet_aton(host)
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


def refusal(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """Why a webhook must not connect to ``address`` (None: it may)."""
    for network in allowed:
        if address.version == network.version and address in network:
            return None
    for embedded in _embedded_ipv4(address):
        reason = refusal(embedded, allowed)
        if reason:
            return f"{reason} (embedded in {address})"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.version == 4 and address in _CGNAT:
        return "a carrier-grade NAT address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def _embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    if address.version != 6:
        return []
    v6 = ipaddress.IPv6Address(address)
    found: list[ipaddress.IPv4Address] = []
    if v6.ipv4_mapped is not None:
        found.append(v6.ipv4_mapped)
    if v6.sixtofour is not None:
        found.append(v6.sixtofour)
    if v6.teredo is not None:
        found.append(v6.teredo[1])
    if v6 in _NAT64 or v6 in _NAT64_LOCAL:
        found.append(ipaddress.IPv4Address(int(v6) & 0xFFFF_FFFF))
    if int(v6) >> 32 == 0 and int(v6) > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        found.append(ipaddress.IPv4Address(int(v6) & 0xFFFF_FFFF))
    return found


@lru_cache(maxsize=4096)
def url_problem(url: str, allowed: tuple[IPNetwork, ...] = ()) -> str | None:
    """What is wrong with a webhook URL before any lookup (None: nothing yet).

    Names are resolved, and every resolved address checked, when connecting. Cached: it
    is checked at accept and again before each send, costs tens of microseconds, and
    most traffic goes to few URLs.
    """
    if len(url) > 2048:
        return "at most 2,048 characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in {"http", "https"}:
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials; use the signing secret to authenticate"
    if port == 0:
        return "port 0 is not a port"
    address = literal_address(parts.hostname)
    if address is not None and (reason := refusal(address, allowed)):
        return f"points to {reason}, which Herald may not reach"
    return None
