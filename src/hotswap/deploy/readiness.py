"""Readiness: when is a freshly started container ready to take traffic?

Strategies (deploy.readiness_mode):
    auto           Docker health status if the container has a healthcheck, else delay
    docker-health  a healthcheck is required; wait for Docker to report healthy
    delay          running for readiness_delay without exiting: an exit at any moment
                   (even one the restart policy would undo) fails at once, and so does
                   a container not running at the end of the delay; "0s": ready as soon
                   as Docker reports it running
    http           GET route.health_path on the container answers 2xx

Every strategy waits on the container's Docker events (subscribed before the
container was started, so none is missed); only the http probe of the app ticks,
since it asks another process. Whatever the mode, a container that exits or that
Docker reports unhealthy fails the wait at once, with its exit code or its last
health output and the last lines of its log.

The caller owns the deadline (health_timeout) with a cancel scope and reads
`ReadinessState.describe()` to say what was last seen when it expires.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import h11
import trio

from hotswap.config import Address, ReadinessMode
from hotswap.deploy.unwrap import first_error
from hotswap.errors import HotswapError, ReadinessError
from hotswap.runtime.base import (
    ContainerEvent,
    ContainerInfo,
    ContainerRuntime,
    EventKind,
    EventReceiver,
    Health,
)

log = logging.getLogger(__name__)

PROBE_INTERVAL = 0.25  # http mode: between two probes
PROBE_TIMEOUT = 2.0  # http mode: one probe, connect to end of response
LOG_LINES = 20  # lines of the container's log quoted in a failure
_PROBE_RECEIVE = 16 * 1024


class Strategy(enum.StrEnum):
    DOCKER_HEALTH = "docker-health"
    DELAY = "delay"
    HTTP = "http"


def choose_strategy(mode: ReadinessMode, has_healthcheck: bool) -> Strategy:
    """auto means docker-health when there is a healthcheck, else delay."""
    if mode is ReadinessMode.AUTO:
        return Strategy.DOCKER_HEALTH if has_healthcheck else Strategy.DELAY
    return Strategy(mode.value)


@dataclass
class ReadinessState:
    """What was last seen of the new container (for progress and the timeout message)."""

    strategy: Strategy
    health: Health = Health.NONE
    running: bool = False
    last_probe: str = ""  # http mode: the last probe's outcome
    ready_event_time: float | None = None  # unix time of the event that made it ready

    def describe(self) -> str:
        if self.strategy is Strategy.HTTP:
            return f"last probe: {self.last_probe or 'none yet'}"
        if self.strategy is Strategy.DOCKER_HEALTH:
            return f"last health status: {self.health.value}"
        return "running" if self.running else "not running"


# What the deployer passes to report progress: (phase name, message, data).
Report = Callable[..., None]


@dataclass(frozen=True)
class Probe:
    """An http readiness probe target."""

    address: Address
    path: str
    host: str


async def wait_ready(
    runtime: ContainerRuntime,
    container: ContainerInfo,
    events: EventReceiver[ContainerEvent],
    state: ReadinessState,
    *,
    readiness_delay: float,
    probe: Probe | None,
    report: Report,
) -> None:
    """Return once `container` is ready by `state.strategy`; raise ReadinessError if it
    exits or turns unhealthy. No deadline of its own: the caller's cancel scope is it."""
    state.running = container.running
    state.health = container.health
    if not container.running and container.exit_code is not None:
        raise await failure(runtime, container.id, f"exited with code {container.exit_code}")
    if state.strategy is Strategy.DOCKER_HEALTH:
        if container.health is Health.NONE:
            raise ReadinessError(
                f"container {container.name}: no healthcheck detected (readiness_mode "
                '"docker-health" needs a HEALTHCHECK in the image; use "auto" or "delay")'
            )
        await _wait_healthy(runtime, container, events, state, report)
    elif state.strategy is Strategy.DELAY:
        await _wait_delay(runtime, container, events, state, readiness_delay, report)
    else:
        assert probe is not None
        await _wait_http(runtime, container, events, state, probe, report)


async def _wait_healthy(
    runtime: ContainerRuntime,
    container: ContainerInfo,
    events: EventReceiver[ContainerEvent],
    state: ReadinessState,
    report: Report,
) -> None:
    if container.health is Health.HEALTHY:
        state.ready_event_time = time.time()
        return
    if container.health is Health.UNHEALTHY:
        raise await failure(runtime, container.id, "Docker reports it unhealthy")
    report("health", f"health status: {container.health.value}", health=container.health.value)
    while True:
        event = await events.receive()
        await _check_fatal(runtime, event, state)
        if event.kind is EventKind.HEALTH and event.health is not None:
            report("health", f"health status: {event.health.value}", health=event.health.value)
            if event.health is Health.HEALTHY:
                state.ready_event_time = event.time
                return


