"""One client connection: the keep-alive loop, its socket, its deadline and its log lines.

Each connection reads a request head (within header_timeout; a keep-alive wait
is bounded by idle_timeout), forwards the exchange, and starts the next cycle
only when both sides are DONE; otherwise it closes. Pipelined requests are
answered in order: the codec keeps the bytes after a request and the socket is
read again only when the codec needs data.

Timeouts: one cancel scope for the connection's life and one deadline, moved per
phase on the server's timer wheel (timers.py: two set operations, where a trio
deadline move costs a heap push through a context manager). When it passes, the
wheel cancels the scope; the phase says what timed out and the connection
answers for it outside the scope: 408 for a slow head, 504 for a backend that
does not answer, a quiet close for an idle keep-alive connection or a client
that stops reading. Then the connection closes. After each request the outcome forward()
left is logged and counted here, and only here.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Final

import trio

from hotswap.config import HttpParser, ServerConfig
from hotswap.http.pages import error_page, error_response, reason
from hotswap.proxy.abortwatch import AbortWatch
from hotswap.proxy.accesslog import AccessLog
from hotswap.proxy.client import ClientGone, Phase
from hotswap.proxy.codec import (
    CLOSED,
    MAX_REQUEST_HEAD_SIZE,
    NEED_DATA,
    ProtocolError,
    RequestHead,
    ServerCodec,
)
from hotswap.proxy.codec_fast import FastServerCodec
from hotswap.proxy.codec_h11 import H11ServerCodec
from hotswap.proxy.controls import RouteControls
from hotswap.proxy.forward import Edge, forward
from hotswap.proxy.outcome import CLIENT_GONE_STATUS, Outcome
from hotswap.proxy.routes import RouteTable
from hotswap.proxy.sockio import FAIR_RUN, TlsTransport, Transport
from hotswap.proxy.timers import TimerWheel, now
from hotswap.proxy.tunnel import Tunnel
from hotswap.proxy.upstream import RECEIVE_SIZE
from hotswap.tls.handshake import HandshakeFailed, accept_tls_socket

log = logging.getLogger(__name__)

# An error answer after a timeout or a bad request gets this long to be written.
ANSWER_TIMEOUT: Final = 1.0
# Lingering close: how long and how much we read and drop after answering early.
LINGER_TIMEOUT: Final = 2.0
LINGER_LIMIT: Final = 64 * 1024 * 1024
# A stop (not a takeover) gives a connection that has sent nothing yet this long for
# its first request (a request on the wire), not all of header_timeout: a silent
# connection (a browser's preconnect) must not keep a stopping process alive.
FIRST_REQUEST_GRACE: Final = 1.0
_CLOSE: Final = (b"connection", b"close")
_CODECS: Final[dict[HttpParser, Callable[[int], ServerCodec]]] = {
    HttpParser.FAST: FastServerCodec,
    HttpParser.H11: H11ServerCodec,
}

# Called once per answered request: (route or None, status, seconds, connect error).
Observer = Callable[[str | None, int, float, bool], None]
# Called once per failed TLS handshake, with the reason (a bounded set, a metrics label).
HandshakeObserver = Callable[[str], None]
HANDSHAKE_TIMEOUT_REASON: Final = "timeout"
_STS: Final = b"strict-transport-security"


class RequestIds:
    """X-Request-Id values: a random per-process prefix and a counter (unique, cheap)."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex().encode("ascii")
        self._count = 0

    def next(self) -> bytes:
        self._count += 1
        return b"%s-%x" % (self._prefix, self._count)


