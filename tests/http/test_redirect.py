"""The 308 answer of a [redirects] name: Location keeps the path and query."""

from __future__ import annotations

import pytest

from hotswap.http.redirect import redirect_location, redirect_response


@pytest.mark.parametrize(
    ("target", "location"),
    [
        (b"/", b"https://app.example.com/"),
        (b"/a/b?x=1&y=%20", b"https://app.example.com/a/b?x=1&y=%20"),
        (b"http://old.example.com/p?q", b"https://app.example.com/p?q"),
        (b"http://old.example.com", b"https://app.example.com/"),
        (b"*", b"https://app.example.com/"),
        (b"/caf\xc3\xa9?a=<b>", b"https://app.example.com/caf%C3%A9?a=%3Cb%3E"),
    ],
)
def test_the_location_is_the_origin_followed_by_the_path_and_query(
    target: bytes, location: bytes
) -> None:
    assert redirect_location("https://app.example.com", target) == location


def test_the_response_is_a_308_with_location_and_a_small_page() -> None:
    status, headers, body = redirect_response("https://app.example.com", b"/x?y=1")
    assert status == 308
    fields = dict(headers)
    assert fields[b"location"] == b"https://app.example.com/x?y=1"
    assert fields[b"content-length"] == str(len(body)).encode()
    assert b'href="https://app.example.com/x?y=1"' in body
