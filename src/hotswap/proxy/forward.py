"""One request: check it, resolve its route and count it in flight, then run the exchange.

The route is resolved and the request counted in flight in one synchronous call
(`RouteTable.acquire`), and the count ends when the last response byte has been
written to the client, or the exchange fails (exchange.py streams it). What
hotswap refuses to forward is answered here: a version other than HTTP/1.0 and
1.1 (505), CONNECT (405), a head over the limit (431), ambiguous framing (400),
a body declared over max_body_size (413), an unknown host (404).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Final

from hotswap.http.host import BadHost, request_host
from hotswap.proxy.codec import MAX_REQUEST_HEAD_SIZE, RequestHead
from hotswap.proxy.exchange import BodyTooLarge, ClientGone, Exchange, UpstreamBroken
from hotswap.proxy.routes import Backend
from hotswap.proxy.unrouted import answer_unrouted

if TYPE_CHECKING:
    from hotswap.proxy.server import ClientConnection

__all__ = ["BodyTooLarge", "ClientGone", "UpstreamBroken", "access_log", "forward"]

access_log = logging.getLogger("hotswap.access")

_VERSIONS: Final = frozenset({b"1.0", b"1.1"})


def _request_framing(request: RequestHead) -> tuple[int | None, bool, bool, int]:
    """(content-length, chunked, expects 100-continue, head size) of a request h11
    accepted, in one pass over its headers. The size counts the request line and
    the header lines as received."""
    length: int | None = None
    chunked = False
    expect = False
    size = len(request.method) + len(request.target) + 12
    for name, value in request.headers:
        size += len(name) + len(value) + 4
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True  # h11 accepts only "chunked"
        elif name == b"expect":
            expect = True
    return length, chunked, expect, size


def _refusal(request: RequestHead, head_size: int) -> tuple[int, str] | None:
    """(status, detail) for a request h11 parsed but hotswap does not forward, else None."""
    if request.http_version not in _VERSIONS:
        # h11 reads any HTTP/x.y request line; only 1.0 and 1.1 are HTTP/1 messages.
        return 505, f"HTTP/{request.http_version.decode('ascii', 'replace')} is not supported"
    if request.method == b"CONNECT":
        return 405, "CONNECT is not supported: hotswap is a reverse proxy"
    if head_size > MAX_REQUEST_HEAD_SIZE:
        # h11 limits only a head that arrives in pieces; one that came in one read
        # is measured here.
        return 431, f"the request head exceeds {MAX_REQUEST_HEAD_SIZE} bytes"
    return None


async def _answer(
    client: ClientConnection,
    request: RequestHead,
    host: str,
    status: int,
    detail: str,
    *,
    started: float,
    close: bool = True,
) -> None:
    """Answer `request` with an error page instead of forwarding it, and log it."""
    await client.send_error(status, detail, close=close)
    client.log_access(request, host, status, started, "-")


async def forward(client: ClientConnection, request: RequestHead) -> None:
    """Serve one request of `client`; leaves the client codec DONE, or the connection to close.

    Raises ClientGone / UpstreamBroken when the client connection must be closed
    at once (nothing more may be written to it).
    """
    started = time.perf_counter()
    length, chunked, expect, head_size = _request_framing(request)
    refused = _refusal(request, head_size)
    if refused is not None:
        await _answer(client, request, "-", *refused, started=started)
        return
    try:
        host = request_host(request.target, request.headers, request.http_version)
    except BadHost as exc:
        await _answer(client, request, "-", 400, str(exc), started=started)
        return
    if chunked and length is not None:
        # RFC 9112 6.3: a smuggling attempt or a broken client; never forward it.
        detail = "Content-Length with Transfer-Encoding"
        await _answer(client, request, host, 400, detail, started=started)
        return
    if not chunked and not length:
        # A request without a body: h11 has its end already; taking it now lets the
        # connection start its next cycle after any answer, error pages included.
        client.codec.next_event()
    limit = client.config.max_body_size
    if limit and length is not None and length > limit:
        await _answer(
            client, request, host, 413, f"the body exceeds {limit} bytes", started=started
        )
        return
    backend = client.routes.acquire(host)  # resolves and counts in flight: no checkpoint
    if not isinstance(backend, Backend):  # issue 11: a redirect, a down container or no route
        close = chunked or bool(length)  # a body not read: the connection closes after
        await answer_unrouted(client, request, host, backend, started=started, close=close)
        return
    exchange = Exchange(client, request, backend, host, length, chunked, expect)
    try:
        await exchange.run()
    finally:
        if exchange.tunnel is None:
            backend.inflight.end_request()
        client.log_access(
            request,
            host,
            exchange.status,
            started,
            backend.name,
            exchange.sent,
            domain=backend.route,  # issue 11: the route key, not the host (wildcards)
            connect_error=exchange.connect_error,
        )
