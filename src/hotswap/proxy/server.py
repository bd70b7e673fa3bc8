"""The proxy's listeners: accept loops, max_connections, graceful shutdown.

The plain listener (server.listen) and, with tls.listen, the HTTPS one: a
connection accepted there starts with its TLS handshake (bounded by
tls.handshake_timeout, counted in max_connections like any connection). One
task per client connection (connection.py), all in the handler nursery the
server owns, next to the accept loops, the access log's writer, the timer
wheel and the abort watch. `shutdown()` stops accepting, closes idle keep-alive connections at once,
lets exchanges in progress finish within the grace period and then cancels what
is left. For a takeover (handover/), the listening sockets may come from another
process (`listeners=`), `stop_accepting()` stops alone, and `shutdown(keep_idle=True)`
keeps idle keep-alive connections for their next request (answered with
`Connection: close`) instead of closing them under a client that may be sending.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import ssl
from collections.abc import Callable
from typing import Final, Protocol

import trio

from hotswap.config import Address, ServerConfig
from hotswap.http.forwarded import TrustedProxies
from hotswap.http.pages import error_response
from hotswap.proxy.abortwatch import AbortWatch
from hotswap.proxy.accesslog import AccessLog
from hotswap.proxy.connection import ClientConnection, HandshakeObserver, Observer, ProxyContext
from hotswap.proxy.controls import RouteControls
from hotswap.proxy.forward import Edge
from hotswap.proxy.routes import RouteTable
from hotswap.proxy.sockio import SocketTransport
from hotswap.proxy.timers import TimerWheel
from hotswap.proxy.tunnel import CLOSE_GRACE

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
_REJECTION: Final = error_response(503, "too many connections")


class TlsSide(Edge, Protocol):
    """What the listeners need of the TLS side (tls.TlsManager)."""

    https_port: int  # the HTTPS port redirects name (the bound one when listen has 0)

    @property
    def listen(self) -> Address | None: ...

    @property
    def context(self) -> ssl.SSLContext:
        """The current context (SNI picks the certificate); new connections use it."""

    @property
    def hsts(self) -> str | None: ...

    @property
    def handshake_timeout(self) -> float: ...


class ProxyServer:
    """The running proxy: bound port, open connections, graceful shutdown."""

    def __init__(
        self,
        config_getter: Callable[[], ServerConfig],
        ctx: ProxyContext,
        listeners: list[trio.SocketListener],
        tls: TlsSide | None = None,
        tls_listeners: list[trio.SocketListener] | None = None,
    ) -> None:
        self.config_getter = config_getter
        self.ctx = ctx
        self.listeners = listeners
        self.port: int = listeners[0].socket.getsockname()[1]
        self.tls = tls
        self.tls_listeners = tls_listeners or []
        self.tls_port: int | None = (
            self.tls_listeners[0].socket.getsockname()[1] if self.tls_listeners else None
        )
        # The plain listener answers ACME challenges: orders may be placed (app.py).
        self.serves_tls = tls is not None
        self._trusted = TrustedProxies()
        self.connections: set[ClientConnection] = set()
        self.rejected = 0  # connections refused with 503 (max_connections)
        self._accept_scopes: list[trio.CancelScope] = []  # one per listener
        self.accepting = True
        self._handlers: trio.Nursery | None = None
        self._all_closed = trio.Event()
        self._finished = trio.Event()

    @property
    def routes(self) -> RouteTable:
        return self.ctx.routes

    @property
    def draining(self) -> bool:
        return self.ctx.draining

    @property
    def open_connections(self) -> int:
        return len(self.connections)

    def stop_accepting(self) -> None:
        """Accept no more connections; the open ones go on as before.

        Only our descriptors of the listening sockets are closed: a process that
        holds them too (the successor of a takeover, systemd) keeps them listening,
        with the connections waiting in their backlog.
        """
        self.accepting = False
        for scope in self._accept_scopes:
            scope.cancel()

    async def shutdown(
        self, grace: float, *, keep_idle: bool = False, close_tunnels: bool = True
    ) -> None:
        """Stop accepting, close idle connections, let exchanges finish within `grace`.

        `keep_idle` (a takeover): idle keep-alive connections stay open for their next
        request, answered with `Connection: close`; one still idle closes when `grace`
        ends. `close_tunnels=False` (websocket_drain = "wait"): WebSockets stay open until
        they close or `grace` ends, then get their close 1012; otherwise they get it now.
        """
        if not self.ctx.draining:
            self.ctx.keep_idle = keep_idle
            self.ctx.close_tunnels = close_tunnels
            self.ctx.draining = True
            self.stop_accepting()
            log.info(
                "shutting down connections=%d grace=%ss keep_idle=%s",
                len(self.connections),
                grace,
                keep_idle,
            )
            for conn in list(self.connections):
                conn.drain()
            if not self.connections:
                self._all_closed.set()
            with trio.move_on_after(grace):
                await self._all_closed.wait()
            open_tunnels = [c.tunnel for c in self.connections if c.tunnel is not None]
            if open_tunnels and not close_tunnels:
                for tunnel in open_tunnels:
                    tunnel.close_for_restart()
                with trio.move_on_after(CLOSE_GRACE + 1):
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

    async def _accept_loop(self, listener: trio.SocketListener, secure: bool = False) -> None:
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
                if not self.accepting:
                    return
                while True:
                    await trio.lowlevel.wait_readable(lsock)
                    if not self.accepting:
                        # Stopped in the tick the backlog woke us (the cancel is still
                        # pending): what waits there is for whoever holds the socket too.
                        return
                    for _ in range(ACCEPT_BURST):
                        try:
                            sock, addr = twin.accept()
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
                        self._admit(sock, addr, secure)
        finally:
            twin.close()
            lsock.close()

    def _admit(self, sock: socket.socket, addr: object, secure: bool) -> None:
        assert self._handlers is not None
        config = self.config_getter()  # a snapshot per connection: reloads apply to new ones
        if len(self.connections) >= config.max_connections:
            self.rejected += 1
            if secure:  # no TLS yet: a plain 503 would be garbage to the client
                sock.close()
            else:
                self._handlers.start_soon(_reject, SocketTransport(sock))
            return
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = addr[0] if isinstance(addr, tuple) else "-"
        if self._trusted.networks_source != config.trusted_proxies:
            self._trusted = TrustedProxies(config.trusted_proxies)
        trusted = self._trusted.trusts(peer)
        transport = SocketTransport(sock)
        tls = self.tls
        if secure and tls is not None:
            conn = ClientConnection(
                self.ctx,
                transport,
                config,
                peer,
                trusted=trusted,
                tls=tls.context,
                hsts=tls.hsts or "",
                handshake_timeout=tls.handshake_timeout,
            )
        else:
            conn = ClientConnection(self.ctx, transport, config, peer, trusted=trusted)
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
            conn.transport.close()
            self.ctx.timers.clear(conn)
            if self.ctx.draining and not self.connections:
                self._all_closed.set()


async def _reject(transport: SocketTransport) -> None:
    """Answer 503 to a connection beyond max_connections, without reading its request."""
    with trio.move_on_after(REJECT_TIMEOUT):
        try:
            await transport.send(_REJECTION)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    transport.close()


async def serve_proxy(
    config_getter: Callable[[], ServerConfig],
    routes: RouteTable,
    *,
    observe: Observer | None = None,
    access_log: AccessLog | None = None,
    tls: TlsSide | None = None,
    on_handshake_failure: HandshakeObserver | None = None,
    controls: RouteControls | None = None,
    listeners: list[trio.SocketListener] | None = None,
    tls_listeners: list[trio.SocketListener] | None = None,
    task_status: trio.TaskStatus[ProxyServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on config.listen (port 0 allowed), and on tls.listen with `tls`, and proxy
    until shut down.

    `task_status.started()` receives the ProxyServer (its `.port` and `.tls_port`
    are the bound ports). Returns once `ProxyServer.shutdown()` has finished.
    `access_log`: where access log lines go (default: stderr, in batches).
    `listeners` / `tls_listeners`: listening sockets to accept on instead of binding
    config.listen / tls.listen (inherited from systemd or from a takeover; handover/).
    """
    config = config_getter()
    if listeners is None:
        listeners = await trio.open_tcp_listeners(config.listen.port, host=config.listen.host)
    if tls is None or tls.listen is None:
        tls_listeners = []
    else:
        if not tls_listeners:
            tls_listeners = await trio.open_tcp_listeners(tls.listen.port, host=tls.listen.host)
        if tls.listen.port == 0:
            tls.https_port = tls_listeners[0].socket.getsockname()[1]
    watch = AbortWatch()
    timers = TimerWheel()
    own_log = access_log is None
    ctx = ProxyContext(
        routes,
        access_log=access_log or AccessLog(),
        watch=watch,
        timers=timers,
        observe=observe,
        edge=tls,
        on_handshake_failure=on_handshake_failure,
        controls=controls,
    )
    server = ProxyServer(config_getter, ctx, listeners, tls, tls_listeners)
    log.info("proxy listening address=%s:%d", config.listen.host, server.port)
    if server.tls_port is not None and tls is not None and tls.listen is not None:
        log.info("proxy listening for https address=%s:%d", tls.listen.host, server.tls_port)
    try:
        async with trio.open_nursery() as handlers:
            server._handlers = handlers
            await handlers.start(watch.run)
            await handlers.start(timers.run)
            if own_log:
                handlers.start_soon(ctx.access_log.run)
            for listener in listeners:  # "localhost" may give 127.0.0.1 and ::1
                handlers.start_soon(server._accept_loop, listener)
            for listener in tls_listeners:
                handlers.start_soon(server._accept_loop, listener, True)
            task_status.started(server)
            await trio.sleep(math.inf)
    finally:
        server._finished.set()
        for listener in (*listeners, *tls_listeners):
            listener.socket.close()
