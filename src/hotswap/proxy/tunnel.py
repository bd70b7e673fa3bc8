"""The byte tunnel of an upgraded (WebSocket) connection, counted in flight while open.

After a 101 the proxy copies bytes both ways until either side closes. The
upstream -> client direction runs its bytes through a WebSocket FrameTracker, so
`close_for_restart()` can stop at a frame boundary: it lets the frame in
progress reach the client whole, then sends the client a close frame 1012
(service restart) so it reconnects - to the new backend after a deploy - and
closes the upstream side.
"""

from __future__ import annotations

import logging
import math
from typing import Final

import trio

from hotswap.http.websocket import FrameTracker, close_frame
from hotswap.proxy.sockio import Transport

log = logging.getLogger(__name__)

TUNNEL_RECEIVE_SIZE: Final = 64 * 1024
# After our close frame, how long the client may take to answer and close.
CLOSE_GRACE: Final = 2.0
RESTART_CLOSE_CODE: Final = 1012


class Tunnel:
    """Copies bytes between a client and an upstream after a protocol switch."""

    def __init__(
        self,
        client: Transport,
        upstream: Transport,
        *,
        backend: str,
        client_data: bytes = b"",
        upstream_data: bytes = b"",
        send_timeout: float = math.inf,
    ) -> None:
        self.client = client
        # A client that reads nothing for this long ends the tunnel (as on the HTTP
        # path: server.idle_timeout), so it cannot hold the tunnel count forever.
        self.send_timeout = send_timeout
        self.upstream = upstream
        self.backend = backend  # its name, for the logs
        self._client_data = client_data
        self._upstream_data = upstream_data
        self._tracker = FrameTracker()  # upstream -> client frames
        self._client_tracker = FrameTracker()  # client -> upstream: sees the client's close
        self._closing = False
        self._read_scope: trio.CancelScope | None = None  # upstream read, at a frame boundary
        self._inbound_scope: trio.CancelScope | None = None  # the client -> upstream copy
        self.bytes_up = 0
        self.bytes_down = 0

    @property
    def closing(self) -> bool:
        return self._closing

    def close_for_restart(self) -> None:
        """Request the close: finish the frame in progress, send 1012, close. Returns at once."""
        if self._closing:
            return
        self._closing = True
        if self._inbound_scope is not None:
            self._inbound_scope.cancel()
        if self._read_scope is not None and self._tracker.at_boundary:
            self._read_scope.cancel()  # waiting between frames: close now

    async def run(self) -> None:
        """Copy both ways until either side closes or a restart close completes."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._client_to_upstream, nursery.cancel_scope)
                await self._upstream_to_client()
                nursery.cancel_scope.cancel()
        finally:
            self.upstream.close()

    async def _client_to_upstream(self, done: trio.CancelScope) -> None:
        with trio.CancelScope() as scope:
            self._inbound_scope = scope
            if self._closing:
                return
            try:
                if self._client_data:
                    self._client_tracker.feed(self._client_data)
                    await self.upstream.send(self._client_data)
                    self.bytes_up += len(self._client_data)
                while True:
                    data = await self.client.receive(TUNNEL_RECEIVE_SIZE)
                    if not data:
                        break
                    self._client_tracker.feed(data)
                    await self.upstream.send(data)
                    self.bytes_up += len(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            if not self._closing:
                done.cancel()  # one side closed: the tunnel ends

    async def _upstream_to_client(self) -> None:
        tracker = self._tracker
        data = self._upstream_data
        try:
            while True:
                if data:
                    if self._closing:
                        # Consumes `data` up to the end of the frame in progress.
                        end = tracker.boundary_in(data)
                        if end is not None:
                            await self._send_client(data[:end])
                            break
                    else:
                        tracker.feed(data)
                    await self._send_client(data)
                if self._closing and tracker.at_boundary:
                    break
                with trio.CancelScope() as scope:
                    self._read_scope = scope
                    data = b""
                    data = await self.upstream.receive(TUNNEL_RECEIVE_SIZE)
                    if not data:
                        return  # upstream closed: the tunnel ends
                self._read_scope = None
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        await self._finish_restart()

    async def _send_client(self, data: bytes) -> None:
        with trio.move_on_after(self.send_timeout):
            await self.client.send(data)
            self.bytes_down += len(data)
            return
        raise trio.BrokenResourceError(f"the client read nothing for {self.send_timeout:g}s")

    async def _finish_restart(self) -> None:
        """Send the close frame, close the upstream, wait (bounded) for the client's close."""
        self.upstream.close()
        tracker = self._client_tracker
        try:
            if not self._tracker.close_seen:  # the upstream is not closing already
                await self._send_client(close_frame(RESTART_CLOSE_CODE))
            log.info(
                "websocket closed for restart backend=%s code=%d",
                self.backend,
                RESTART_CLOSE_CODE,
            )
            # RFC 6455 7.1.1: the server closes TCP after the closing handshake. Read
            # (and drop) what the client still sends until its close frame: closing
            # with unread input would reset the connection and could destroy our
            # close frame before the client read it.
            with trio.move_on_after(CLOSE_GRACE):
                while not tracker.close_seen:
                    data = await self.client.receive(TUNNEL_RECEIVE_SIZE)
                    if not data:
                        break
                    tracker.feed(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            # Busy: the inbound copy had not left its read yet; close without waiting.
            pass
