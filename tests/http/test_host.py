"""Host normalisation and request targets (hotswap.http.host)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotswap.http.host import BadHost, normalize_host, origin_form, request_host

labels = st.from_regex(r"\A[a-zA-Z0-9_-]{1,20}\Z")
domains = st.lists(labels, min_size=1, max_size=5).map(".".join)
ports = st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}"))


@given(domains, ports, st.booleans())
def test_normalize_host_lowercases_and_strips_port_and_trailing_dot(
    domain: str, port: str, dot: bool
) -> None:
    value = domain + ("." if dot else "") + port
    assert normalize_host(value) == domain.lower()
    assert normalize_host(value.encode()) == domain.lower()


@given(st.one_of(st.text(max_size=30), st.binary(max_size=30)))
def test_normalize_host_is_idempotent_and_canonical(value: str | bytes) -> None:
    host = normalize_host(value)
    if host is not None:
        assert normalize_host(host) == host
        assert host == host.lower()
        assert host and not host.endswith(".")
        assert len(host) <= 253


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.:8080", "example.com"),
        ("example.com:", "example.com"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("my_service", "my_service"),
        ("[::1]", "[::1]"),
        ("[::1]:8080", "[::1]"),
        ("[2001:DB8:0:0::1]:443", "[2001:db8::1]"),
        (b"a.example", "a.example"),
        ("", None),
        (".", None),
        ("a..b", None),
        (".a", None),
        ("a.b..", None),
        ("a b", None),
        ("a/b", None),
        ("a@b", None),
        ("ex\u00e4mple.com", None),
        (b"ex\xe4mple.com", None),
        ("a:b", None),
        ("a:80:80", None),
        ("a:99999", None),
        ("a:123456", None),
        ("a:-1", None),
        ("a:\u0661", None),  # a non-ASCII digit
        ("::1", None),
        ("[::1", None),
        ("[::1]x", None),
        ("[::1]:x", None),
        ("[]", None),
        ("[zz::1]", None),
        ("[::1%25eth0]", None),
        ("a" * 64 + ".com", None),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        (".".join(["a" * 63] * 4), None),  # 255 characters
    ],
)
def test_normalize_host_examples(value: str | bytes, expected: str | None) -> None:
    assert normalize_host(value) == expected


@pytest.mark.parametrize(
    ("target", "headers", "version", "expected"),
    [
        (b"/", [(b"host", b"App.Example.com:8080")], b"1.1", "app.example.com"),
        (b"/", [(b"host", b"a")], b"1.0", "a"),
        (b"/", [], b"1.0", ""),
        (b"http://B.example:81/x", [(b"host", b"a")], b"1.1", "b.example"),
        (b"HTTPS://user:pw@b.example/x", [(b"host", b"a")], b"1.1", "b.example"),
        (b"http://b.example?q", [(b"host", b"a")], b"1.1", "b.example"),
        (b"http://b.example", [], b"1.0", "b.example"),
        (b"*", [(b"host", b"a")], b"1.1", "a"),
    ],
)
def test_request_host(
    target: bytes, headers: list[tuple[bytes, bytes]], version: bytes, expected: str
) -> None:
    assert request_host(target, headers, version) == expected


@pytest.mark.parametrize(
    ("target", "headers", "version", "message"),
    [
        (b"/", [], b"1.1", "missing Host"),
        (b"http://b.example/", [], b"1.1", "missing Host"),
        (b"/", [(b"host", b"a"), (b"host", b"a")], b"1.1", "more than one Host"),
        (b"/", [(b"host", b"a"), (b"host", b"b")], b"1.0", "more than one Host"),
        (b"/", [(b"host", b"a b")], b"1.1", "invalid Host"),
        (b"/", [(b"host", b"")], b"1.1", "invalid Host"),
        (b"http://b.example/", [(b"host", b"bad host")], b"1.1", "invalid Host"),
        (b"http:///x", [(b"host", b"a")], b"1.1", "request target"),
        (b"http://a:xx/", [(b"host", b"a")], b"1.1", "request target"),
    ],
)
def test_request_host_rejects(
    target: bytes, headers: list[tuple[bytes, bytes]], version: bytes, message: str
) -> None:
    with pytest.raises(BadHost, match=message):
        request_host(target, headers, version)


def test_bad_host_is_a_value_error() -> None:
    assert issubclass(BadHost, ValueError)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/a/b?c=d", b"/a/b?c=d"),
        (b"*", b"*"),
        (b"example.com:443", b"example.com:443"),  # authority-form (CONNECT) unchanged
        (b"http://a", b"/"),
        (b"http://a/", b"/"),
        (b"http://a:80/p/q?x=1", b"/p/q?x=1"),
        (b"HTTP://a?x=/y", b"/?x=/y"),
        (b"https://a/p#frag", b"/p"),
        (b"http://a#frag", b"/"),
    ],
)
def test_origin_form(target: bytes, expected: bytes) -> None:
    assert origin_form(target) == expected


@given(domains, st.from_regex(rb"\A(/[a-z0-9._~%-]*)*(\?[a-z0-9=&/]*)?\Z"))
def test_origin_form_of_absolute_target_is_its_path_and_query(domain: str, rest: bytes) -> None:
    out = origin_form(b"http://" + domain.encode() + rest)
    assert out.startswith(b"/")
    assert out == (rest if rest.startswith(b"/") else b"/" + rest)
