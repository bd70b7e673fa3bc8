"""Drain: let the old backend finish what it has in flight after the switch.

    auto / inflight  wait until nothing is in flight on the old backend (InFlight's
                     idle Event; never polled), at most drain_timeout; on timeout log a
                     warning naming the old container and the timeout, then go on
    delay            wait drain_delay ("0s": none)

WebSockets (tunnels) on the old backend follow websocket_drain:
    close  right after the switch each gets a close frame 1012 (service restart) at a
           frame boundary, so its client reconnects to the new version at once
    wait   they stay until they close or drain_timeout, then are closed the same way

Requests and tunnels are counted and reported separately, each time they change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import trio

from hotswap.config import DeployConfig, DrainMode, WebSocketDrain
from hotswap.proxy.routes import Backend

log = logging.getLogger(__name__)

# After closing tunnels with 1012, how long they may take to finish their close handshake
# before the container is stopped anyway (the tunnel's own grace is 2 s).
TUNNEL_CLOSE_WAIT = 3.0

Report = Callable[..., None]


@dataclass
class DrainResult:
    idle_at: float | None = None  # unix time the last in-flight exchange ended (None: never)
    timed_out: bool = False
    requests_left: int = 0
    tunnels_left: int = 0
    tunnels_closed: int = 0
    duration: float = 0.0  # seconds from the start of the drain to its end


async def drain(
    backend: Backend, settings: DeployConfig, report: Report, *, container: str
) -> DrainResult:
    """Drain `backend` (already switched away from) per `settings`; see the module doc."""
    result = DrainResult()
    started = time.monotonic()
    if settings.websocket_drain is WebSocketDrain.CLOSE:
        result.tunnels_closed = backend.inflight.close_tunnels()
    inflight = backend.inflight
    report(
        "draining",
        f"{inflight.requests} requests, {inflight.tunnels} websockets in flight",
        in_flight=inflight.requests,
        tunnels=inflight.tunnels,
        mode=settings.drain_mode.value,
    )
    if settings.drain_mode is DrainMode.DELAY:
        await _drain_delay(backend, settings, report, result)
    else:
        with trio.move_on_after(settings.drain_timeout):
            await _watch_until_idle(backend, report)
        if not inflight.is_idle():
            result.timed_out = True
            log.warning(
                "drain timed out container=%s timeout=%gs requests=%d tunnels=%d",
                container,
                settings.drain_timeout,
                inflight.requests,
                inflight.tunnels,
            )
            await _close_remaining_tunnels(backend, result)
    if inflight.is_idle() and result.idle_at is None:
        result.idle_at = time.time()
    result.requests_left = inflight.requests
    result.tunnels_left = inflight.tunnels
    result.duration = time.monotonic() - started
    return result


async def _watch_until_idle(backend: Backend, report: Report) -> None:
    """Report each change of the counts until nothing is in flight (event-driven)."""
    inflight = backend.inflight
    while not inflight.is_idle():
        await inflight.wait_change()
        report(
            "draining",
            f"{inflight.requests} requests, {inflight.tunnels} websockets in flight",
            in_flight=inflight.requests,
            tunnels=inflight.tunnels,
        )


async def _drain_delay(
    backend: Backend, settings: DeployConfig, report: Report, result: DrainResult
) -> None:
    started = trio.current_time()
    if settings.drain_delay > 0:
        await trio.sleep(settings.drain_delay)
    inflight = backend.inflight
    if settings.websocket_drain is WebSocketDrain.WAIT and inflight.tunnels:
        remaining = settings.drain_timeout - (trio.current_time() - started)
        with trio.move_on_after(max(remaining, 0.0)):
            while inflight.tunnels:
                await inflight.wait_change()
                report("draining", f"{inflight.tunnels} websockets open", tunnels=inflight.tunnels)
        if inflight.tunnels:
            log.warning(
                "drain timed out waiting for websockets container=%s timeout=%gs tunnels=%d",
                backend.name,
                settings.drain_timeout,
                inflight.tunnels,
            )
            result.timed_out = True
            await _close_remaining_tunnels(backend, result)
    if inflight.is_idle():
        result.idle_at = time.time()


async def _close_remaining_tunnels(backend: Backend, result: DrainResult) -> None:
    """websocket_drain=wait past its timeout: close them now, give them a moment to go."""
    if not backend.inflight.tunnels:
        return
    result.tunnels_closed += backend.inflight.close_tunnels()
    inflight = backend.inflight
    with trio.move_on_after(TUNNEL_CLOSE_WAIT):
        while inflight.tunnels:
            await inflight.wait_change()
