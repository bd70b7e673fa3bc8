"""Path routes of one host (hotswap.http.paths): segment boundaries, the longest prefix,
raw matching with ambiguous paths refused, and what a strip_prefix route sends upstream."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotswap.http.paths import (
    AmbiguousPath,
    PathTable,
    normalize_path,
    request_path,
    strip_prefix,
)
from hotswap.http.upstream import upstream_request

TABLE = PathTable({"/api": "api", "/api/v2": "v2", "/.well-known": "wk"}, "plain")


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"/a/b?q=1", b"/a/b"),
        (b"/a#frag", b"/a"),
        (b"/", b"/"),
        (b"http://h/api/x?y", b"/api/x"),
        (b"HTTPS://h:8443/api", b"/api"),
        (b"http://h", b"/"),
        (b"http://h?q=/api", b"/"),
        (b"http://user@h/api", b"/api"),
        (b"*", b"*"),
    ],
)
def test_the_request_path_is_the_targets_path_before_the_query(target: bytes, path: bytes) -> None:
    assert request_path(target) == path


@pytest.mark.parametrize(
    ("target", "route"),
    [
        (b"/api", "api"),
        (b"/api/", "api"),
        (b"/api/users?x=1", "api"),
        (b"/api?x=1", "api"),
        (b"/apix", "plain"),
        (b"/apix/y", "plain"),
        (b"/ap", "plain"),
        (b"/", "plain"),
        (b"*", "plain"),
    ],
)
def test_a_prefix_takes_itself_and_what_is_under_it_on_a_segment_boundary(
    target: bytes, route: str
) -> None:
    assert TABLE.match(target) == route


def test_the_longest_prefix_wins() -> None:
    assert TABLE.match(b"/api/v2") == "v2"
    assert TABLE.match(b"/api/v2/orders/7") == "v2"
    assert TABLE.match(b"/api/v2x") == "api"
    assert TABLE.match(b"/api/v1/x") == "api"


def test_paths_are_matched_case_sensitively() -> None:
    assert TABLE.match(b"/API/x") == "plain"
    assert TABLE.match(b"/Api") == "plain"


def test_an_absolute_form_target_is_matched_on_its_path() -> None:
    assert TABLE.match(b"http://example.com/api/x?y=1") == "api"
    assert TABLE.match(b"http://example.com?next=/api") == "plain"


def test_without_a_plain_route_a_path_no_prefix_takes_goes_nowhere() -> None:
    only = PathTable({"/api": "api"}, None)
    assert only.match(b"/api/x") == "api"
    assert only.match(b"/other") is None


def test_a_dot_segment_inside_a_segment_name_is_plain_text() -> None:
    assert TABLE.match(b"/.well-known/acme-challenge/t") == "wk"
    assert TABLE.match(b"/api/v1.2/x") == "api"


@pytest.mark.parametrize(
    "target",
    [
        b"/%61pi/x",  # an escaped letter: "/api/x" to the app
        b"/static/../api/x",  # climbs into /api
        b"/api/../admin",  # climbs out of /api
        b"/api/%2e%2e/admin",
        b"/api/v1/../v2/x",  # from /api into /api/v2
        b"/api/../api/x",  # leaves its prefix and comes back: a stripped app would see /api/x
        b"//api/x",  # an app that merges slashes sees /api/x
        b"/x%2F..%2Fapi",
        b"/x\\..\\api",
    ],
)
def test_a_path_that_normalised_would_route_elsewhere_is_refused(target: bytes) -> None:
    with pytest.raises(AmbiguousPath, match="ambiguous request path"):
        TABLE.match(target)


@pytest.mark.parametrize(
    ("target", "route"),
    [
        (b"/api/a%2Fb", "api"),  # an escaped slash inside the route (GitLab-style ids)
        (b"/api/files/a%20b", "api"),
        (b"/api//x", "api"),
        (b"/api/x/../y", "api"),
        (b"/api/.", "api"),
        (b"/x/../y", "plain"),
        (b"/%7Euser", "plain"),
    ],
)
def test_a_path_that_normalised_routes_the_same_is_forwarded(target: bytes, route: str) -> None:
    assert TABLE.match(target) == route


@pytest.mark.parametrize(
    ("path", "normal"),
    [
        (b"/a/./b/../c", b"/a/c"),
        (b"/a//b", b"/a/b"),
        (b"/..", b"/"),
        (b"/a/..", b"/"),
        (b"/a/.", b"/a/"),
        (b"/a%2Fb", b"/a/b"),
        (b"/%41", b"/A"),
        (b"\\a\\b", b"/a/b"),
        (b"/", b"/"),
    ],
)
def test_normalising_decodes_merges_slashes_and_removes_dot_segments(
    path: bytes, normal: bytes
) -> None:
    assert normalize_path(path) == normal


@given(st.from_regex(rb"\A(/[a-z.%2Fe]{0,4}){0,5}\Z"))
def test_normalising_twice_changes_nothing_more(path: bytes) -> None:
    once = normalize_path(path)
    # Decoding again may decode what the first decoding produced ("%252F"): only the
    # structure is checked on a path without escapes left.
    if b"%" not in once:
        assert normalize_path(once) == once


@pytest.mark.parametrize(
    ("target", "stripped"),
    [
        (b"/api/users", b"/users"),
        (b"/api/users?x=1&y=/api", b"/users?x=1&y=/api"),
        (b"/api", b"/"),
        (b"/api/", b"/"),
        (b"/api?x=1", b"/?x=1"),
        (b"/other", b"/other"),  # not under the prefix: unchanged
        (b"/apix", b"/apix"),
    ],
)
def test_strip_prefix_removes_the_prefix_and_keeps_the_query(
    target: bytes, stripped: bytes
) -> None:
    assert strip_prefix(target, b"/api") == stripped


def head(target: bytes, prefix: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    return upstream_request(
        target,
        [(b"host", b"example.com")],
        route_host="example.com",
        client_ip="10.0.0.1",
        scheme="http",
        trusted=False,
        request_id=None,
        length=None,
        chunked=False,
        expect=False,
        upgrade=None,
        strip_prefix=prefix,
    )


def test_the_upstream_head_of_a_strip_prefix_route_loses_the_prefix() -> None:
    target, headers = head(b"/api/users?page=2", b"/api")
    assert target == b"/users?page=2"
    assert (b"x-forwarded-prefix", b"/api") in headers
    target, headers = head(b"http://example.com/api?x=1", b"/api")
    assert target == b"/?x=1"
    assert (b"host", b"example.com") in headers


def test_the_upstream_head_of_any_other_route_keeps_the_path() -> None:
    target, headers = head(b"/api/users?page=2", b"")
    assert target == b"/api/users?page=2"
    assert not [v for n, v in headers if n == b"x-forwarded-prefix"]
