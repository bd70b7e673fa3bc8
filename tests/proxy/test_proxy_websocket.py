"""Upgrade (WebSocket): forwarded, tunnelled, counted in flight, closed 1012 for a restart."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from proxy_helpers import HOST, harness, until
from trio_websocket import (
    ConnectionClosed,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
    wrap_client_stream,
)

from hotswap.config import Address

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@asynccontextmanager
async def open_websocket(port: int, resource: str = "/") -> AsyncIterator[WebSocketConnection]:
    """A trio-websocket client whose TCP stream we own and close.

    (trio-websocket 0.12 leaves its stream open when the server closes first.)
    """
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream, trio.open_nursery() as nursery:
        ws = await wrap_client_stream(nursery, stream, HOST, resource)
        try:
            yield ws
        finally:
            await ws.aclose()


class WsUpstream:
    """A trio-websocket echo server."""

    def __init__(self) -> None:
        self.port = 0
        self.closed = trio.Event()

    @property
    def address(self) -> Address:
        return Address(HOST, self.port)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async def handler(request: WebSocketRequest) -> None:
            ws = await request.accept()
            try:
                while True:
                    await ws.send_message(await ws.get_message())
            except ConnectionClosed:
                self.closed.set()

        async with trio.open_nursery() as nursery:
            server = await nursery.start(serve_websocket, handler, HOST, 0, None)
            self.port = server.port
            task_status.started()


async def test_websocket_through_the_proxy_counts_as_a_tunnel_while_open() -> None:
    async with harness(limit=20) as h:
        up = WsUpstream()
        await h.nursery.start(up.run)
        backend = h.route(HOST, up)  # type: ignore[arg-type]
        proxy = await h.proxy()
        async with open_websocket(proxy.port, "/chat") as ws:
            for text in ("one", "two", "x" * 100_000):
                await ws.send_message(text)
                assert await ws.get_message() == text
            assert (backend.inflight.requests, backend.inflight.tunnels) == (0, 1)
            assert len(backend.inflight.open_tunnels) == 1
        await up.closed.wait()
        await backend.inflight.wait_idle()
        assert backend.inflight.open_tunnels == ()
        assert backend.stats.errors == 0


async def test_close_for_restart_sends_1012_to_the_client() -> None:
    async with harness(limit=20) as h:
        up = WsUpstream()
        await h.nursery.start(up.run)
        backend = h.route(HOST, up)  # type: ignore[arg-type]
        proxy = await h.proxy()
        async with open_websocket(proxy.port) as ws:
            await ws.send_message("ping")
            assert await ws.get_message() == "ping"
            (tunnel,) = backend.inflight.open_tunnels
            tunnel.close_for_restart()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            reason = closed.value.reason
            assert reason is not None
            assert reason.code == 1012
        await backend.inflight.wait_idle()
        await up.closed.wait()


async def test_close_for_restart_lets_the_frame_in_progress_reach_the_client_whole() -> None:
    first_half_sent = trio.Event()
    restart_requested = trio.Event()
    message = b"hello, frame boundaries"
    frame = bytes([0x81, len(message)]) + message

    async def upstream(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(65536)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        await stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        await stream.send_all(frame[:7])
        first_half_sent.set()
        await restart_requested.wait()
        await trio.sleep(0.05)
        await stream.send_all(frame[7:] + frame)  # a second frame must not be forwarded
        while await stream.receive_some(65536):
            pass

    async with harness(limit=20) as h:
        up = await h.raw_upstream(upstream)
        backend = h.route(HOST, up)
        proxy = await h.proxy()
        async with open_websocket(proxy.port) as ws:
            await first_half_sent.wait()
            await until(lambda: backend.inflight.tunnels == 1)
            (tunnel,) = backend.inflight.open_tunnels
            await until(lambda: tunnel.bytes_down >= 7)  # type: ignore[attr-defined]  # the first half reached the client
            tunnel.close_for_restart()
            restart_requested.set()
            assert await ws.get_message() == message.decode()
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            reason = closed.value.reason
            assert reason is not None
            assert reason.code == 1012
        await backend.inflight.wait_idle()


async def test_a_websocket_client_that_stops_reading_ends_its_tunnel_after_idle_timeout() -> None:
    async def floods(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
        payload = b"x" * 65536
        frame = b"\x82\x7f" + len(payload).to_bytes(8, "big") + payload  # binary, unmasked
        with trio.move_on_after(30):
            while True:  # until the proxy closes this side
                await stream.send_all(frame)

    async with harness() as h:
        up = await h.raw_upstream(floods)
        backend = h.route("app.test", up)
        proxy = await h.proxy(idle_timeout=0.3)
        stream = await trio.open_tcp_stream(HOST, proxy.port)
        async with stream:
            await stream.send_all(
                b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
                b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            await until(lambda: backend.inflight.tunnels == 1)
            # Read nothing: the proxy's writes block; after idle_timeout it ends the tunnel.
            await backend.inflight.wait_idle()
            assert backend.inflight.open_tunnels == ()


async def test_a_websocket_opened_during_the_shutdown_gets_its_close_1012_too() -> None:
    """A connection accepted before the stop sends its first request during the drain;
    when that is a WebSocket upgrade, the tunnel is asked to close at once like those
    open when the drain began, not left to be cut when the grace ends."""
    async with harness(limit=20) as h:
        up = WsUpstream()
        await h.nursery.start(up.run)
        backend = h.route(HOST, up)  # type: ignore[arg-type]
        proxy = await h.proxy()
        stream = await trio.open_tcp_stream(HOST, proxy.port)
        async with stream, trio.open_nursery() as nursery:
            await until(lambda: proxy.open_connections == 1)
            h.nursery.start_soon(proxy.shutdown, 30.0)
            await trio.testing.wait_all_tasks_blocked()
            with trio.fail_after(10):  # well inside the grace
                ws = await wrap_client_stream(nursery, stream, HOST, "/")
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
            reason = closed.value.reason
            assert reason is not None
            assert reason.code == 1012
            await ws.aclose()
        await backend.inflight.wait_idle()
