"""Which peers are trusted proxies (server.trusted_proxies)."""

from __future__ import annotations

from hotswap.http.forwarded import TrustedProxies


def test_only_peers_in_the_trusted_networks_are_trusted() -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"])
    assert trusted.trusts("10.1.2.3")
    assert trusted.trusts("192.0.2.7")
    assert trusted.trusts("::ffff:10.0.0.1")  # an IPv4 peer on a dual-stack socket
    assert trusted.trusts("2001:db8::1")
    assert not trusted.trusts("192.0.2.8")
    assert not trusted.trusts("127.0.0.1")
    assert not trusted.trusts("not an address")
    assert not TrustedProxies().trusts("10.1.2.3")
    assert not TrustedProxies()
