"""The proxy's connection deadlines: a coarse timer wheel, one task per server.

Every client connection has one deadline at a time (the phase it is in decides
it: header_timeout, idle_timeout, upstream_response_timeout ...), and it moves
two or three times per request. As a trio deadline each move costs a heap push
through a context manager, measured at 8 us on this project's CI machine kind,
more than a scheduler round trip; here it costs two set operations. The wheel
keeps connections in slots of TICK seconds; its task wakes once per TICK while
any deadline is set and cancels the scope of each connection whose slot has
passed. A deadline fires up to one TICK late, never early. nginx's timers and
the trio maintainers' HTTP benchmark (trio#1629) make the same trade.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Final, Protocol

import trio

TICK: Final = 0.05  # seconds


class Timed(Protocol):
    """A connection with a deadline on the wheel."""

    timer_slot: int  # the wheel's bookkeeping: 0 = no deadline

    def expire(self) -> None:
        """The deadline passed: cancel what the connection is doing."""


now: Final = time.monotonic  # the wheel's clock (an alias: it is called several times a request)


def due_slots(slots: dict[int, set[Timed]], done: int, current: int) -> Iterable[int]:
    """The slots to fire, in order: those after `done` up to `current`. After a quiet
    period (more elapsed ticks than there are slots) only the slots that exist are
    looked at, not every tick of the gap."""
    if current - done > len(slots):
        return sorted(index for index in slots if done < index <= current)
    return range(done + 1, current + 1)


class TimerWheel:
    """Deadlines of many connections; `run` it in the server's nursery."""

    def __init__(self, tick: float = TICK) -> None:
        self.tick = tick
        self._slots: dict[int, set[Timed]] = {}
        self._done = math.floor(time.monotonic() / tick)  # slots up to this one have fired
        self._wake: trio.Event | None = None

    def set(self, conn: Timed, deadline: float) -> None:
        """Expire `conn` at `deadline` (time.monotonic() seconds; math.inf: never)."""
        if deadline == math.inf:
            new = 0
        else:
            new = max(math.ceil(deadline / self.tick), self._done + 1)
        old = conn.timer_slot
        if new == old:
            return
        slots = self._slots
        if old:
            members = slots.get(old)
            if members is not None:
                members.discard(conn)
                if not members:
                    del slots[old]
        if new:
            members = slots.get(new)
            if members is None:
                slots[new] = {conn}
            else:
                members.add(conn)
            if self._wake is not None:
                self._wake.set()
                self._wake = None
        conn.timer_slot = new

    def sooner(self, conn: Timed, deadline: float) -> None:
        """set(), unless `conn` already expires by then."""
        slot = max(math.ceil(deadline / self.tick), self._done + 1)
        if not conn.timer_slot or slot < conn.timer_slot:
            self.set(conn, deadline)

    def clear(self, conn: Timed) -> None:
        """`conn` has no deadline any more (it closed)."""
        self.set(conn, math.inf)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        slots = self._slots
        while True:
            if not slots:
                self._wake = trio.Event()
                await self._wake.wait()
            await trio.sleep(self.tick)
            current = math.floor(time.monotonic() / self.tick)
            for index in due_slots(slots, self._done, current):
                due = slots.pop(index, None)
                if due is not None:
                    for conn in due:
                        conn.timer_slot = 0
                        conn.expire()
            self._done = max(self._done, current)
