"""The request head hotswap sends upstream for a client's request, built in one place.

Sans-I/O. From the client's parsed head: the target in origin-form, Host (the
authority of an absolute-form target wins, RFC 9112 §3.2.2), hop-by-hop headers
dropped, X-Forwarded-* and X-Request-Id (http/headers.py), Expect removed (the
proxy answers 100-continue itself, when it wants the body), and the framing of
the body as the proxy will send it.
"""

from __future__ import annotations

from typing import Final

from hotswap.http.headers import Headers, request_headers_for_upstream
from hotswap.http.host import origin_form, target_authority
from hotswap.http.paths import strip_prefix as without_prefix

_CHUNKED: Final = (b"transfer-encoding", b"chunked")


def _raw_host(headers: Headers) -> bytes:
    """The client's Host value as sent (X-Forwarded-Host carries it, port included)."""
    for name, value in headers:
        if name == b"host":
            return value
    return b""


def upstream_request(
    target: bytes,
    headers: Headers,
    *,
    route_host: str,
    client_ip: str,
    scheme: str,
    trusted: bool,
    request_id: bytes | None,
    length: int | None,
    chunked: bool,
    expect: bool,
    upgrade: bytes | None,
    strip_prefix: bytes = b"",
) -> tuple[bytes, Headers]:
    """(target, headers) of the upstream request.

    `route_host` is the normalised host the request was routed by (used when the
    client sent no Host, HTTP/1.0); `upgrade` the protocol to ask the upstream
    for (None: no upgrade); `length` / `chunked` the body's framing;
    `strip_prefix` the path prefix removed from the target (b"": none).
    """
    authority = target_authority(target)
    if authority is None:
        sent_host = _raw_host(headers).decode("latin-1") or route_host
    else:
        sent_host = authority.decode("latin-1")
    out = request_headers_for_upstream(
        headers,
        client_ip=client_ip,
        scheme=scheme,
        host=sent_host,
        upgrade=upgrade,
        trusted=trusted,
        request_id=request_id,
        prefix=strip_prefix,
    )
    if authority is not None:
        # Routed by the target's authority: the app must see that host, not
        # another one the client put in Host (RFC 9112 §3.2.2).
        out = [item for item in out if item[0] != b"host"]
        out.insert(0, (b"host", authority))
    if expect:
        out = [item for item in out if item[0] != b"expect"]
    if chunked:
        out.append(_CHUNKED)
    elif length is not None:
        out.append((b"content-length", b"%d" % length))
    if strip_prefix:
        return without_prefix(origin_form(target), strip_prefix), out
    return origin_form(target), out
