"""Noticing that a client went away while its request waits on a slow backend.

A client that closes its connection should cancel its exchange at once: the
backend's in-flight count (and a deploy's drain) must not wait for an answer
nobody will read. Watching every client socket during every exchange would cost
a task per request; instead one coarse timer per server looks, every INTERVAL,
at the connections waiting on their backend, and starts a watcher task only for
those that were already waiting at the previous tick (so after 1 to 2 INTERVALs).
A fast request costs a dict insert and delete. The watcher waits until the
client socket is readable: end of file (or an error) marks the client gone and
cancels its connection; data (a pipelined request) ends the watch.
"""

from __future__ import annotations

from typing import Final, Protocol

import trio

from hotswap.proxy.sockio import Transport, peek_closed

INTERVAL: Final = 0.05


class Watched(Protocol):
    """A client connection the watch can look at."""

    transport: Transport
    watcher: trio.CancelScope | None  # the running watch, if any
    wait_count: int  # bumped at each wait: tells a new wait from a long one

    def client_closed(self) -> None:
        """The client closed its connection: end the exchange now."""


class AbortWatch:
    """The server's one timer for client watches; `run` it in the server's nursery."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._waiting: dict[Watched, int] = {}
        self._wake: trio.Event | None = None
        self._nursery: trio.Nursery | None = None

    def begin(self, conn: Watched) -> None:
        """`conn` starts waiting on its backend."""
        conn.wait_count += 1
        self._waiting[conn] = conn.wait_count
        if self._wake is not None:
            self._wake.set()
            self._wake = None

    def end(self, conn: Watched) -> None:
        """`conn` stopped waiting: its watch (if any) ends now, before it reads again."""
        self._waiting.pop(conn, None)
        scope = conn.watcher
        if scope is not None:
            conn.watcher = None
            scope.cancel()  # synchronous: the socket is free for the connection's reads

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as watchers:
            task_status.started()
            previous: dict[Watched, int] = {}
            while True:
                if not self._waiting:
                    self._wake = trio.Event()
                    await self._wake.wait()
                    previous = {}
                await trio.sleep(self.interval)
                waiting = self._waiting
                for conn, count in waiting.items():
                    if previous.get(conn) == count and conn.watcher is None:
                        scope = trio.CancelScope()
                        conn.watcher = scope  # before the task runs: end() can cancel it
                        watchers.start_soon(_watch, conn, scope)
                previous = dict(waiting)


async def _watch(conn: Watched, scope: trio.CancelScope) -> None:
    sock = conn.transport.socket
    # The wait may have ended (and the socket closed) before this task first ran.
    if scope.cancel_called or sock.fileno() < 0:
        return
    with scope:
        try:
            await trio.lowlevel.wait_readable(sock)
        except (trio.ClosedResourceError, trio.BusyResourceError, OSError):
            return
        if peek_closed(sock) and conn.watcher is scope:
            conn.watcher = None
            conn.client_closed()
