"""Pause and maintenance: what happens to a route's requests before they are forwarded.

pause        New requests of the route wait (each at most the pause's timeout, then
             503 + Retry-After) until `resume`; they are not counted in flight while
             they wait, so a deploy during a pause drains and finishes. On resume
             they go on in the order they arrived: one waiter is released at a time,
             and it releases the next only once it has resolved its route and been
             counted (a synchronous step), whatever order trio runs woken tasks in.
             Waiting costs a task already there (the connection's) and an Event: no
             polling, and no more waiters than max_connections.
maintenance  The route answers 503 + Retry-After with a page (the message; HTML, or
             JSON for a client that accepts only JSON) until turned off.

A route with neither costs the proxy one truth test (`RouteControls.active`).
The state is plain data (`snapshot` / `restore`): the app keeps it on disk so it
survives a restart or a takeover.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import trio

DEFAULT_PAUSE_TIMEOUT: Final = 30.0
DEFAULT_RETRY_AFTER: Final = 300.0  # seconds, for maintenance


@dataclass(frozen=True)
class Maintenance:
    message: str = ""
    retry_after: float = DEFAULT_RETRY_AFTER  # seconds


class Control:
    """One route's pause and maintenance state, and its waiting requests."""

    __slots__ = ("_waiters", "maintenance", "pause_timeout", "paused")

    def __init__(self) -> None:
        self.paused = False
        self.pause_timeout = DEFAULT_PAUSE_TIMEOUT
        self.maintenance: Maintenance | None = None
        self._waiters: deque[trio.Event] = deque()  # in arrival order

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def idle(self) -> bool:
        """Nothing set and nobody waiting: the control can be forgotten."""
        return not self.paused and self.maintenance is None and not self._waiters

    async def hold(self) -> bool:
        """Wait while the route is paused; True once released (at once if not paused),
        False when pause_timeout passed first. The caller resolves and counts its route
        right after a True, with no checkpoint between (the order of release depends
        on it)."""
        if not self.paused and not self._waiters:
            return True
        # Paused, or resumed with earlier requests still to go: wait for our turn.
        event = trio.Event()
        self._waiters.append(event)
        released = False
        try:
            with trio.move_on_after(self.pause_timeout):
                await event.wait()
                released = True
        finally:
            if self._waiters and self._waiters[0] is event:
                self._waiters.popleft()
                if event.is_set():
                    self._release_head()  # pass the turn on (also if we gave up just now)
            else:
                try:
                    self._waiters.remove(event)
                except ValueError:
                    pass
        return released

    def resume(self) -> None:
        self.paused = False
        self._release_head()

    def _release_head(self) -> None:
        if self._waiters and not self.paused:
            self._waiters[0].set()


class RouteControls:
    """route key -> Control, for the routes paused or in maintenance."""

    def __init__(self) -> None:
        self._controls: dict[str, Control] = {}
        self.active = False  # any route paused, in maintenance or with waiters

    def get(self, route: str) -> Control | None:
        return self._controls.get(route)

    def pause(self, route: str, timeout: float = DEFAULT_PAUSE_TIMEOUT) -> None:
        control = self._control(route)
        control.paused = True
        control.pause_timeout = timeout

    def resume(self, route: str) -> bool:
        """Release the route's waiting requests; False if it was not paused."""
        control = self._controls.get(route)
        if control is None or not control.paused:
            return False
        control.resume()
        self.forget_idle()
        return True

    def set_maintenance(self, route: str, maintenance: Maintenance | None) -> None:
        """Turn maintenance on (or off with None)."""
        if maintenance is None:
            control = self._controls.get(route)
            if control is not None:
                control.maintenance = None
                self.forget_idle()
            return
        self._control(route).maintenance = maintenance

    def _control(self, route: str) -> Control:
        control = self._controls.get(route)
        if control is None:
            control = self._controls[route] = Control()
        self.active = True
        return control

    def forget_idle(self) -> None:
        """Drop controls with nothing set and nobody waiting (after waiters left); a
        control with waiters stays until they are gone (they pass the turn on)."""
        for route in [r for r, c in self._controls.items() if c.idle]:
            del self._controls[route]
        self.active = bool(self._controls)

    # -- state for the disk, the status and the admin API ------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """{route: {"paused": {"timeout": s} | None, "maintenance": {...} | None,
        "waiting": n}} for every route with something set."""
        state: dict[str, dict[str, Any]] = {}
        for route, control in sorted(self._controls.items()):
            if not control.paused and control.maintenance is None:
                continue
            maintenance = control.maintenance
            state[route] = {
                "paused": {"timeout": control.pause_timeout} if control.paused else None,
                "maintenance": (
                    {"message": maintenance.message, "retry_after": maintenance.retry_after}
                    if maintenance is not None
                    else None
                ),
                "waiting": control.waiting,
            }
        return state

    def restore(self, state: dict[str, Any]) -> list[str]:
        """Set what `snapshot` saved; returns one line per route restored. Bad entries are
        skipped (the file is ours, but a hand edit must not stop hotswap from starting)."""
        lines = []
        for route, entry in state.items():
            if not isinstance(route, str) or not isinstance(entry, dict):
                continue
            paused = entry.get("paused")
            if isinstance(paused, dict) and _number(paused.get("timeout")):
                self.pause(route, float(paused["timeout"]))
                lines.append(f"{route}: paused (timeout {paused['timeout']:g}s)")
            maintenance = entry.get("maintenance")
            if isinstance(maintenance, dict) and _number(maintenance.get("retry_after")):
                message = maintenance.get("message")
                self.set_maintenance(
                    route,
                    Maintenance(
                        message if isinstance(message, str) else "",
                        float(maintenance["retry_after"]),
                    ),
                )
                lines.append(f"{route}: in maintenance")
        return lines


def _number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )
