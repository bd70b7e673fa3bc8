"""Route keys: a domain, or a domain and a path prefix; what a path prefix may be."""

from __future__ import annotations

import pytest

from hotswap.routekey import is_path_route, normalize_route_key, route_domain, split_route_key


def test_a_route_key_normalises_its_domain_and_keeps_its_path_as_written() -> None:
    assert normalize_route_key("App.Example.com.") == "app.example.com"
    assert normalize_route_key("App.Example.com:8080/API/v1") == "app.example.com/API/v1"
    assert normalize_route_key("example.com/.well-known/x~y") == "example.com/.well-known/x~y"


def test_a_route_key_splits_into_domain_and_path() -> None:
    assert split_route_key("example.com/api/v1") == ("example.com", "/api/v1")
    assert split_route_key("example.com") == ("example.com", "")
    assert route_domain("example.com/api") == "example.com"
    assert is_path_route("example.com/api") and not is_path_route("example.com")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("example.com/", '"/" is the whole domain: write "example.com"'),
        (
            "example.com/api/",
            'no trailing "/": write "example.com/api" (it serves /api and every path under /api/)',
        ),
        ("example.com/api?x=1", 'a route path has no query ("?")'),
        ("example.com/api#top", 'a route path has no fragment ("#")'),
        ("example.com//api", 'empty path segment ("//")'),
        ("example.com/a/../b", 'dot segments ("." and "..") are not allowed'),
        ("example.com/./b", 'dot segments ("." and "..") are not allowed'),
        ("example.com/caf%C3%A9", 'percent-encoding ("%") is not supported'),
        ("example.com/a b", 'invalid character " "'),
        ("example.com/café", 'invalid character "é"'),
        ("example.com/a\\b", 'invalid character "\\\\"'),
    ],
)
def test_an_invalid_route_path_is_refused_saying_why(key: str, message: str) -> None:
    with pytest.raises(ValueError, match="invalid route path") as caught:
        normalize_route_key(key)
    assert message in str(caught.value)


def test_an_invalid_domain_in_a_route_key_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid domain"):
        normalize_route_key("exa_mple.com/api")
