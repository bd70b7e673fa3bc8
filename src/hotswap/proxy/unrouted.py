"""Answers for a request whose host takes it to no backend (issue 11).

RouteTable.acquire() resolves a host to a Backend (counted in flight), or to one
of these, which the proxy answers itself without connecting anywhere:

    Redirect      308 to the configured origin, path and query kept (http/redirect.py)
    Unavailable   502 at once: the route's container is down (exited, restarting); a
                  connect attempt would only fail later, or hang on a stale address
    None          404: no route for this host

A request body is never read here: the connection closes after the answer, and
says so (`close`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hotswap.http.pages import reason
from hotswap.http.redirect import redirect_response
from hotswap.proxy.routes import Redirect, Unavailable

if TYPE_CHECKING:
    from hotswap.proxy.codec import RequestHead
    from hotswap.proxy.server import ClientConnection

_CLOSE = (b"connection", b"close")


async def answer_unrouted(
    client: ClientConnection,
    request: RequestHead,
    host: str,
    found: Redirect | Unavailable | None,
    *,
    started: float,
    close: bool,
) -> None:
    """Answer `request` per what its host resolved to, and log it."""
    if isinstance(found, Unavailable):
        backend = found.backend
        detail = backend.down_reason or "the app's container is not running"
        await client.send_error(502, detail, close=close)
        client.log_access(request, host, 502, started, backend.name, domain=backend.route)
    elif isinstance(found, Redirect):
        status, headers, body = redirect_response(found.origin, request.target)
        if close or client.server.draining:
            headers.append(_CLOSE)
        codec = client.codec
        head = codec.response(status, headers, reason(status))
        if request.method != b"HEAD":  # h11 frames a HEAD response without its body
            head += codec.body(body)
        await client.send(head + codec.end())
        client.log_access(request, host, status, started, "-", domain=found.name)
    else:
        await client.send_error(404, f"no route for host {host}", close=close)
        client.log_access(request, host, 404, started, "-")
