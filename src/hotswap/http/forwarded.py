"""Which peers are trusted proxies (server.trusted_proxies). No I/O.

A peer in `trusted_proxies` (a load balancer, a TLS terminator) knows the
client's scheme and host: its X-Forwarded-Proto and X-Forwarded-Host are kept
and its X-Forwarded-For is extended with its own address. Anyone else could
claim anything: hotswap sets all three itself (http/headers.py), X-Forwarded-Proto
to "https" on a TLS connection and "http" otherwise. This is what lets an app
that checks the scheme (Rails force_ssl, Django SECURE_PROXY_SSL_HEADER) trust it.
`TrustedProxies.trusts()` is asked once per client connection.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_CACHE_SIZE = 4096


class TrustedProxies:
    """The networks of server.trusted_proxies, and whether a peer address is in one."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks_source = tuple(networks)  # as configured (tells a reload's change)
        self.networks = tuple(ipaddress.ip_network(network) for network in self.networks_source)
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
