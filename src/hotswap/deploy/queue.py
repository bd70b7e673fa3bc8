"""First come, first served: the deploys of one domain run one at a time, in request order.

A trio.Lock would serialise them too, but in the order the tasks happen to reach
it; the order of `start_deploy` calls is what users expect (the last request wins).
A ticket is taken synchronously when the deploy is requested and waits for every
earlier ticket of the domain, so a cancelled queued deploy never lets a later one
overtake a deploy that is still running.
"""

from __future__ import annotations

import trio


class Ticket:
    def __init__(self, queue: DomainQueue, earlier: list[trio.Event]) -> None:
        self._queue = queue
        self._earlier = earlier
        self.done = trio.Event()

    @property
    def must_wait(self) -> bool:
        return any(not event.is_set() for event in self._earlier)

    async def wait_turn(self) -> None:
        for event in self._earlier:
            await event.wait()

    def release(self) -> None:
        """This deploy is over (done, failed or cancelled); idempotent."""
        if not self.done.is_set():
            self.done.set()
            self._queue.forget(self.done)


class DomainQueue:
    def __init__(self) -> None:
        self._open: list[trio.Event] = []

    def __len__(self) -> int:
        return len(self._open)

    def take(self) -> Ticket:
        ticket = Ticket(self, list(self._open))
        self._open.append(ticket.done)
        return ticket

    def forget(self, event: trio.Event) -> None:
        self._open.remove(event)
