"""The proxy's listener: accept loops, max_connections, graceful shutdown.

One task per client connection (connection.py), all in the handler nursery the
server owns, next to the accept loops, the access log's writer and the abort
watch. `shutdown()` stops accepting, closes idle keep-alive connections at once,
lets exchanges in progress finish within the grace period and then cancels what
is left.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
from collections.abc import Callable
from typing import Final

import trio

from hotswap.config import ServerConfig
from hotswap.http.pages import error_response
from hotswap.proxy.abortwatch import AbortWatch
from hotswap.proxy.accesslog import AccessLog
from hotswap.proxy.connection import ClientConnection, Observer, ProxyContext
from hotswap.proxy.routes import RouteTable
from hotswap.proxy.sockio import SocketTransport
from hotswap.proxy.timers import TimerWheel

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


class ProxyServer:
    """The running proxy: bound port, open connections, graceful shutdown."""

    def __init__(
        self,
        config_getter: Callable[[], ServerConfig],
        ctx: ProxyContext,
        listeners: list[trio.SocketListener],
    ) -> None:
        self.config_getter = config_getter
        self.ctx = ctx
        self.listeners = listeners
        self.port: int = listeners[0].socket.getsockname()[1]
        self.connections: set[ClientConnection] = set()
        self.rejected = 0  # connections refused with 503 (max_connections)
        self._accept_scopes: list[trio.CancelScope] = []  # one per listener
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

    async def shutdown(self, grace: float) -> None:
        """Stop accepting, close idle connections, let exchanges finish within `grace`."""
        if not self.ctx.draining:
            self.ctx.draining = True
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
                if self.ctx.draining:
                    return
                while True:
                    await trio.lowlevel.wait_readable(lsock)
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
                        self._admit(sock, addr)
        finally:
            twin.close()
            lsock.close()

    def _admit(self, sock: socket.socket, addr: object) -> None:
        assert self._handlers is not None
        config = self.config_getter()  # a snapshot per connection: reloads apply to new ones
        if len(self.connections) >= config.max_connections:
            self.rejected += 1
            self._handlers.start_soon(_reject, SocketTransport(sock))
            return
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = addr[0] if isinstance(addr, tuple) else "-"
        conn = ClientConnection(self.ctx, SocketTransport(sock), config, peer)
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
    task_status: trio.TaskStatus[ProxyServer] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on config.listen (port 0 allowed) and proxy until shut down.

    `task_status.started()` receives the ProxyServer (its `.port` is the bound
    port). Returns once `ProxyServer.shutdown()` has finished. `access_log`:
    where access log lines go (default: stderr, in batches).
    """
    config = config_getter()
    listeners = await trio.open_tcp_listeners(config.listen.port, host=config.listen.host)
    watch = AbortWatch()
    timers = TimerWheel()
    own_log = access_log is None
    ctx = ProxyContext(
        routes, access_log=access_log or AccessLog(), watch=watch, timers=timers, observe=observe
    )
    server = ProxyServer(config_getter, ctx, listeners)
    log.info("proxy listening address=%s:%d", config.listen.host, server.port)
    try:
        async with trio.open_nursery() as handlers:
            server._handlers = handlers
            await handlers.start(watch.run)
            await handlers.start(timers.run)
            if own_log:
                handlers.start_soon(ctx.access_log.run)
            for listener in listeners:  # "localhost" may give 127.0.0.1 and ::1
                handlers.start_soon(server._accept_loop, listener)
            task_status.started(server)
            await trio.sleep(math.inf)
    finally:
        server._finished.set()
        for listener in listeners:
            listener.socket.close()
