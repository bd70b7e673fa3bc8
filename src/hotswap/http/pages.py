"""Small, deterministic HTML error pages the proxy answers with itself."""

from __future__ import annotations

from functools import lru_cache
from html import escape
from http import HTTPStatus

from hotswap.http.headers import Headers
from hotswap.http.serialize import response_head

_REASONS: dict[int, bytes] = {
    400: b"Bad Request",
    404: b"Not Found",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    # nginx's non-standard code for a client that went away mid-request.
    499: b"Client Closed Request",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


@lru_cache(maxsize=128)
def reason(status: int) -> bytes:
    """The reason phrase for `status` (b"Unknown" for a code nobody named)."""
    known = _REASONS.get(status)
    if known is not None:
        return known
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


def error_page(status: int, detail: str = "") -> tuple[Headers, bytes]:
    """Headers and body of an HTML page for `status`; `detail` is HTML-escaped.

    The headers carry content-type, content-length and cache-control: no-store
    (an error must not be cached by anyone in between); the proxy adds
    `connection: close` itself where HTTP requires it.
    """
    title = f"{status} {reason(status).decode('ascii')}"
    detail_html = f"<p>{escape(detail)}</p>\n" if detail else ""
    body = (
        "<!DOCTYPE html>\n"
        f"<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n"
        f"<body><h1>{title}</h1>\n{detail_html}<hr><p>hotswap</p></body></html>\n"
    ).encode()
    headers: Headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", b"no-store"),
    ]
    return headers, body


def error_response(status: int, detail: str = "") -> bytes:
    """A whole error response that closes the connection, for the paths that have no
    request to answer through a codec (a connection refused before its request was
    read, or a response head already promised that must be replaced)."""
    headers, body = error_page(status, detail)
    headers.append((b"connection", b"close"))
    return response_head(status, reason(status), headers) + body
