"""X-Forwarded-* kept from trusted proxies only; https on TLS connections."""

from __future__ import annotations

from hotswap.http.forwarded import Forwarded, TrustedProxies, forwarded_values, scheme


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


def test_an_untrusted_client_cannot_choose_the_scheme_host_or_address() -> None:
    values = forwarded_values(
        peer="203.0.113.9",
        tls=False,
        host="app.example.com",
        trusted=False,
        client_for=[b"1.2.3.4"],
        client_proto=b"https",
        client_host=b"evil.example",
    )
    assert values == Forwarded(b"203.0.113.9", b"http", b"app.example.com")


def test_a_tls_connection_is_https() -> None:
    values = forwarded_values(peer="203.0.113.9", tls=True, host="app.example.com", trusted=False)
    assert values.proto == b"https"
    assert scheme(True) == b"https"
    assert scheme(False) == b"http"


def test_a_trusted_proxy_keeps_proto_and_host_and_extends_for() -> None:
    values = forwarded_values(
        peer="10.0.0.2",
        tls=False,
        host="app.example.com",
        trusted=True,
        client_for=[b"198.51.100.1", b"10.0.0.9"],
        client_proto=b"https",
        client_host=b"www.example.com",
    )
    assert values == Forwarded(b"198.51.100.1, 10.0.0.9, 10.0.0.2", b"https", b"www.example.com")


def test_a_trusted_proxy_that_says_nothing_gets_our_values() -> None:
    values = forwarded_values(peer="10.0.0.2", tls=True, host="app.example.com", trusted=True)
    assert values == Forwarded(b"10.0.0.2", b"https", b"app.example.com")
