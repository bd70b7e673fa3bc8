"""Hop-by-hop filtering and X-Forwarded-* (hotswap.http.headers)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotswap.http.headers import (
    FRAMING,
    HOP_BY_HOP,
    Headers,
    connection_tokens,
    content_length,
    is_upgrade_request,
    request_headers_for_upstream,
    response_headers_for_client,
)

FORWARDED = {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-prefix"}
COMMON = [b"host", b"accept", b"cookie", b"set-cookie", b"content-type", b"x-custom", b"expect"]

names = st.one_of(
    st.sampled_from(sorted(HOP_BY_HOP | FRAMING | FORWARDED)),
    st.sampled_from(COMMON),
    st.from_regex(rb"\A[a-z][a-z0-9-]{0,10}\Z"),
)
# h11 strips surrounding whitespace from values and forbids control characters.
plain_values = st.from_regex(rb"\A([!-~]([ !-~]{0,20}[!-~])?)?\Z")
ows = st.sampled_from([b"", b" ", b"\t", b"  "])


@st.composite
def connection_values(draw: st.DrawFn) -> bytes:
    tokens = draw(
        st.lists(
            st.one_of(names, st.sampled_from([b"close", b"keep-alive", b"upgrade", b"Upgrade"])),
            max_size=4,
        )
    )
    tokens = [t.upper() if draw(st.booleans()) else t for t in tokens]
    return b",".join(draw(ows) + t + draw(ows) for t in tokens)


@st.composite
def header_lists(draw: st.DrawFn) -> Headers:
    headers: Headers = []
    for _ in range(draw(st.integers(0, 12))):
        name = draw(names)
        value = draw(connection_values()) if name == b"connection" else draw(plain_values)
        headers.append((name, value))
    return headers


ips = st.sampled_from(["127.0.0.1", "10.1.2.3", "::1", "2001:db8::7"])
hosts = st.sampled_from(["", "example.com", "app.example.com:8080", "[::1]:80"])
upgrades = st.sampled_from([None, b"websocket"])


def _named(headers: Headers, name: bytes) -> list[bytes]:
    return [v for n, v in headers if n == name]


@given(header_lists(), ips, st.sampled_from(["http", "https"]), hosts, upgrades)
def test_upstream_request_headers_keep_no_hop_by_hop_or_framing_header(
    headers: Headers, ip: str, scheme: str, host: str, upgrade: bytes | None
) -> None:
    out = request_headers_for_upstream(
        headers, client_ip=ip, scheme=scheme, host=host, upgrade=upgrade
    )
    named = connection_tokens(headers) - {b"host"}
    readded = {b"connection", b"upgrade"} if upgrade is not None else set()
    for name, _ in out:
        assert name not in FRAMING
        assert name not in named or name in FORWARDED | readded
        assert name not in HOP_BY_HOP or name in readded
    if upgrade is not None:
        assert _named(out, b"connection") == [b"upgrade"]
        assert _named(out, b"upgrade") == [upgrade]


@given(header_lists(), ips, hosts, upgrades)
def test_upstream_request_headers_keep_end_to_end_headers_in_order(
    headers: Headers, ip: str, host: str, upgrade: bytes | None
) -> None:
    out = request_headers_for_upstream(
        headers, client_ip=ip, scheme="http", host=host, upgrade=upgrade
    )
    named = connection_tokens(headers) - {b"host"}
    expected = [(n, v) for n, v in headers if n not in HOP_BY_HOP | FRAMING | FORWARDED | named]
    assert out[: len(expected)] == expected
    assert _named(out, b"host") == _named(headers, b"host")


@given(header_lists(), ips, hosts)
def test_x_forwarded_headers_from_an_untrusted_peer_are_set_not_kept(
    headers: Headers, ip: str, host: str
) -> None:
    out = request_headers_for_upstream(
        headers, client_ip=ip, scheme="https", host=host, upgrade=None
    )
    assert _named(out, b"x-forwarded-for") == [ip.encode()]
    assert _named(out, b"x-forwarded-proto") == [b"https"]
    assert _named(out, b"x-forwarded-host") == ([host.encode()] if host else [])


@given(header_lists(), ips, hosts)
def test_x_forwarded_for_from_a_trusted_proxy_keeps_its_values_and_ends_with_the_peer(
    headers: Headers, ip: str, host: str
) -> None:
    out = request_headers_for_upstream(
        headers, client_ip=ip, scheme="https", host=host, upgrade=None, trusted=True
    )
    [xff] = _named(out, b"x-forwarded-for")
    assert xff.split(b", ")[-1] == ip.encode()
    named = connection_tokens(headers)
    if b"x-forwarded-for" not in named:
        prior = [v for v in _named(headers, b"x-forwarded-for") if v]
        assert xff == b", ".join([*prior, ip.encode()])
    proto = [value for value in _named(headers, b"x-forwarded-proto") if value]
    if proto and b"x-forwarded-proto" not in named:
        assert _named(out, b"x-forwarded-proto") == [proto[-1]]
    else:
        assert _named(out, b"x-forwarded-proto") == [b"https"]


def test_x_request_id_is_set_kept_from_a_trusted_proxy_and_untouched_when_off() -> None:
    headers = [(b"host", b"a"), (b"x-request-id", b"from-client")]

    def ids(trusted: bool, request_id: bytes | None) -> list[bytes]:
        out = request_headers_for_upstream(
            headers,
            client_ip="10.0.0.1",
            scheme="http",
            host="a",
            upgrade=None,
            trusted=trusted,
            request_id=request_id,
        )
        return _named(out, b"x-request-id")

    assert ids(False, b"ours") == [b"ours"]
    assert ids(True, b"ours") == [b"from-client"]
    assert ids(False, None) == [b"from-client"]
    assert ids(True, None) == [b"from-client"]


def test_x_forwarded_prefix_is_the_stripped_prefix_after_a_trusted_proxys_own() -> None:
    def prefixes(sent: bytes | None, trusted: bool, prefix: bytes) -> list[bytes]:
        headers = [(b"host", b"a")]
        if sent is not None:
            headers.append((b"x-forwarded-prefix", sent))
        out = request_headers_for_upstream(
            headers,
            client_ip="10.0.0.1",
            scheme="http",
            host="a",
            upgrade=None,
            trusted=trusted,
            prefix=prefix,
        )
        return _named(out, b"x-forwarded-prefix")

    assert prefixes(None, False, b"/api") == [b"/api"]
    assert prefixes(b"/evil", False, b"/api") == [b"/api"]  # a client's own is no fact
    assert prefixes(b"/evil", False, b"") == []
    assert prefixes(b"/app/", True, b"/api") == [b"/app/api"]
    assert prefixes(b"/app", True, b"") == [b"/app"]
    assert prefixes(b"/", True, b"") == [b"/"]
    assert prefixes(None, True, b"") == []


@given(header_lists(), st.booleans())
def test_client_response_headers_keep_no_hop_by_hop_or_framing_header(
    headers: Headers, upgrade: bool
) -> None:
    out = response_headers_for_client(headers, upgrade=upgrade)
    named = connection_tokens(headers)
    kept = [(n, v) for n, v in headers if n not in HOP_BY_HOP | FRAMING | named]
    assert out[: len(kept)] == kept
    rest = out[len(kept) :]
    if upgrade:
        upgrades = [(b"upgrade", v) for v in _named(headers, b"upgrade")]
        assert rest == [(b"connection", b"upgrade"), *upgrades]
    else:
        assert rest == []
        assert response_headers_for_client(out, upgrade=False) == out


@given(header_lists())
def test_connection_tokens_are_lower_case_stripped_and_non_empty(headers: Headers) -> None:
    for token in connection_tokens(headers):
        assert token and token == token.lower() == token.strip(b" \t")
        assert b"," not in token


def test_connection_tokens_of_several_connection_headers() -> None:
    headers = [(b"connection", b"Keep-Alive, X-Foo"), (b"host", b"a"), (b"connection", b" close ,")]
    assert connection_tokens(headers) == {b"keep-alive", b"x-foo", b"close"}


def test_headers_named_in_connection_are_dropped_but_host_is_kept() -> None:
    headers = [
        (b"host", b"a.example"),
        (b"connection", b"x-secret, host, x-forwarded-for"),
        (b"x-secret", b"1"),
        (b"x-forwarded-for", b"6.6.6.6"),
        (b"accept", b"*/*"),
    ]
    out = request_headers_for_upstream(
        headers, client_ip="127.0.0.1", scheme="http", host="a.example", upgrade=None
    )
    assert out == [
        (b"host", b"a.example"),
        (b"accept", b"*/*"),
        (b"x-forwarded-for", b"127.0.0.1"),
        (b"x-forwarded-proto", b"http"),
        (b"x-forwarded-host", b"a.example"),
    ]


def test_upstream_request_for_a_websocket_upgrade() -> None:
    headers = [
        (b"host", b"a"),
        (b"connection", b"keep-alive, Upgrade"),
        (b"upgrade", b"WebSocket"),
        (b"sec-websocket-key", b"k"),
        (b"x-forwarded-for", b"1.1.1.1, 2.2.2.2"),
        (b"x-forwarded-proto", b"gopher"),
        (b"transfer-encoding", b"chunked"),
        (b"content-length", b"3"),
    ]
    upgrade = is_upgrade_request(headers)
    assert upgrade == b"websocket"
    out = request_headers_for_upstream(
        headers, client_ip="10.0.0.1", scheme="http", host="a", upgrade=upgrade, trusted=True
    )
    assert out == [
        (b"host", b"a"),
        (b"sec-websocket-key", b"k"),
        (b"x-forwarded-for", b"1.1.1.1, 2.2.2.2, 10.0.0.1"),
        (b"x-forwarded-proto", b"gopher"),
        (b"x-forwarded-host", b"a"),
        (b"connection", b"upgrade"),
        (b"upgrade", b"websocket"),
    ]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"connection", b"upgrade"), (b"upgrade", b"websocket")], b"websocket"),
        ([(b"connection", b"keep-alive,  UPGRADE "), (b"upgrade", b"WebSocket")], b"websocket"),
        ([(b"upgrade", b"websocket")], None),
        ([(b"connection", b"upgrade")], None),
        ([(b"connection", b"x-upgrade"), (b"upgrade", b"websocket")], None),
        ([(b"connection", b"upgraded"), (b"upgrade", b"websocket")], None),
        ([(b"connection", b"close"), (b"connection", b"upgrade"), (b"upgrade", b"h2c")], b"h2c"),
        ([], None),
    ],
)
def test_is_upgrade_request(headers: Headers, expected: bytes | None) -> None:
    assert is_upgrade_request(headers) == expected


def test_response_to_an_upgrade_keeps_connection_upgrade() -> None:
    headers = [
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", b"x"),
    ]
    assert response_headers_for_client(headers, upgrade=True) == [
        (b"sec-websocket-accept", b"x"),
        (b"connection", b"upgrade"),
        (b"upgrade", b"websocket"),
    ]


def test_response_drops_keep_alive_and_framing() -> None:
    headers = [
        (b"content-type", b"text/plain"),
        (b"connection", b"keep-alive"),
        (b"keep-alive", b"timeout=5"),
        (b"transfer-encoding", b"chunked"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    assert response_headers_for_client(headers, upgrade=False) == [
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


def test_content_length() -> None:
    assert content_length([(b"host", b"a"), (b"content-length", b"42")]) == 42
    assert content_length([(b"content-length", b"0")]) == 0
    assert content_length([(b"host", b"a")]) is None
    with pytest.raises(ValueError):
        content_length([(b"content-length", b"-1")])
