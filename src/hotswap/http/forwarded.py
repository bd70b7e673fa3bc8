"""X-Forwarded-* from the right source: server.trusted_proxies. No I/O.

A peer in `trusted_proxies` (a load balancer, a TLS terminator) knows the
client's scheme and host: its X-Forwarded-Proto and X-Forwarded-Host are kept
and its X-Forwarded-For is extended with its own address. Anyone else could
claim anything: hotswap sets all three itself — X-Forwarded-For to the peer,
X-Forwarded-Proto to "https" on a TLS connection and "http" otherwise,
X-Forwarded-Host to the request's host. This is what lets an app that checks
the scheme (Rails force_ssl, Django SECURE_PROXY_SSL_HEADER) trust it.

`TrustedProxies.trusts()` is asked once per client connection; the header
values are computed per request by `forwarded_values` from what the header
pass collected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

HTTP = b"http"
HTTPS = b"https"
_CACHE_SIZE = 4096


class TrustedProxies:
    """The networks of server.trusted_proxies, and whether a peer address is in one."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(network) for network in networks)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, peer: str) -> bool:
        """True when the peer address (as the socket reports it) is a trusted proxy."""
        if not self.networks:
            return False
        known = self._cache.get(peer)
        if known is not None:
            return known
        try:
            address = ipaddress.ip_address(peer.partition("%")[0])  # drop an IPv6 zone
        except ValueError:
            trusted = False  # a Unix socket or the like: nothing to match
        else:
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped  # ::ffff:10.0.0.1 from a dual-stack socket
            trusted = any(address in network for network in self.networks)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[peer] = trusted
        return trusted


@dataclass(frozen=True)
class Forwarded:
    """The X-Forwarded-* values to send upstream (host None: leave the header out)."""

    for_: bytes
    proto: bytes
    host: bytes | None


def scheme(tls: bool) -> bytes:
    """X-Forwarded-Proto of a connection hotswap terminates itself."""
    return HTTPS if tls else HTTP


def forwarded_values(
    *,
    peer: str,
    tls: bool,
    host: str,
    trusted: bool,
    client_for: list[bytes] | None = None,
    client_proto: bytes | None = None,
    client_host: bytes | None = None,
) -> Forwarded:
    """The X-Forwarded-For, -Proto and -Host of the upstream request.

    `client_*` are what the request carried (X-Forwarded-For values in order,
    the first X-Forwarded-Proto and X-Forwarded-Host); they count only when
    the peer is `trusted`.
    """
    address = peer.encode("ascii")
    if not trusted:
        return Forwarded(address, scheme(tls), host.encode("latin-1") if host else None)
    values = [value for value in client_for or () if value.strip(b" \t")]
    forwarded_for = b", ".join([*values, address])
    proto = client_proto.strip(b" \t") if client_proto else b""
    kept_host = client_host.strip(b" \t") if client_host else b""
    return Forwarded(
        forwarded_for,
        proto or scheme(tls),
        kept_host or (host.encode("latin-1") if host else None),
    )