class ProxyContext:
    """What the connections of one server share; the server owns it."""

    def __init__(
        self,
        routes: RouteTable,
        *,
        access_log: AccessLog,
        watch: AbortWatch,
        timers: TimerWheel,
        observe: Observer | None = None,
        edge: Edge | None = None,
        on_handshake_failure: HandshakeObserver | None = None,
        controls: RouteControls | None = None,
    ) -> None:
        self.routes = routes
        self.access_log = access_log
        self.watch = watch
        self.timers = timers
        self.observe = observe
        self.edge = edge  # ACME challenges and HTTPS redirects (tls.TlsManager), if any
        self.on_handshake_failure = on_handshake_failure
        self.controls = controls  # pause and maintenance of routes
        self.request_ids = RequestIds()
        self.draining = False
        # While draining: False closes idle keep-alive connections at once (a stop); True
        # keeps them for their next request, answered with Connection: close (a takeover:
        # the client may be sending on them right now, and the new process serves the
        # reconnect). ProxyServer.shutdown() sets both.
        self.keep_idle = False
        # While draining: WebSockets get their close 1012 (websocket_drain = "close"),
        # those opened during the drain too; False lets them run until the grace ends.
        self.close_tunnels = True

    def record(self, outcome: Outcome, client: str, config: ServerConfig) -> None:
        """Count and log one answered request."""
        duration = time.perf_counter() - outcome.started
        observe = self.observe
        if observe is not None:
            observe(outcome.route, outcome.status, duration, outcome.connect_error)
        self.access_log.record(outcome, client, config.access_log, duration)


