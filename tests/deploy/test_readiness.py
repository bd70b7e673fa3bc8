"""Readiness strategies against an in-memory runtime: event-driven, fail at once."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import trio
import trio.testing

from container_fakes import running_container
from hotswap.config import Address, ReadinessMode
from hotswap.deploy.readiness import (
    ReadinessState,
    Strategy,
    choose_strategy,
    wait_ready,
)
from hotswap.errors import EventStreamLost, ReadinessError
from hotswap.runtime.base import ContainerEvent, ContainerInfo, EventKind, Health

INFO = running_container(
    name="hotswap-a-com-1",
    domain="a.com",
    image="app:2",
    image_id="sha256:2",
    health=Health.STARTING,
)


class FakeRuntime:
    def __init__(self) -> None:
        self.info = dataclasses.replace(INFO, health_log="curl: connection refused")
        self.send, self.receive_channel = trio.open_memory_channel[ContainerEvent | None](10)
        self.inspected = 0

    async def inspect(self, container_id: str) -> ContainerInfo:
        self.inspected += 1
        return self.info

    async def logs_tail(self, container_id: str, lines: int) -> str:
        return "booting\nFATAL: no database\n"

    async def receive(self) -> ContainerEvent:
        event = await self.receive_channel.receive()
        if event is None:
            raise EventStreamLost("Docker's events stream was lost")
        return event


def event(kind: EventKind, **kw: Any) -> ContainerEvent:
    return ContainerEvent(kind, INFO.id, 100.0, **kw)


async def run(
    rt: FakeRuntime, strategy: Strategy, info: ContainerInfo = INFO, delay: float = 5.0
) -> ReadinessState:
    state = ReadinessState(strategy)
    await wait_ready(
        rt,  # type: ignore[arg-type]
        info,
        rt,
        state,
        readiness_delay=delay,
        probe=None,
        report=lambda *a, **k: None,
    )
    return state


def test_auto_picks_docker_health_only_with_a_healthcheck() -> None:
    assert choose_strategy(ReadinessMode.AUTO, True) is Strategy.DOCKER_HEALTH
    assert choose_strategy(ReadinessMode.AUTO, False) is Strategy.DELAY
    assert choose_strategy(ReadinessMode.HTTP, True) is Strategy.HTTP


async def test_docker_health_returns_on_the_healthy_event() -> None:
    rt = FakeRuntime()
    rt.send.send_nowait(event(EventKind.HEALTH, health=Health.STARTING))
    rt.send.send_nowait(event(EventKind.HEALTH, health=Health.HEALTHY))
    state = await run(rt, Strategy.DOCKER_HEALTH)
    assert state.health is Health.HEALTHY and state.ready_event_time == 100.0


async def test_docker_health_without_a_healthcheck_fails_at_once() -> None:
    with pytest.raises(ReadinessError, match="no healthcheck detected"):
        await run(
            FakeRuntime(), Strategy.DOCKER_HEALTH, dataclasses.replace(INFO, health=Health.NONE)
        )


@pytest.mark.parametrize("strategy", [Strategy.DOCKER_HEALTH, Strategy.DELAY])
async def test_a_die_fails_at_once_with_the_exit_code_and_the_log(
    strategy: Strategy, autojump_clock: trio.testing.MockClock
) -> None:
    rt = FakeRuntime()
    rt.send.send_nowait(event(EventKind.DIE, exit_code=3))
    with pytest.raises(ReadinessError) as caught:
        await run(rt, strategy)
    assert "exited with code 3" in str(caught.value)
    assert "FATAL: no database" in str(caught.value)
    assert trio.current_time() == 0.0  # not at a timeout


async def test_unhealthy_fails_at_once_with_the_last_health_output() -> None:
    rt = FakeRuntime()
    rt.send.send_nowait(event(EventKind.HEALTH, health=Health.UNHEALTHY))
    with pytest.raises(ReadinessError) as caught:
        await run(rt, Strategy.DOCKER_HEALTH)
    assert "unhealthy" in str(caught.value)
    assert "curl: connection refused" in str(caught.value)


async def test_a_lost_events_stream_fails_the_wait_instead_of_hanging() -> None:
    rt = FakeRuntime()
    rt.send.send_nowait(None)
    with pytest.raises(EventStreamLost):
        await run(rt, Strategy.DOCKER_HEALTH)


async def test_delay_is_ready_when_still_running_after_the_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rt = FakeRuntime()
    state = await run(rt, Strategy.DELAY)
    assert trio.current_time() == pytest.approx(5.0) and state.running


async def test_delay_fails_at_once_when_the_container_is_not_running_after_the_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rt = FakeRuntime()
    rt.info = dataclasses.replace(INFO, running=True, status="restarting")
    with pytest.raises(ReadinessError, match=r"not running after the delay \(restarting\)"):
        await run(rt, Strategy.DELAY)
    assert trio.current_time() == pytest.approx(5.0)


async def test_delay_an_exit_during_the_delay_fails_at_once_whatever_the_restart_policy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rt = FakeRuntime()

    async def crash_later() -> None:
        await trio.sleep(1)
        rt.send.send_nowait(event(EventKind.DIE, exit_code=1))
        rt.send.send_nowait(event(EventKind.START))  # Docker restarting it changes nothing

    async with trio.open_nursery() as nursery:
        nursery.start_soon(crash_later)
        with pytest.raises(ReadinessError, match="exited with code 1"):
            await run(rt, Strategy.DELAY)
    assert trio.current_time() == pytest.approx(1.0)


async def test_delay_zero_is_ready_as_soon_as_docker_reports_it_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rt = FakeRuntime()
    state = await run(rt, Strategy.DELAY, delay=0.0)
    assert trio.current_time() == 0.0 and state.running and rt.inspected == 1


async def test_http_probes_with_the_health_host_until_2xx() -> None:
    from functools import partial

    from hotswap.deploy.readiness import Probe

    hosts: list[str] = []

    async def app(stream: trio.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(4096)
        head = data.decode().lower()
        hosts.append(head.split("host: ", 1)[1].split("\r\n", 1)[0])
        status = b"200 OK" if len(hosts) >= 3 else b"503 Service Unavailable"
        await stream.send_all(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n\r\n")
        await stream.aclose()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            [listener] = await nursery.start(partial(trio.serve_tcp, app, 0, host="127.0.0.1"))
            port = listener.socket.getsockname()[1]
            state = ReadinessState(Strategy.HTTP)
            rt = FakeRuntime()
            await wait_ready(
                rt,  # type: ignore[arg-type]
                INFO,
                rt,
                state,
                readiness_delay=0,
                probe=Probe(Address("127.0.0.1", port), "/up", "a.com"),
                report=lambda *a, **k: None,
            )
            nursery.cancel_scope.cancel()
    assert hosts == ["a.com"] * 3
    assert state.last_probe.startswith("200")