async def _wait_delay(
    runtime: ContainerRuntime,
    container: ContainerInfo,
    events: EventReceiver[ContainerEvent],
    state: ReadinessState,
    delay: float,
    report: Report,
) -> None:
    report("waiting", f"waiting {delay:g}s (readiness_delay)", delay=delay)
    with trio.move_on_after(delay):
        while True:
            await _check_fatal(runtime, await events.receive(), state)
    info = await runtime.inspect(container.id)
    state.running = info.serving
    if not state.running:
        # Only reachable if it stopped without an exit (paused) or an exit is still on its
        # way: either way it is not ready, and waiting for it would only hide a crash loop.
        raise await failure(runtime, container.id, f"not running after the delay ({info.status})")
    state.ready_event_time = time.time()


async def _wait_http(
    runtime: ContainerRuntime,
    container: ContainerInfo,
    events: EventReceiver[ContainerEvent],
    state: ReadinessState,
    probe: Probe,
    report: Report,
) -> None:
    report(
        "waiting",
        f"probing http://{probe.address}{probe.path} (Host: {probe.host})",
        path=probe.path,
        host=probe.host,
    )

    async def watch_events() -> None:
        while True:
            await _check_fatal(runtime, await events.receive(), state)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_events)
            while True:
                with trio.move_on_after(PROBE_TIMEOUT):
                    state.last_probe = "timed out"
                    state.last_probe = await probe_once(probe)
                if state.last_probe.startswith("2"):
                    state.ready_event_time = time.time()
                    nursery.cancel_scope.cancel()
                    return
                await trio.sleep(PROBE_INTERVAL)
    except BaseExceptionGroup as group:
        raise first_error(group) from None


async def probe_once(probe: Probe) -> str:
    """One GET; returns "<status> <reason>" or a description of what went wrong."""
    try:
        stream = await trio.open_tcp_stream(probe.address.host, probe.address.port)
    except OSError as exc:
        return f"connect failed: {exc.strerror or exc}"
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="GET",
            target=probe.path,
            headers=[("Host", probe.host), ("User-Agent", "hotswap"), ("Connection", "close")],
        )
        try:
            await stream.send_all(conn.send(request) + (conn.send(h11.EndOfMessage()) or b""))
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(_PROBE_RECEIVE))
                elif isinstance(event, h11.Response):
                    return f"{event.status_code} {event.reason.decode(errors='replace')}".strip()
                elif isinstance(event, h11.ConnectionClosed):
                    return "connection closed before a response"
        except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
            return f"error: {exc}"


async def _check_fatal(
    runtime: ContainerRuntime, event: ContainerEvent, state: ReadinessState
) -> None:
    """Raise ReadinessError at once for a die or an unhealthy status; track the state."""
    if event.kind is EventKind.START:
        state.running = True
    elif event.kind in (EventKind.DIE, EventKind.DESTROY):
        state.running = False
        code = "unknown" if event.exit_code is None else str(event.exit_code)
        raise await failure(runtime, event.container_id, f"exited with code {code}")
    elif event.kind is EventKind.HEALTH and event.health is not None:
        state.health = event.health
        if event.health is Health.UNHEALTHY:
            raise await failure(runtime, event.container_id, "Docker reports it unhealthy")


async def failure(runtime: ContainerRuntime, container_id: str, what: str) -> ReadinessError:
    """A ReadinessError saying `what`, with the last health output and log lines if any."""
    message = f"container {container_id[:12]} {what}"
    health = ""
    try:
        info = await runtime.inspect(container_id)
        message = f"container {info.name} {what}"
        health = info.health_log.strip()
    except HotswapError as exc:
        log.debug("inspect after failure failed container=%s error=%s", container_id[:12], exc)
    try:
        tail = (await runtime.logs_tail(container_id, LOG_LINES)).strip()
    except HotswapError as exc:
        tail = ""
        log.debug("logs after failure failed container=%s error=%s", container_id[:12], exc)
    if health:
        message += f"; last health check output: {health}"
    if tail:
        message += f"\nlast log lines:\n{tail}"
    return ReadinessError(message)