class ClientConnection:
    """One client connection; the Client (client.py) that forward() and the exchange see."""

    __slots__ = (
        "codec",
        "config",
        "ctx",
        "final_error",
        "fresh",
        "gone",
        "handshake_timeout",
        "hsts",
        "idle",
        "in_head",
        "outcome",
        "peer",
        "phase",
        "scheme",
        "scope",
        "timer_slot",
        "tls",
        "transport",
        "trusted",
        "tunnel",
        "unyielded",
        "wait_count",
        "watcher",
    )

    def __init__(
        self,
        ctx: ProxyContext,
        transport: Transport,
        config: ServerConfig,
        peer: str,
        *,
        trusted: bool = False,
        tls: ssl.SSLContext | None = None,
        hsts: str = "",
        handshake_timeout: float = math.inf,
    ) -> None:
        self.ctx = ctx
        self.transport = transport
        self.config = config  # a snapshot: a reload applies to new connections
        self.peer = peer
        self.tls = tls  # the listener's context: a handshake comes first
        self.handshake_timeout = handshake_timeout
        self.scheme = "https" if tls is not None else "http"
        self.hsts = hsts.encode("ascii") if tls is not None and hsts else None
        self.trusted = trusted
        self.codec = _CODECS[config.http_parser](MAX_REQUEST_HEAD_SIZE)
        self.scope = trio.CancelScope()  # the connection's; the timer wheel cancels it
        self.phase = Phase.HEAD
        self.timer_slot = 0  # the timer wheel's
        self.gone = False  # the client closed, or a write to it failed
        self.final_error = False  # an error was written past the codec: nothing more is sent
        self.idle = False  # waiting for a keep-alive request, nothing of it received
        self.fresh = False  # waiting for the first request, nothing of it received
        self.in_head = False  # part of a request head received
        self.outcome: Outcome | None = None  # of the request being served
        self.tunnel: Tunnel | None = None
        self.watcher: trio.CancelScope | None = None  # AbortWatch's, while one runs
        self.wait_count = 0
        self.unyielded = 0  # writes in a row that did not wait (see send())

    # -- the loop --------------------------------------------------------------------

    def drain(self) -> None:
        """Shutdown: close now if idle; within FIRST_REQUEST_GRACE if no request has
        begun or the TLS handshake is not done (a takeover, ctx.keep_idle, serves them
        all); finish the exchange in progress otherwise; a tunnel gets its close 1012
        now if ctx.close_tunnels."""
        if not self.ctx.keep_idle:
            if self.idle:
                self.scope.cancel()
            elif self.fresh or self.phase is Phase.HANDSHAKE:
                self.ctx.timers.sooner(self, now() + FIRST_REQUEST_GRACE)
        if self.tunnel is not None and self.ctx.close_tunnels:
            self.tunnel.close_for_restart()

    def open_tunnel(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel
        if self.ctx.draining and self.ctx.close_tunnels:  # opened during the drain
            tunnel.close_for_restart()

    async def serve(self) -> None:
        """Serve requests until the connection should close; linger if the client is sending."""
        try:
            await self._serve()
        finally:
            outcome = self.outcome
            if outcome is not None:  # cut from outside: the end of the shutdown grace
                self.outcome = None
                outcome.close = True
                if not outcome.status or self.codec.can_respond:
                    outcome.status = CLIENT_GONE_STATUS if self.gone else 503
                self.ctx.record(outcome, self.peer, self.config)
        codec = self.codec
        answered = codec.response_done or self.final_error
        if not self.gone and answered and not codec.peer_done:
            await self._linger()

    async def _serve(self) -> None:
        codec = self.codec
        ctx = self.ctx
        config = self.config
        edge = ctx.edge
        first = True
        with self.scope:
            if self.tls is not None and not await self._handshake(self.tls):
                return
            self.deadline_at(Phase.HEAD, now() + config.header_timeout)
            while True:
                request = await self._read_request(first)
                if request is None:
                    return
                first = False
                if self.scope.cancel_called:
                    # A deadline (or the drain) fired in the tick the head completed:
                    # never forward a request whose connection is being cut (it would
                    # reach the app and then get a wrong 504). It closes with no
                    # answer: the keep-alive race for a drain or idle_timeout, which
                    # clients retry; a head that ends just as header_timeout passes.
                    log.info("request head at its deadline, closing client=%s", self.peer)
                    return
                outcome = Outcome(request, time.perf_counter())
                self.outcome = outcome
                await forward(self, codec, request, outcome, ctx.routes, edge, ctx.controls)
                self.outcome = None
                ctx.record(outcome, self.peer, config)
                if outcome.close or self.final_error or codec.switched:
                    return
                # Draining for a takeover (keep_idle), a response that went out without
                # Connection: close (its head was sent before the drain) leaves the client
                # free to send again: the next request gets the close, not a cut connection.
                if (ctx.draining and not ctx.keep_idle) or not codec.cycle_done:
                    return
                codec.start_next_cycle()
        await self._after_deadline()

    async def _handshake(self, context: ssl.SSLContext) -> bool:
        """The TLS handshake, within tls.handshake_timeout; False when it failed."""
        self.deadline_at(Phase.HANDSHAKE, now() + self.handshake_timeout)
        try:
            tls, _server_name = await accept_tls_socket(self.transport.socket, context)
        except HandshakeFailed as exc:
            self._handshake_failed(str(exc.reason))
            return False
        self.transport = TlsTransport(tls)  # the TLS socket owns the descriptor now
        return True

    def _handshake_failed(self, reason: str) -> None:
        # Bad handshakes are part of life on a public port: counted, logged at debug.
        log.debug("tls handshake failed client=%s reason=%s", self.peer, reason)
        if self.ctx.on_handshake_failure is not None:
            self.ctx.on_handshake_failure(reason)

    async def _read_request(self, first: bool) -> RequestHead | None:
        """The next request head, or None when the connection should close."""
        codec = self.codec
        config = self.config
        waiting = not codec.has_buffered_data
        idle = waiting and not first  # a keep-alive wait between requests
        head_started = 0.0
        if idle:
            self.deadline_at(Phase.IDLE, now() + config.idle_timeout)
        elif not first:
            self.deadline_at(Phase.HEAD, now() + config.header_timeout)
        self.in_head = not waiting
        if idle:  # a keep-alive wait: shutdown may close it at once
            if self.ctx.draining and not self.ctx.keep_idle:
                return None
            self.idle = True
        elif waiting:
            # A new connection waits for its first request even while draining: the
            # client was accepted and may be sending it (see drain()).
            if self.ctx.draining and not self.ctx.keep_idle:
                self.ctx.timers.sooner(self, now() + FIRST_REQUEST_GRACE)
            self.fresh = True
        try:
            while True:
                try:
                    event = codec.next_event()
                except ProtocolError as exc:
                    await self._bad_request(exc)
                    return None
                if event is NEED_DATA:
                    if head_started:
                        # The head did not come in one read: header_timeout counts from
                        # its first byte (set lazily: most heads arrive in one read).
                        self.deadline_at(Phase.HEAD, head_started + config.header_timeout)
                        head_started = 0.0
                    try:
                        data = await self.transport.receive(RECEIVE_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return None
                    if data and not self.in_head:
                        self.fresh = False
                        if self.scope.cancel_called:
                            # The drain or idle_timeout closed the keep-alive wait in
                            # the tick these bytes came: close, as if they came after.
                            return None
                        self.in_head = True
                        self.idle = False
                        if idle or self.ctx.draining:
                            # header_timeout from the first byte: of a keep-alive
                            # request, or of one begun in a stop's FIRST_REQUEST_GRACE
                            head_started = now()
                    codec.receive(data)
                elif type(event) is RequestHead:
                    assert isinstance(event, RequestHead)
                    self.in_head = False
                    return event
                elif event is CLOSED:
                    return None
                else:  # PAUSED cannot start a cycle: a bug if reached
                    log.error("unexpected event=%r client=%s", event, self.peer)
                    return None
        finally:
            self.idle = False
            self.fresh = False

    async def _after_deadline(self) -> None:
        """The connection's scope was cancelled: answer for what timed out, then close."""
        outcome = self.outcome  # kept until answered: send_response() needs its request
        phase = self.phase
        config = self.config
        if outcome is None:
            if phase is Phase.HANDSHAKE:
                self._handshake_failed(HANDSHAKE_TIMEOUT_REASON)
            elif self.in_head and phase is Phase.HEAD and not self.gone and not self.ctx.draining:
                log.info(
                    "request head timeout client=%s timeout=%ss", self.peer, config.header_timeout
                )
                await self._answer(408, "the request head took too long")
            return
        outcome.close = True
        stats = outcome.stats
        # (A response the codec holds as done may still be waiting to be written: the
        # last write is the one a client that reads nothing blocks.)
        if self.gone or phase is Phase.SEND:
            cause = (
                "connection closed by the client"
                if self.gone
                else f"the client read nothing for idle_timeout={config.idle_timeout:g}s"
            )
            outcome.status = CLIENT_GONE_STATUS
            if stats is not None:
                stats.client_aborts += 1
            log.info(
                "client aborted host=%s backend=%s client=%s cause=%s",
                outcome.host,
                outcome.backend,
                self.peer,
                cause,
            )
        elif phase is Phase.UPSTREAM:
            if stats is not None:
                stats.errors += 1
            cause = (
                "no response from the upstream within upstream_response_timeout="
                f"{config.upstream_response_timeout:g}s"
            )
            log.warning(
                "upstream error host=%s backend=%s status=%d cause=%s",
                outcome.host,
                outcome.backend,
                504,
                cause,
            )
            if self.codec.can_respond:
                outcome.status = 504
                await self._answer(504, "the app did not answer in time")
        self.outcome = None
        self.ctx.record(outcome, self.peer, config)

    async def _linger(self) -> None:
        """Read and drop what the client still sends (bounded) before closing.

        We answered before reading the whole request (413, an early upstream answer,
        a 400): closing with unread input would reset the connection and could
        destroy the response before the client read it (RFC 9112 9.6).
        """
        try:
            self.transport.socket.shutdown(socket.SHUT_WR)
        except OSError:
            return
        dropped = 0
        with trio.move_on_after(LINGER_TIMEOUT):
            while dropped < LINGER_LIMIT:
                try:
                    data = await self.transport.receive(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                dropped += len(data)

    async def _bad_request(self, exc: ProtocolError) -> None:
        status = exc.status_hint
        log.info("bad request client=%s status=%d cause=%s", self.peer, status, exc)
        await self._answer(status, str(exc))

    async def _answer(self, status: int, detail: str) -> None:
        """An error page and a close, if the request can still be answered (bounded)."""
        if self.codec.can_respond:
            self.deadline_at(Phase.NONE, math.inf)
            with trio.move_on_after(ANSWER_TIMEOUT):
                try:
                    await self.send_error(status, detail, close=True)
                except ClientGone:
                    pass

    # -- what forward() and the exchange use (client.Client) ------------------------------

    @property
    def draining(self) -> bool:
        return self.ctx.draining

    def deadline_at(self, phase: Phase, deadline: float) -> None:
        self.phase = phase
        self.ctx.timers.set(self, deadline)

    def expire(self) -> None:
        """The timer wheel: the deadline passed."""
        self.scope.cancel()

    def watch(self, waiting: bool) -> None:
        if waiting:
            self.ctx.watch.begin(self)
        else:
            self.ctx.watch.end(self)

    def client_closed(self) -> None:
        """AbortWatch saw the client close while its request waited on the backend."""
        self.gone = True
        self.scope.cancel()

    def new_request_id(self) -> bytes | None:
        return self.ctx.request_ids.next() if self.config.request_id else None

    async def send(self, data: bytes) -> None:
        """Write to the client; a failed write ends the connection (ClientGone).

        A client that reads nothing for idle_timeout while we write (a slow-read
        attack, or a client gone without a FIN) times out on the connection's
        deadline (Phase.SEND), so it cannot hold a backend's in-flight count, and
        with it a deploy's drain, forever.
        """
        transport = self.transport
        try:
            sent = transport.send_nowait(data)
            if sent < len(data):
                self.unyielded = 0
                self.deadline_at(Phase.SEND, now() + self.config.idle_timeout)
                await transport.send(data[sent:])
            else:
                # A write that did not wait is no checkpoint. Every answered request ends
                # with one, so yielding every FAIR_RUN of them keeps a pipelining client
                # (answered from the codec's buffer) or a fast download from holding
                # the scheduler.
                self.unyielded += 1
                if self.unyielded >= FAIR_RUN:
                    self.unyielded = 0
                    await trio.lowlevel.cancel_shielded_checkpoint()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.codec.send_failed()
            self.gone = True
            raise ClientGone(f"write to client failed: {exc}") from exc

    async def send_interim(self, data: bytes) -> None:
        # Written by the request-body task, beside the response side's waits: a scope of
        # its own, so the connection's deadline stays the response side's.
        timeout = self.config.idle_timeout
        with trio.move_on_after(timeout):
            try:
                await self.transport.send(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.codec.send_failed()
                self.gone = True
                raise ClientGone(f"write to client failed: {exc}") from exc
            return
        raise ClientGone(f"the client read nothing for idle_timeout={timeout:g}s")

    async def send_error(self, status: int, detail: str, *, close: bool = False) -> None:
        if not self.codec.can_respond:
            # A response head was produced but never written (the request turned out
            # malformed while the upstream answered early): the error is written past
            # the codec, and the connection closes after it.
            self.final_error = True
            await self.send(error_response(status, detail))
            return
        custom = self.config.error_page_files.get(str(status))
        headers, body = error_page(status, detail, custom)
        await self.send_response(status, headers, body, close=close)

    async def send_response(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, close: bool
    ) -> None:
        codec = self.codec
        if close or self.ctx.draining:
            headers.append(_CLOSE)
        if self.hsts is not None:
            headers.append((_STS, self.hsts))
        payload = codec.response(status, headers, reason(status))
        outcome = self.outcome
        if outcome is None or outcome.request.method != b"HEAD":
            payload += codec.body(body)  # a HEAD response has the length, not the body
        await self.send(payload + codec.end())

    async def receive(self) -> bytes:
        # A body that stalls for idle_timeout ends the exchange: 408, close (nginx:
        # client_body_timeout), so it cannot hold the backend forever. The body path
        # runs beside the response's own waits, so it has a scope of its own.
        timeout = self.config.idle_timeout
        data: bytes | None = None
        try:
            with trio.move_on_after(timeout):
                data = await self.transport.receive(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientGone(f"read from client failed: {exc}") from exc
        if data is None:
            raise ProtocolError(f"the request body stalled for idle_timeout={timeout:g}s", 408)
        return data
