"""Drain strategies on a Backend's in-flight counts (no sockets; the clock may jump)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
import trio
import trio.testing

from hotswap.config import Address, DeployConfig, DrainMode, WebSocketDrain
from hotswap.deploy.drain import drain
from hotswap.proxy.routes import Backend

SETTINGS = DeployConfig(drain_timeout=10.0, drain_delay=2.0)


class FakeTunnel:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.closed = 0
        self.closing = trio.Event()
        backend.inflight.begin_request()
        backend.inflight.request_to_tunnel(self)

    def close_for_restart(self) -> None:
        self.closed += 1
        self.closing.set()

    def end(self) -> None:
        self.backend.inflight.end_tunnel(self)


def backend() -> Backend:
    return Backend(Address("127.0.0.1", 1), name="old-container")


class Reports:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, phase: str, message: str = "", **data: Any) -> None:
        self.events.append((phase, data))


async def test_inflight_drain_returns_when_the_last_request_ends_and_reports_the_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    old = backend()
    for _ in range(3):
        old.inflight.begin_request()
    reports = Reports()

    async def finish_requests() -> None:
        for _ in range(3):
            await trio.sleep(1)
            old.inflight.end_request()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(finish_requests)
        result = await drain(old, SETTINGS, reports, container=old.name)
    assert trio.current_time() == pytest.approx(3.0)  # woke exactly at the last end
    assert not result.timed_out and result.idle_at is not None
    assert [d["in_flight"] for _, d in reports.events] == [3, 2, 1, 0]


async def test_inflight_drain_times_out_with_a_warning_naming_the_container(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    old = backend()
    old.inflight.begin_request()
    with caplog.at_level(logging.WARNING, logger="hotswap.deploy.drain"):
        result = await drain(old, SETTINGS, Reports(), container="old-container")
    assert result.timed_out and result.requests_left == 1 and result.idle_at is None
    assert trio.current_time() == pytest.approx(10.0)
    [record] = caplog.records
    assert "container=old-container" in record.getMessage()
    assert "timeout=10s" in record.getMessage()


async def test_delay_drain_waits_the_delay_and_zero_means_none(
    autojump_clock: trio.testing.MockClock,
) -> None:
    settings = dataclasses.replace(SETTINGS, drain_mode=DrainMode.DELAY)
    await drain(backend(), settings, Reports(), container="c")
    assert trio.current_time() == pytest.approx(2.0)
    await drain(backend(), dataclasses.replace(settings, drain_delay=0.0), Reports(), container="c")
    assert trio.current_time() == pytest.approx(2.0)


async def test_websocket_close_mode_closes_every_tunnel_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    old = backend()
    tunnels = [FakeTunnel(old), FakeTunnel(old)]

    async def tunnels_end_after_close() -> None:
        await trio.testing.wait_all_tasks_blocked()
        assert all(t.closed == 1 for t in tunnels)
        for tunnel in tunnels:
            tunnel.end()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tunnels_end_after_close)
        result = await drain(old, SETTINGS, Reports(), container="c")
    assert result.tunnels_closed == 2 and not result.timed_out
    assert trio.current_time() == 0.0


async def test_websocket_wait_mode_closes_them_only_at_the_drain_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    old = backend()
    kept = FakeTunnel(old)
    settings = dataclasses.replace(SETTINGS, websocket_drain=WebSocketDrain.WAIT)

    async def end_when_closed() -> None:
        await kept.closing.wait()
        kept.end()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(end_when_closed)
        result = await drain(old, settings, Reports(), container="c")
    assert kept.closed == 1 and result.timed_out and result.tunnels_closed == 1
    assert 10.0 <= trio.current_time() < 11.0


async def test_a_zero_drain_timeout_stops_waiting_at_once_with_the_usual_warning(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    old = backend()
    old.inflight.begin_request()
    settings = dataclasses.replace(SETTINGS, drain_timeout=0.0)
    with caplog.at_level(logging.WARNING, logger="hotswap.deploy.drain"):
        result = await drain(old, settings, Reports(), container="old-container")
    assert trio.current_time() == 0.0
    assert result.timed_out and result.requests_left == 1 and result.idle_at is None
    assert "drain timed out container=old-container timeout=0s" in caplog.text


async def test_a_zero_drain_timeout_with_nothing_in_flight_is_no_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    settings = dataclasses.replace(SETTINGS, drain_timeout=0.0)
    result = await drain(backend(), settings, Reports(), container="old-container")
    assert not result.timed_out and result.idle_at is not None
