"""What forward() and the exchange may use of the client connection: a narrow interface.

The connection (connection.py) owns the client socket, the keep-alive loop and
the one cancel scope whose deadline bounds every wait of the connection. The
code below it writes and reads through `send` / `receive`, answers with
`send_error`, and moves the connection's deadline with `deadline_at` naming the
phase, so that when the deadline passes the connection knows what timed out and
answers for it (504, 408, ...).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hotswap.config import ServerConfig
    from hotswap.proxy.sockio import Transport
    from hotswap.proxy.tunnel import Tunnel


class Phase(enum.Enum):
    """What the connection's deadline bounds right now."""

    NONE = "none"  # nothing: the deadline is infinite
    HANDSHAKE = "handshake"  # a TLS handshake (tls.handshake_timeout): closed, counted
    IDLE = "idle"  # waiting for the next request (idle_timeout): closed quietly
    HEAD = "head"  # reading a request head (header_timeout): 408
    UPSTREAM = "upstream"  # waiting on the backend (upstream_response_timeout): 504
    SEND = "send"  # writing to a client that does not read (idle_timeout): closed


class ClientGone(Exception):
    """The client closed its connection (or a write to it failed) mid-exchange."""


class Client(Protocol):
    """One client connection, as an exchange sees it."""

    peer: str  # the client's address
    scheme: str  # "http" or "https"
    trusted: bool  # the peer is one of server.trusted_proxies
    hsts: bytes | None  # Strict-Transport-Security for this connection's responses
    config: ServerConfig  # this connection's snapshot of [server]
    transport: Transport  # the socket; a WebSocket tunnel copies bytes on it after a 101
    tunnel: Tunnel | None  # the open tunnel (a shutdown asks it to close)
    gone: bool  # the client closed the connection

    @property
    def draining(self) -> bool:
        """The server is shutting down: this connection closes after the exchange."""

    async def send(self, data: bytes) -> None:
        """Write to the client; ClientGone if it failed or the client read nothing
        for idle_timeout."""

    async def send_interim(self, data: bytes) -> None:
        """Write an interim response (100 Continue) from the request-body task; bounded by
        idle_timeout on its own, leaving the connection's deadline to the response side."""

    async def send_error(self, status: int, detail: str, *, close: bool = False) -> None:
        """Answer the current request with a small error page."""

    async def send_response(
        self, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, close: bool
    ) -> None:
        """Answer the current request with a whole response of our own (`headers` with
        its content-length; the body is left out for HEAD)."""

    async def receive(self) -> bytes:
        """Request body bytes from the client (b"" at EOF); ClientGone if the read
        failed, ProtocolError(408) if nothing came for idle_timeout."""

    def deadline_at(self, phase: Phase, deadline: float) -> None:
        """Bound the connection's next waits by `deadline` (timers.now() seconds;
        math.inf: none), as `phase`."""

    def open_tunnel(self, tunnel: Tunnel) -> None:
        """The exchange switched protocols: `tunnel` copies the bytes from now on (one
        opened while the server drains is asked to close at once, like the others)."""

    def watch(self, waiting: bool) -> None:
        """Waiting on the backend (True) or not (False): while waiting long, a close
        by the client cancels the exchange."""

    def new_request_id(self) -> bytes | None:
        """An X-Request-Id for a request to forward; None when server.request_id is off."""
