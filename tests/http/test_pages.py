"""Error pages (hotswap.http.pages)."""

from __future__ import annotations

import pytest

from hotswap.http.pages import error_page, reason

STATUSES = [400, 404, 408, 413, 431, 499, 500, 502, 503, 504]


@pytest.mark.parametrize("status", STATUSES)
def test_error_page_names_status_and_reason(status: int) -> None:
    headers, body = error_page(status)
    title = f"{status} {reason(status).decode()}".encode()
    assert b"<title>" + title + b"</title>" in body
    assert b"<h1>" + title + b"</h1>" in body
    assert b"hotswap" in body
    assert dict(headers) == {
        b"content-type": b"text/html; charset=utf-8",
        b"content-length": str(len(body)).encode(),
        b"cache-control": b"no-store",
    }
    assert len(headers) == 3


def test_error_page_escapes_the_detail() -> None:
    _, body = error_page(400, "<script>alert('x')</script> & more")
    assert b"<script>" not in body
    assert b"&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in body


def test_error_page_encodes_non_ascii_detail_as_utf8() -> None:
    headers, body = error_page(502, "upstream réfused")
    assert "upstream réfused".encode() in body
    assert dict(headers)[b"content-length"] == str(len(body)).encode()


def test_error_page_is_deterministic() -> None:
    assert error_page(504, "slow") == error_page(504, "slow")
    assert error_page(404) != error_page(404, "no route for a.example")


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (400, b"Bad Request"),
        (404, b"Not Found"),
        (408, b"Request Timeout"),
        (413, b"Content Too Large"),
        (431, b"Request Header Fields Too Large"),
        (499, b"Client Closed Request"),
        (500, b"Internal Server Error"),
        (502, b"Bad Gateway"),
        (503, b"Service Unavailable"),
        (504, b"Gateway Timeout"),
        (200, b"OK"),
        (101, b"Switching Protocols"),
        (599, b"Unknown"),
    ],
)
def test_reason(status: int, phrase: bytes) -> None:
    assert reason(status) == phrase
