"""The 308 response of a [redirects] name, without I/O.

`308 Permanent Redirect` (RFC 9110 15.4.9) keeps the method and the body, unlike
301, which clients may turn into a GET. The Location is the configured origin
followed by the request's path and query, as the client sent them (an
absolute-form target is reduced to its path and query).
"""

from __future__ import annotations

from html import escape
from typing import Final

from hotswap.http.headers import Headers
from hotswap.http.host import origin_form

REDIRECT_STATUS: Final = 308
# Bytes a Location may carry as they are: visible ASCII except what HTML or a header
# could misread; everything else is percent-encoded.
_SAFE: Final = frozenset(range(0x21, 0x7F)) - {ord('"'), ord("<"), ord(">"), ord("\\")}


def redirect_location(origin: str, target: bytes) -> bytes:
    """`origin` + the path and query of the request `target` ("/" for "*" or none)."""
    path = origin_form(target)
    if not path.startswith(b"/"):
        path = b"/"  # OPTIONS * and other non-path targets go to the root
    encoded = bytes(path) if all(b in _SAFE for b in path) else _percent_encode(path)
    return origin.encode("ascii") + encoded


def redirect_response(origin: str, target: bytes) -> tuple[int, Headers, bytes]:
    """(status, headers, body) answering a request for `target` on a redirected name."""
    return redirect_to(redirect_location(origin, target))


def redirect_to(location: bytes) -> tuple[int, Headers, bytes]:
    """(status, headers, body) of a 308 to `location` (visible ASCII, already encoded)."""
    link = escape(location.decode("ascii"))
    body = (
        "<!DOCTYPE html>\n"
        '<html><head><meta charset="utf-8"><title>308 Permanent Redirect</title></head>\n'
        f'<body><p>Moved to <a href="{link}">{link}</a>.</p></body></html>\n'
    ).encode()
    headers: Headers = [
        (b"location", location),
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    return REDIRECT_STATUS, headers, body


def _percent_encode(path: bytes) -> bytes:
    return b"".join(bytes([b]) if b in _SAFE else b"%%%02X" % b for b in path)
