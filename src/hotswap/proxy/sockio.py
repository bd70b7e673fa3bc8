"""The proxy's hot-path socket I/O: trio socket calls with stream-style errors.

`trio.SocketStream.send_all` / `receive_some` add a conflict detector, a
generator-based context manager and memoryview bookkeeping to every call; on
the request path (four socket calls per proxied request) that was a measurable
share of the CPU. Each connection has at most one reader and one writer task
at a time, so these thin wrappers over the same trio socket are enough; errors
are translated as SocketStream does (OSError -> BrokenResourceError).
"""

from __future__ import annotations

import trio


async def send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    """Write all of `data` (waiting while the socket buffer is full)."""
    try:
        sent = await sock.send(data)
        if sent < len(data):  # a partial write: the peer reads slower than we write
            view = memoryview(data)
            while sent < len(view):
                sent += await sock.send(view[sent:])
    except OSError as exc:
        raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc


async def receive(sock: trio.socket.SocketType, max_bytes: int) -> bytes:
    """Read up to `max_bytes`; b"" at EOF."""
    try:
        return await sock.recv(max_bytes)
    except OSError as exc:
        raise trio.BrokenResourceError(f"socket connection broken: {exc}") from exc
