"""Domain normalisation and host:port parsing."""

from __future__ import annotations

import pytest

from hotswap.addresses import is_loopback, normalize_domain, split_host_port


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("app.example.com", "app.example.com"),
        ("App.Example.COM", "app.example.com"),
        ("app.example.com.", "app.example.com"),
        ("app.example.com:8080", "app.example.com"),
        ("APP.example.com.:443", "app.example.com"),
        ("localhost", "localhost"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_normalize_domain_lowercases_and_drops_port_and_trailing_dot(
    text: str, domain: str
) -> None:
    assert normalize_domain(text) == domain


LABEL_RULE = (
    "each dot-separated label must be 1-63 letters, digits or hyphens, "
    "not starting or ending with a hyphen"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'invalid domain "": empty'),
        ("bad_domain", f'invalid domain "bad_domain": {LABEL_RULE}'),
        ("-app.example.com", f'invalid domain "-app.example.com": {LABEL_RULE}'),
        ("app..example.com", f'invalid domain "app..example.com": {LABEL_RULE}'),
        ("a" * 64 + ".com", f'invalid domain "{"a" * 64}.com": {LABEL_RULE}'),
        (
            "bücher.example",
            'invalid domain "bücher.example": only ASCII is allowed; '
            'write an internationalised name in its punycode form ("xn--...")',
        ),
    ],
)
def test_normalize_domain_rejects_non_hostnames(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        normalize_domain(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:9000", "127.0.0.1", 9000),
        ("0.0.0.0:8080", "0.0.0.0", 8080),
        ("[::1]:80", "::1", 80),
        ("[2001:db8::1]:443", "2001:db8::1", 443),
        ("localhost:65535", "localhost", 65535),
        ("backend.internal:1", "backend.internal", 1),
    ],
)
def test_split_host_port(text: str, host: str, port: int) -> None:
    assert split_host_port(text) == (host, port)


def test_port_zero_only_for_listen_addresses() -> None:
    assert split_host_port("127.0.0.1:0", allow_port_zero=True) == ("127.0.0.1", 0)
    with pytest.raises(ValueError) as caught:
        split_host_port("127.0.0.1:0")
    assert str(caught.value) == 'invalid address "127.0.0.1:0": port must be 1-65535'


HINT = 'expected host:port, like "127.0.0.1:8080" or "[::1]:8080"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("localhost", f'invalid address "localhost": {HINT}'),
        (":8080", f'invalid address ":8080": {HINT}'),
        ("[::1]", f'invalid address "[::1]": {HINT}'),
        (
            "::1:80",
            'invalid address "::1:80": write an IPv6 address in brackets, like "[::1]:8080"',
        ),
        ("[nope]:80", 'invalid address "[nope]:80": "nope" is not an IPv6 address'),
        (
            "1.2.3.999:80",
            'invalid address "1.2.3.999:80": "1.2.3.999" is not an IPv4 address or a host name',
        ),
        (
            "bad_host:80",
            'invalid address "bad_host:80": "bad_host" is not an IPv4 address or a host name',
        ),
        ("127.0.0.1:http", 'invalid address "127.0.0.1:http": port "http" is not a number'),
        ("127.0.0.1:70000", 'invalid address "127.0.0.1:70000": port must be 1-65535'),
    ],
)
def test_split_host_port_rejects_with_a_hint(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        split_host_port(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
