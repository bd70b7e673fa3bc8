"""The restart watch: a route follows its container across Docker's restarts (no Docker)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from container_fakes import running_container
from hotswap.config import Address
from hotswap.deploy.restarts import RestartWatch, down_reason
from hotswap.proxy.routes import Backend, BackendState, RouteTable, Unavailable
from hotswap.runtime.base import ContainerEvent, ContainerInfo, EventKind

CID = "c0ffee" * 4
INFO = running_container(
    id=CID,
    name="hotswap-app-1",
    address=Address("127.0.0.1", 32768),
    restart_policy="unless-stopped",
)


class FakeRuntime:
    def __init__(self, info: ContainerInfo = INFO) -> None:
        self.info = info
        self.inspected = 0

    async def inspect(self, container_id: str) -> ContainerInfo:
        self.inspected += 1
        return self.info

    @contextmanager
    def subscribe_containers(self) -> Iterator[trio.MemoryReceiveChannel[ContainerEvent]]:
        raise NotImplementedError  # the tests feed handle() directly


def routed() -> tuple[RouteTable, Backend, FakeRuntime, list[str], RestartWatch]:
    routes = RouteTable()
    backend = Backend(INFO.address or Address("127.0.0.1", 1), name=INFO.name, container_id=CID)
    routes.switch("app.test", backend)
    runtime = FakeRuntime()
    restarted: list[str] = []
    watch = RestartWatch(
        runtime,  # type: ignore[arg-type]
        routes,
        known=lambda container_id: INFO,
        on_restart=restarted.append,
    )
    return routes, backend, runtime, restarted, watch


def die(code: int) -> ContainerEvent:
    return ContainerEvent(EventKind.DIE, CID, 1.0, exit_code=code)


START = ContainerEvent(EventKind.START, CID, 2.0)


async def test_an_exit_marks_the_route_down_and_the_restart_brings_it_back() -> None:
    routes, backend, _runtime, restarted, watch = routed()
    await watch.handle(die(137))
    found = routes.acquire("app.test", b"/")
    assert isinstance(found, Unavailable)
    assert "exited with code 137; Docker is restarting it" in backend.down_reason
    await watch.handle(START)
    assert routes.acquire("app.test", b"/") is backend and backend.state is BackendState.UP
    assert restarted == ["app.test"]


async def test_a_new_published_port_after_a_restart_gets_a_new_backend() -> None:
    routes, backend, runtime, restarted, watch = routed()
    backend.stats.requests = 7
    await watch.handle(die(1))
    runtime.info = dataclasses.replace(INFO, address=Address("127.0.0.1", 32769))
    await watch.handle(START)
    fresh = routes.get("app.test")
    assert fresh is not None and fresh is not backend
    assert fresh.address == Address("127.0.0.1", 32769)
    assert fresh.state is BackendState.UP and fresh.stats.requests == 7
    assert backend.pool.closed  # the old address's pool is closed
    assert restarted == ["app.test"]


async def test_events_of_a_container_the_route_left_change_nothing() -> None:
    routes, _old, runtime, restarted, watch = routed()
    new = Backend(Address("127.0.0.1", 40000), name="hotswap-app-2", container_id="new")
    routes.switch("app.test", new)  # a deploy switched; then hotswap stops the old one
    await watch.handle(die(143))
    await watch.handle(START)
    assert routes.get("app.test") is new and new.state is BackendState.UP
    assert runtime.inspected == 0 and restarted == []


async def test_a_start_seen_while_not_running_again_keeps_the_route_down() -> None:
    _routes, backend, runtime, restarted, watch = routed()
    await watch.handle(die(1))
    runtime.info = dataclasses.replace(INFO, running=True, status="restarting")
    await watch.handle(START)
    assert backend.state is BackendState.DOWN and restarted == []


async def test_resync_marks_down_a_container_that_exited_while_unwatched() -> None:
    _routes, backend, runtime, _restarted, watch = routed()
    runtime.info = dataclasses.replace(INFO, running=False, status="exited", exit_code=2)
    await watch.resync()
    assert backend.state is BackendState.DOWN
    assert "exited with code 2" in backend.down_reason


def test_the_reason_says_whether_docker_restarts_it() -> None:
    def reason(policy: str, code: int) -> str:
        return down_reason(dataclasses.replace(INFO, restart_policy=policy), "c", code)

    assert reason("always", 0).endswith("Docker is restarting it (restart policy always)")
    assert reason("on-failure", 1).endswith("(restart policy on-failure)")
    assert reason("on-failure", 0).endswith(
        'it stays down until the next deploy (restart policy "on-failure")'
    )
    assert reason("no", 137).endswith('it stays down until the next deploy (restart policy "no")')
