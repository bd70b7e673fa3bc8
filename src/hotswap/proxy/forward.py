"""One request: check it, resolve its route and count it in flight, then run the exchange.

The route is resolved and the request counted in flight in one synchronous call
(`RouteTable.acquire`), and the count ends when the last response byte has been
written to the client, or the exchange fails (exchange.py streams it). What
hotswap refuses to forward is answered here (http/checks.py: 505, 405, 400; a bad
Host 400; a body declared over max_body_size 413), and so are the hosts that lead
to no backend: a [redirects] name (308, http/redirect.py), a route whose
container is down (502 at once: a connect would only fail later, or hang on a
stale address), a path that the path routes of its host cannot route safely
(400, http/paths.py), no route at all (404). On a plain-HTTP connection, an ACME
HTTP-01 challenge of a pending order is answered, and a request for a domain
that has a certificate is sent to HTTPS (308), unless a trusted proxy in front
says the client's scheme was https already. A request body is never read for
those: the connection closes after the answer, and says so. The result is left
in the Outcome for the connection loop to log and count.
"""

from __future__ import annotations

import math
from typing import Final, Protocol

from hotswap.http.checks import refusal
from hotswap.http.headers import Headers
from hotswap.http.host import BadHost, request_host
from hotswap.http.pages import accepts_only_json, error_page, maintenance_page, retry_after
from hotswap.http.redirect import redirect_response
from hotswap.proxy.client import Client, ClientGone, Phase
from hotswap.proxy.codec import RequestHead, ServerCodec
from hotswap.proxy.controls import Control, RouteControls
from hotswap.proxy.exchange import Exchange
from hotswap.proxy.outcome import Outcome
from hotswap.proxy.routes import Backend, Redirect, Refused, RouteTable, Unavailable

_OCTETS: Final = (b"content-type", b"application/octet-stream")


class Edge(Protocol):
    """What plain-HTTP requests must ask the TLS side (tls.TlsManager)."""

    def challenge_response(self, method: bytes, host: str, target: bytes) -> bytes | None:
        """The body answering a pending ACME HTTP-01 challenge, else None."""

    def https_origin(self, host: str) -> str | None:
        """ "https://host[:port]" when plain requests for `host` go to HTTPS, else None."""


def _forwarded_https(client: Client, request: RequestHead) -> bool:
    """A trusted proxy in front says the client spoke HTTPS to it (no redirect loop)."""
    if not client.trusted:
        return False
    proto = b""
    for name, value in request.headers:
        if name == b"x-forwarded-proto" and value:
            proto = value
    return proto.lower() == b"https"


async def _edge(
    client: Client, outcome: Outcome, request: RequestHead, edge: Edge, host: str
) -> bool:
    """Answer an ACME challenge or redirect to HTTPS; False when the request goes on."""
    challenge = edge.challenge_response(request.method, host, request.target)
    if challenge is not None:
        headers = [_OCTETS, (b"content-length", b"%d" % len(challenge))]
        status = 200
        body = challenge
    else:
        origin = edge.https_origin(host)
        if origin is None or _forwarded_https(client, request):
            return False
        status, headers, body = redirect_response(origin, request.target)
    await _respond(client, outcome, status, headers, body, close=request.has_body)
    return True


async def _respond(
    client: Client, outcome: Outcome, status: int, headers: Headers, body: bytes, *, close: bool
) -> None:
    """Answer the request with a whole response of our own instead of forwarding it."""
    outcome.status = status
    try:
        await client.send_response(status, headers, body, close=close)
    except ClientGone:
        outcome.close = True


async def _answer(
    client: Client, outcome: Outcome, status: int, detail: str, *, close: bool = True
) -> None:
    """Answer the request with an error page instead of forwarding it."""
    outcome.status = status
    try:
        await client.send_error(status, detail, close=close)
    except ClientGone:
        outcome.close = True


