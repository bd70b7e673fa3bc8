"""Small, deterministic HTML error pages the proxy answers with itself."""

from __future__ import annotations

import json
import math
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


def error_page(status: int, detail: str = "", custom: bytes | None = None) -> tuple[Headers, bytes]:
    """Headers and body of an HTML page for `status`; `detail` is HTML-escaped.

    `custom`: the operator's page for this status (server.error_pages), sent as it
    is instead. The headers carry content-type, content-length and cache-control:
    no-store (an error must not be cached by anyone in between); the proxy adds
    `connection: close` itself where HTTP requires it.
    """
    if custom is not None:
        return _html(custom), custom
    title = f"{status} {reason(status).decode('ascii')}"
    detail_html = f"<p>{escape(detail)}</p>\n" if detail else ""
    body = (
        "<!DOCTYPE html>\n"
        f'<html><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f"<body><h1>{title}</h1>\n{detail_html}<hr><p>hotswap</p></body></html>\n"
    ).encode()
    return _html(body), body


def _html(body: bytes) -> Headers:
    return [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", b"no-store"),
    ]


def retry_after(seconds: float) -> tuple[bytes, bytes]:
    """The Retry-After header for a delay in seconds (whole seconds, at least 1)."""
    return (b"retry-after", b"%d" % max(1, math.ceil(seconds)))


def accepts_only_json(headers: Headers) -> bool:
    """The client's Accept lists JSON media types only (application/json, */*+json)."""
    types: list[bytes] = []
    for name, value in headers:
        if name == b"accept":
            types += [item.partition(b";")[0].strip().lower() for item in value.split(b",")]
    types = [kind for kind in types if kind]
    return bool(types) and all(
        kind == b"application/json" or kind.endswith(b"+json") for kind in types
    )


def maintenance_page(
    message: str, seconds: float, *, json_body: bool, custom: bytes | None = None
) -> tuple[Headers, bytes]:
    """503 for a route in maintenance: Retry-After, and the message as HTML (the operator's
    maintenance.html with "{message}" replaced, escaped, if there is one) or JSON."""
    if json_body:
        body = json.dumps(
            {"error": "maintenance", "message": message, "retry_after": max(1, math.ceil(seconds))}
        ).encode()
        headers: Headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"cache-control", b"no-store"),
        ]
    elif custom is not None:
        body = custom.replace(b"{message}", escape(message).encode())
        headers = _html(body)
    else:
        text = f"<p>{escape(message)}</p>\n" if message else ""
        body = (
            "<!DOCTYPE html>\n"
            '<html><head><meta charset="utf-8"><title>Down for maintenance</title></head>\n'
            f"<body><h1>Down for maintenance</h1>\n{text}"
            "<p>Please try again shortly.</p></body></html>\n"
        ).encode()
        headers = _html(body)
    headers.append(retry_after(seconds))
    return headers, body


def error_response(status: int, detail: str = "") -> bytes:
    """A whole error response that closes the connection, for the paths that have no
    request to answer through a codec (a connection refused before its request was
    read, or a response head already promised that must be replaced)."""
    headers, body = error_page(status, detail)
    headers.append((b"connection", b"close"))
    return response_head(status, reason(status), headers) + body
