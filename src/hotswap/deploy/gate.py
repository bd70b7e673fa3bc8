"""When deploys may run, around a takeover of hotswap itself.

    held      this process is handing over to a new one: no deploy starts here (each
              request is refused with the reason); the ones already running finish
    deferred  the process this one took over still drains its requests: deploys are
              accepted and wait ("queued") until it is gone, because stopping an old
              container now would cut requests that process still has on it
    open      otherwise

The gate also counts the deploys (and route retirements) not finished yet, so a
takeover can wait until none runs: an Event per change, never polled.
"""

from __future__ import annotations

import trio

from hotswap.errors import DeployError


class DeployGate:
    def __init__(self) -> None:
        self._held: str | None = None
        self._deferred: str | None = None
        self._undeferred = trio.Event()
        self._undeferred.set()
        self._busy = 0
        self._changed = trio.Event()

    # -- held: refuse new deploys ----------------------------------------------------

    @property
    def held(self) -> str | None:
        """The reason deploys are refused now, or None."""
        return self._held

    def hold(self, reason: str) -> None:
        self._held = reason

    def release(self) -> None:
        self._held = None

    def check(self) -> None:
        """Raise DeployError when deploys are held."""
        if self._held is not None:
            raise DeployError(self._held)

    # -- deferred: accept deploys, run them later -----------------------------------------

    @property
    def deferred(self) -> str | None:
        """Why deploys wait now, or None."""
        return self._deferred

    def defer(self, reason: str) -> None:
        if self._deferred is None:
            self._undeferred = trio.Event()
        self._deferred = reason

    def undefer(self) -> None:
        self._deferred = None
        self._undeferred.set()
        self._signal()

    async def wait_undeferred(self) -> None:
        await self._undeferred.wait()

    # -- what runs ---------------------------------------------------------------------

    @property
    def busy(self) -> int:
        """Deploys and retirements started and not finished (running or queued)."""
        return self._busy

    def enter(self) -> None:
        self._busy += 1
        self._signal()

    def leave(self) -> None:
        self._busy -= 1
        self._signal()

    async def wait_change(self) -> None:
        """Return at the next enter(), leave() or undefer()."""
        await self._changed.wait()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
