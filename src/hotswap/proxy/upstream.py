"""Upstream connections and the keep-alive pool of one backend.

The pool is small and explicit (after httpcore's): a bounded LIFO of idle
connections, each with the time it went idle. Expiry is lazy, at the next take
or release, so the pool needs no task of its own. Before an idle connection is
reused it is checked for readability: an idle upstream connection with
something to read has been closed (or has gone bad) and is discarded, so a
close by the upstream while idle does not turn into a client-visible error.
The remaining race (the upstream closes just as we send) is handled by the
forwarder's single retry.
"""

from __future__ import annotations

import logging
import select
from collections import deque
from collections.abc import Callable
from typing import Final

from hotswap.config import Address, HttpParser
from hotswap.proxy.codec import ClientCodec
from hotswap.proxy.codec_fast import FastClientCodec
from hotswap.proxy.codec_h11 import H11ClientCodec
from hotswap.proxy.sockio import SocketTransport, connect_tcp
from hotswap.proxy.timers import now

log = logging.getLogger(__name__)

DEFAULT_MAX_IDLE: Final = 256  # idle connections kept per backend
DEFAULT_IDLE_TIMEOUT: Final = 30.0  # seconds an idle connection may wait for reuse
RECEIVE_SIZE: Final = 64 * 1024

_POLL_READABLE: Final = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
_CODECS: Final[dict[HttpParser, Callable[[], ClientCodec]]] = {
    HttpParser.FAST: FastClientCodec,
    HttpParser.H11: H11ClientCodec,
}


class UpstreamConnection:
    """One TCP connection to a backend and its HTTP/1.1 client codec."""

    __slots__ = ("codec", "idle_since", "pool", "reused", "transport")

    def __init__(self, transport: SocketTransport, pool: UpstreamPool, parser: HttpParser) -> None:
        self.transport = transport
        self.codec = _CODECS[parser]()
        self.pool = pool
        self.reused = False  # carried an exchange before this one
        self.idle_since = 0.0

    def close(self) -> None:
        """Close at once (synchronous: the socket is closed, any waiter is woken)."""
        self.transport.close()

    def looks_closed(self) -> bool:
        """True when an idle connection has data or EOF to read: it must not be reused."""
        poller = select.poll()
        try:
            poller.register(self.transport.socket.fileno(), _POLL_READABLE)
        except ValueError:  # already closed
            return True
        return bool(poller.poll(0))


class UpstreamPool:
    """Keep-alive connections to one backend address."""

    def __init__(
        self,
        address: Address,
        *,
        max_idle: int = DEFAULT_MAX_IDLE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.address = address
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.closed = False
        self._idle: deque[UpstreamConnection] = deque()
        self.connects = 0  # connections opened (for tests and status)

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    def take_idle(self) -> UpstreamConnection | None:
        """An idle connection ready for a request, or None (synchronous, no checkpoint)."""
        if self.closed:
            return None
        self._expire(now())
        while self._idle:
            conn = self._idle.pop()  # most recently used: the likeliest to be alive
            if conn.looks_closed():
                log.debug("discarding closed idle connection backend=%s", self.address)
                conn.close()
                continue
            return conn
        return None

    async def connect(self, parser: HttpParser) -> UpstreamConnection:
        """Open a new connection (the caller owns the connect timeout)."""
        sock = await connect_tcp(self.address.host, self.address.port)
        self.connects += 1
        return UpstreamConnection(SocketTransport(sock), self, parser)

    def release(self, conn: UpstreamConnection) -> None:
        """Return `conn` after a complete exchange; closes it if it cannot be reused."""
        codec = conn.codec
        if self.closed or not codec.cycle_done or codec.has_buffered_data:
            # Bytes past the end of the response (a body sent with a HEAD, 204 or 304
            # answer, or anything else extra) would be read as the next request's
            # response, maybe another client's: such a connection is never reused.
            conn.close()
            return
        codec.start_next_cycle()
        when = now()
        self._expire(when)
        if len(self._idle) >= self.max_idle:
            conn.close()
            return
        conn.reused = True
        conn.idle_since = when
        self._idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        """Close `conn` after a failed or abandoned exchange."""
        conn.close()

    def close(self) -> None:
        """Close idle connections now; connections in use close after their exchange."""
        self.closed = True
        while self._idle:
            self._idle.pop().close()

    def _expire(self, when: float) -> None:
        idle = self._idle
        limit = when - self.idle_timeout
        while idle and idle[0].idle_since < limit:
            idle.popleft().close()
