"""The https URL a plain-HTTP request is redirected to (308). No I/O.

308 (not 301) keeps the method and body of the request (RFC 9110 §15.4.9),
and the path and query go along unchanged, so a form POST to http:// lands as
the same POST on https://.
"""

from __future__ import annotations

HTTPS_PORT = 443
STATUS = 308


def https_location(host: str, target: str, port: int) -> str:
    """`https://<host>[:<port>]<target>`; the port is left out when it is 443.

    `host` is the request's normalised host (an IPv6 literal keeps its
    brackets), `target` its origin-form target ("/path?query"); anything else
    (an asterisk-form target) redirects to "/".
    """
    authority = host if port in (HTTPS_PORT, 0) else f"{host}:{port}"
    path = target if target.startswith("/") else "/"
    return f"https://{authority}{path}"
