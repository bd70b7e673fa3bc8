"""Exact in-flight accounting for one backend.

A request counts from the moment its route is resolved until the last byte of
its response is written to the client (or the exchange fails); an upgraded
connection counts as a tunnel until it closes. `wait_idle()` wakes on an Event
the moment the count reaches zero: drains never poll.
"""

from __future__ import annotations

from typing import Protocol

import trio


class Restartable(Protocol):
    """An open tunnel, as the drain sees it."""

    def close_for_restart(self) -> None: ...


class InFlight:
    """Counts requests and tunnels in flight on one backend.

    begin/end are synchronous (no checkpoint), so a caller can resolve a route
    and count the request in the same atomic step of the scheduler.
    """

    __slots__ = ("_changed", "_idle", "_open", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self._open: set[Restartable] = set()  # the tunnels
        self._idle = trio.Event()
        self._idle.set()
        # Created only while someone watches the count (drain progress), so the
        # hot path pays one attribute check, not an Event per request.
        self._changed: trio.Event | None = None

    @property
    def tunnels(self) -> int:
        return len(self._open)

    @property
    def open_tunnels(self) -> tuple[Restartable, ...]:
        return tuple(self._open)

    @property
    def total(self) -> int:
        return self.requests + len(self._open)

    def begin_request(self) -> None:
        if self.requests + len(self._open) == 0:
            self._idle = trio.Event()  # a cleared Event is a new Event
        self.requests += 1
        self._notify()

    def end_request(self) -> None:
        if self.requests <= 0:
            raise RuntimeError("end_request() without begin_request()")
        self.requests -= 1
        self._after_decrement()

    def request_to_tunnel(self, tunnel: Restartable) -> None:
        """An in-flight request became `tunnel` (101 Switching Protocols).

        Moves the count in one step so the backend never looks idle in between.
        """
        if self.requests <= 0:
            raise RuntimeError("request_to_tunnel() without begin_request()")
        self.requests -= 1
        self._open.add(tunnel)
        self._notify()

    def end_tunnel(self, tunnel: Restartable) -> None:
        if tunnel not in self._open:
            raise RuntimeError("end_tunnel() of a tunnel not counted")
        self._open.discard(tunnel)
        self._after_decrement()

    def close_tunnels(self) -> int:
        """Ask every open tunnel to close with 1012 (service restart); returns how many."""
        tunnels = list(self._open)
        for tunnel in tunnels:
            tunnel.close_for_restart()
        return len(tunnels)

    def is_idle(self) -> bool:
        return self.requests + len(self._open) == 0

    async def wait_idle(self) -> None:
        """Return as soon as nothing is in flight (at once if nothing is)."""
        await self._idle.wait()

    async def wait_change(self) -> None:
        """Return at the next change of either count (for progress reports)."""
        if self._changed is None:
            self._changed = trio.Event()
        await self._changed.wait()

    def _after_decrement(self) -> None:
        if self.requests + len(self._open) == 0:
            self._idle.set()
        self._notify()

    def _notify(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()