async def _controlled(
    client: Client, outcome: Outcome, control: Control, controls: RouteControls
) -> bool:
    """Maintenance answers 503; a pause holds the request. True when it goes on: the
    caller acquires its route at once, with no checkpoint between (controls.py)."""
    request = outcome.request
    pages = client.config.error_page_files
    maintenance = control.maintenance
    if maintenance is not None:
        headers, body = maintenance_page(
            maintenance.message,
            maintenance.retry_after,
            json_body=accepts_only_json(request.headers),
            custom=pages.get("maintenance"),
        )
    else:
        client.deadline_at(Phase.NONE, math.inf)  # hold() bounds the wait on its own
        released = await control.hold()
        if control.idle:
            controls.forget_idle()
        if released:
            return True
        headers, body = error_page(503, "the app is paused for a moment", pages.get("503"))
        headers.append(retry_after(control.pause_timeout))
    await _respond(client, outcome, 503, headers, body, close=request.has_body)
    return False


async def _unrouted(
    client: Client,
    outcome: Outcome,
    found: Redirect | Unavailable | Refused | None,
    *,
    close: bool,
) -> None:
    """Answer a request whose host resolved to no backend (see the module docstring)."""
    if isinstance(found, Refused):  # path routes: an ambiguous path (http/paths.py)
        await _answer(client, outcome, 400, found.detail, close=close)
    elif isinstance(found, Unavailable):
        backend = found.backend
        outcome.route = backend.route
        outcome.backend = backend.name
        # Why it is down (its container's name and exit code) is for status and the log.
        await _answer(client, outcome, 502, "the app is not running right now", close=close)
    elif isinstance(found, Redirect):
        status, headers, body = redirect_response(found.origin, outcome.request.target)
        outcome.route = found.name
        await _respond(client, outcome, status, headers, body, close=close)
    else:
        await _answer(client, outcome, 404, f"no route for host {outcome.host}", close=close)


async def forward(
    client: Client,
    codec: ServerCodec,
    request: RequestHead,
    outcome: Outcome,
    routes: RouteTable,
    edge: Edge | None = None,
    controls: RouteControls | None = None,
) -> None:
    """Serve one request of `client`; leaves `codec` DONE, or `outcome.close` set."""
    refused = refusal(request.method, request.target, request.http_version)
    if refused is not None:
        await _answer(client, outcome, *refused)
        return
    try:
        host = request_host(request.target, request.headers, request.http_version)
    except BadHost as exc:
        await _answer(client, outcome, 400, str(exc))
        return
    outcome.host = host
    if not request.has_body:
        # The codec has the request's end already: taking it now lets the
        # connection start its next cycle after any answer, error pages included.
        codec.next_event()
    if (
        edge is not None
        and client.scheme == "http"
        and await _edge(client, outcome, request, edge, host)
    ):
        return
    limit = client.config.max_body_size
    if limit and request.length is not None and request.length > limit:
        await _answer(client, outcome, 413, f"the body exceeds {limit} bytes")
        return
    if controls is not None and controls.active:
        # The route key of a path route too: its pause or maintenance is its paths' only.
        resolved = routes.resolve(host, request.target)
        control = controls.get(resolved[0]) if isinstance(resolved, tuple) else None
        if control is not None and not await _controlled(client, outcome, control, controls):
            return
    # Resolves (host, then the target's path for path routes) and counts in flight, with
    # no checkpoint between. A path route's strip_prefix is applied upstream by the
    # exchange (backend.strip_prefix); backend.route is the route key.
    backend = routes.acquire(host, request.target)
    if not isinstance(backend, Backend):
        await _unrouted(client, outcome, backend, close=request.has_body)
        return
    outcome.route = backend.route  # the route key (a wildcard name makes no new series)
    outcome.backend = backend.name
    outcome.stats = backend.stats
    exchange = Exchange(client, codec, request, backend, outcome)
    try:
        await exchange.run()
    finally:
        if exchange.tunnel is None:
            backend.inflight.end_request()
