"""The proxy's listener and the strict h11 server loop, one task per client connection.

Each connection reads a request head (within header_timeout; a keep-alive wait
is bounded by idle_timeout), forwards the exchange, and starts the next cycle
only when both sides are DONE; otherwise it closes. Pipelined requests are
answered in order: the codec keeps the bytes after a request and we read the
socket again only when it needs data. `shutdown()` stops accepting, closes
idle keep-alive connections at once, lets exchanges in progress finish within
the grace period and then cancels what is left.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from typing import Final

import trio

from hotswap.config import ServerConfig
from hotswap.http.pages import error_page, reason
from hotswap.proxy.codec import (
    CLOSED,
    MAX_REQUEST_HEAD_SIZE,
    NEED_DATA,
    ProtocolError,
    RequestHead,
    ServerCodec,
)
from hotswap.proxy.forward import ClientGone, UpstreamBroken, access_log, forward
from hotswap.proxy.routes import RouteTable
from hotswap.proxy.sockio import receive, send_all
from hotswap.proxy.tunnel import Tunnel
from hotswap.proxy.upstream import RECEIVE_SIZE

log = logging.getLogger(__name__)

# A connection refused for max_connections gets its 503 within this, or is dropped.
REJECT_TIMEOUT: Final = 1.0
# accept() failing for lack of resources (EMFILE ...): wait before the next accept,
# like trio.serve_listeners does.
ACCEPT_BACKOFF: Final = 0.1
_RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# The connection died in the backlog, as in trio's SocketListener.
_IGNORED_ACCEPT_ERRNOS: Final = frozenset({errno.ECONNABORTED, errno.EPERM, errno.EPROTO})
ACCEPT_BURST: Final = 64
_CLOSE: Final = (b"connection", b"close")
# Lingering close: how long and how much we read and drop after answering early.
LINGER_TIMEOUT: Final = 2.0
LINGER_LIMIT: Final = 64 * 1024 * 1024


class ProxyServer:
    """The running proxy: bound port, open connections, graceful shutdown."""

    def __init__(
        self,
        config_getter: Callable[[], ServerConfig],
        routes: RouteTable,
        listeners: list[trio.SocketListener],
    ) -> None:
        self.config_getter = config_getter
        self.routes = routes
        self.listeners = listeners
        self.port: int = listeners[0].socket.getsockname()[1]
        self.connections: set[ClientConnection] = set()
        self.draining = False
        self.rejected = 0  # connections refused with 503 (max_connections)
        # Called once per answered request: (domain or None, status, seconds, connect error).
        self.observe: Callable[[str | None, int, float, bool], None] | None = None
        self._accept_scopes: list[trio.CancelScope] = []  # one per listener
        self._handlers: trio.Nursery | None = None
        self._all_closed = trio.Event()
        self._finished = trio.Event()

    @property
    def open_connections(self) -> int:
        return len(self.connections)

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, close idle connections, let exchanges finish within `grace`."""
        if not self.draining:
            self.draining = True
            for scope in self._accept_scopes:
                scope.cancel()
            log.info("shutting down connections=%d grace=%ss", len(self.connections), grace)
            for conn in list(self.connections):
                conn.drain()
            if not self.connections:
                self._all_closed.set()
            with trio.move_on_after(grace):
                await self._all_closed.wait()
            if self.connections:
                log.warning(
                    "shutdown grace expired, closing connections=%d grace=%ss",
                    len(self.connections),
                    grace,
                )
            if self._handlers is not None:
                self._handlers.cancel_scope.cancel()
        await self._finished.wait()

    async def _accept_loop(self, listener: trio.SocketListener) -> None:
        """Accept connections on `listener` in bursts: every pending one at each wake-up.

        trio's accept() yields to the scheduler after each connection, so under
        load a burst of new connections would be admitted one per scheduler
        round behind every busy connection (seconds for a few hundred). A
        non-blocking twin of the listening socket drains the backlog at once.
        """
        lsock = listener.socket
        twin = socket.socket(fileno=os.dup(lsock.fileno()))  # same listening socket
        twin.setblocking(False)
        try:
            with trio.CancelScope() as scope:
                self._accept_scopes.append(scope)
                if self.draining:
                    return
                while True:
                    await trio.lowlevel.wait_readable(lsock)
                    for _ in range(ACCEPT_BURST):
                        try:
                            sock, _addr = twin.accept()
                        except BlockingIOError:
                            break
                        except OSError as exc:
                            if exc.errno in _RESOURCE_ERRNOS:
                                log.error("accept failed, backing off cause=%s", exc)
                                await trio.sleep(ACCEPT_BACKOFF)
                                break
                            if exc.errno in _IGNORED_ACCEPT_ERRNOS:
                                continue
                            raise
                        self._admit(trio.SocketStream(trio.socket.from_stdlib_socket(sock)))
        finally:
            twin.close()
            lsock.close()

    def _admit(self, stream: trio.SocketStream) -> None:
        assert self._handlers is not None
        config = self.config_getter()  # a snapshot per connection: reloads apply to new ones
        if len(self.connections) >= config.max_connections:
            self.rejected += 1
            self._handlers.start_soon(self._reject, stream)
            return
        conn = ClientConnection(self, stream, config)
        self.connections.add(conn)
        self._handlers.start_soon(self._handle, conn)

    async def _handle(self, conn: ClientConnection) -> None:
        try:
            await conn.serve()
        except Exception:
            # A bug must cost one connection, never the listener and its neighbours.
            log.exception("connection failed client=%s", conn.peer)
        finally:
            self.connections.discard(conn)
            conn.stream.socket.close()
            if self.draining and not self.connections:
                self._all_closed.set()

    async def _reject(self, stream: trio.SocketStream) -> None:
        """Answer 503 to a connection beyond max_connections, without reading its request."""
        headers, body = _page(503, "too many connections")
        codec = ServerCodec()
        # No request was read: the codec needs one to frame a response, so use a stub.
        codec.receive(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        codec.next_event()
        payload = codec.response(503, [*headers, _CLOSE], reason(503))
        payload += codec.body(body) + codec.end()
        with trio.move_on_after(REJECT_TIMEOUT):
            try:
                await stream.send_all(payload)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        stream.socket.close()


def _page(status: int, detail: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """An error page with its framing: a fresh header list the caller may extend."""
    headers, body = error_page(status, detail)
    headers = [item for item in headers if item[0] != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    return headers, body


class ClientConnection:
    """One client connection: the h11 server loop and what forward() needs of it."""

    __slots__ = (
        "codec",
        "config",
        "final_error",
        "gone",
        "idle",
        "in_head",
        "peer",
        "routes",
        "scope",
        "server",
        "stream",
        "tunnel",
    )

    def __init__(self, server: ProxyServer, stream: trio.SocketStream, config: ServerConfig):
        self.server = server
        self.routes = server.routes
        self.stream = stream
        self.config = config  # a snapshot: a reload applies to new connections
        self.codec = ServerCodec(MAX_REQUEST_HEAD_SIZE)
        try:
            self.peer: str = stream.socket.getpeername()[0]
        except OSError:
            self.peer = "-"
        self.gone = False
        self.final_error = False  # send_final_error() answered: nothing more is sent
        self.scope = trio.CancelScope()  # the connection's: deadline per phase
        self.idle = False  # waiting for a request, nothing of it received
        self.in_head = False  # part of a request head received
        self.tunnel: Tunnel | None = None

    def drain(self) -> None:
        """Shutdown: close now if idle; finish the exchange in progress otherwise."""
        if self.idle:
            self.scope.cancel()
        if self.tunnel is not None:
            self.tunnel.close_for_restart()

    async def serve(self) -> None:
        """Serve requests until the connection should close; linger if the client is sending."""
        await self._serve()
        codec = self.codec
        answered = codec.response_done or self.final_error
        if not self.gone and answered and not codec.peer_done:
            await self._linger()

    async def _linger(self) -> None:
        """Read and drop what the client still sends (bounded) before closing.

        We answered before reading the whole request (413, an early upstream answer,
        a 400): closing with unread input would reset the connection and could
        destroy the response before the client read it (RFC 9112 9.6).
        """
        try:
            self.stream.socket.shutdown(socket.SHUT_WR)
        except OSError:
            return
        dropped = 0
        with trio.move_on_after(LINGER_TIMEOUT):
            while dropped < LINGER_LIMIT:
                try:
                    data = await self.stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
                if not data:
                    return
                dropped += len(data)

    async def _serve(self) -> None:
        """The connection's loop; one cancel scope for its lifetime, its deadline moved per
        phase (idle_timeout, header_timeout, none while an exchange runs)."""
        codec = self.codec
        scope = self.scope
        scope.deadline = trio.current_time() + self.config.header_timeout
        first = True
        with scope:
            while True:
                request = await self._read_request(first)
                if request is None:
                    return
                scope.deadline = math.inf  # forward() owns the exchange's timeouts
                first = False
                try:
                    await forward(self, request)
                except (ClientGone, UpstreamBroken):
                    return
                if self.tunnel is not None or codec.switched:
                    return
                if self.server.draining or not codec.cycle_done:
                    return
                codec.start_next_cycle()
        if self.in_head and not self.server.draining:
            await self._timeout_408()

    async def _read_request(self, first: bool) -> RequestHead | None:
        """The next request head, or None when the connection should close."""
        codec = self.codec
        config = self.config
        scope = self.scope
        waiting = not codec.has_buffered_data
        idle = waiting and not first  # a keep-alive wait between requests
        head_started = 0.0
        if idle:
            scope.deadline = trio.current_time() + config.idle_timeout
        elif not first:
            scope.deadline = trio.current_time() + config.header_timeout
        self.in_head = not waiting
        if waiting:  # nothing of a request yet: shutdown may close it at once
            if self.server.draining:
                return None
            self.idle = True
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
                        scope.deadline = head_started + config.header_timeout
                        head_started = 0.0
                    try:
                        data = await receive(self.stream.socket, RECEIVE_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return None
                    if data and not self.in_head:
                        self.in_head = True
                        self.idle = False
                        if idle:
                            head_started = trio.current_time()
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

    async def _bad_request(self, exc: ProtocolError) -> None:
        status = exc.status_hint
        log.info("bad request client=%s status=%d cause=%s", self.peer, status, exc)
        if self.codec.can_respond:
            with trio.move_on_after(REJECT_TIMEOUT):
                await self._send_error_quietly(status, str(exc))

    async def _timeout_408(self) -> None:
        log.info(
            "request head timeout client=%s timeout=%ss", self.peer, self.config.header_timeout
        )
        if self.codec.can_respond:
            with trio.move_on_after(REJECT_TIMEOUT):
                await self._send_error_quietly(408, "the request head took too long")

    async def _send_error_quietly(self, status: int, detail: str) -> None:
        try:
            await self.send_error(status, detail, close=True)
        except ClientGone:
            pass

    # -- what forward() uses -----------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """Write to the client; a failed write ends the connection (ClientGone).

        A client that reads nothing for idle_timeout while we write (a slow-read
        attack, or a client gone without a FIN) is treated as gone, so it cannot hold
        a backend's in-flight count, and with it a deploy's drain, forever.
        """
        timeout = self.config.idle_timeout
        try:
            with trio.move_on_after(timeout):
                await send_all(self.stream.socket, data)
                return
            cause = f"the client read nothing for idle_timeout={timeout:g}s"
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.codec.send_failed()
            self.gone = True
            raise ClientGone(f"write to client failed: {exc}") from exc
        self.codec.send_failed()
        self.gone = True
        raise ClientGone(cause)

    async def send_final_error(self, status: int, detail: str) -> None:
        """An error page written straight to the socket, bypassing the codec, whose
        state already holds a response that was never sent; the connection closes after."""
        headers, body = _page(status, detail)
        head = b"HTTP/1.1 %d %s\r\n" % (status, reason(status))
        head += b"".join(b"%s: %s\r\n" % item for item in headers)
        self.final_error = True
        await self.send(head + b"connection: close\r\n\r\n" + body)

    async def send_error(self, status: int, detail: str, *, close: bool = False) -> None:
        """Answer the current request with a small error page."""
        headers, body = _page(status, detail)
        if close or self.server.draining:
            headers.append(_CLOSE)
        codec = self.codec
        head = codec.response(status, headers, reason(status))
        await self.send(head + codec.body(body) + codec.end())

    def log_access(
        self,
        request: RequestHead,
        host: str,
        status: int,
        started: float,
        backend: str,
        sent: int = 0,
        *,
        domain: str | None = None,
        connect_error: bool = False,
    ) -> None:
        """The access log line and the request metrics of one answered request.

        `domain`: the route that answered (None when none did, so a hostile Host
        header cannot create metric series).
        """
        duration = time.perf_counter() - started
        observe = self.server.observe
        if observe is not None:
            observe(domain, status, duration, connect_error)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                "client=%s host=%s method=%s path=%s status=%d bytes=%d duration_ms=%.1f "
                "backend=%s",
                self.peer,
                host,
                request.method.decode("ascii", "replace"),
                request.target.decode("ascii", "replace"),
                status,
                sent,
                duration * 1000.0,
                backend,
            )


async def serve_proxy(
    config_getter: Callable[[], ServerConfig],
    routes: RouteTable,
    *,
    observe: Callable[[str | None, int, float, bool], None] | None = None,
    task_status: trio.TaskStatus[ProxyServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on config.listen (port 0 allowed) and proxy until shut down.

    `task_status.started()` receives the ProxyServer (its `.port` is the bound
    port). Returns once `ProxyServer.shutdown()` has finished.
    """
    config = config_getter()
    listeners = await trio.open_tcp_listeners(config.listen.port, host=config.listen.host)
    server = ProxyServer(config_getter, routes, listeners)
    server.observe = observe
    log.info("proxy listening address=%s:%d", config.listen.host, server.port)
    try:
        async with trio.open_nursery() as handlers:
            server._handlers = handlers
            for listener in listeners:  # "localhost" may give 127.0.0.1 and ::1
                handlers.start_soon(server._accept_loop, listener)
            task_status.started(server)
            await trio.sleep(math.inf)
    finally:
        server._finished.set()
        for listener in listeners:
            listener.socket.close()
