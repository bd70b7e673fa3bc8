"""What hotswap refuses to forward, whatever the codec parsed (sans-I/O).

A codec has already refused what is not HTTP/1.1 syntax and ambiguous framing;
these are the requests that parse but must not reach an app: a version other
than HTTP/1.0 and 1.1 (505), CONNECT (405: hotswap is a reverse proxy, not a
tunnel), and a request-target that is not one of RFC 9112 §3.2's forms for its
method (400): origin-form starts with "/", "*" is for OPTIONS only,
absolute-form is http or https, authority-form is for CONNECT only.
"""

from __future__ import annotations

from typing import Final

_VERSIONS: Final = frozenset({b"1.0", b"1.1"})
_SCHEMES: Final = (b"http://", b"https://")


def refusal(method: bytes, target: bytes, http_version: bytes) -> tuple[int, str] | None:
    """(status, detail) for a request hotswap does not forward, else None."""
    if http_version not in _VERSIONS:
        return 505, f"HTTP/{http_version.decode('ascii', 'replace')} is not supported"
    if method == b"CONNECT":
        return 405, "CONNECT is not supported: hotswap is a reverse proxy"
    first = target[:1]
    if first == b"/":
        return None
    if target == b"*":
        if method == b"OPTIONS":
            return None
        return 400, 'the request target "*" is for OPTIONS only'
    if target[:8].lower().startswith(_SCHEMES):
        return None
    return 400, "the request target must be a path, or an http or https URL"
