"""Start-up with managed routes, in-process, on a fake runtime (no Docker): the adoption and
the restart watch together."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio
import trio.testing

from container_fakes import running_container
from hotswap.config import Address, Config, DeployConfig, Route, ServerConfig
from hotswap.proxy.routes import BackendState
from hotswap.runtime.base import ContainerEvent, ContainerInfo, EventKind
from hotswap.runtime.events import EventHub, Subscription

CID = "c0ffee" * 4
RUNNING = running_container(id=CID, restart_policy="no")


class ExitsWhileListed:
    """A runtime whose one app container exits while start-up lists the containers (after
    its inspect, before the adoption routes to it); restart = "no": it stays down."""

    def __init__(self) -> None:
        self.hub = EventHub()
        self.info = RUNNING

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    @contextmanager
    def subscribe_containers(self) -> Iterator[Subscription[ContainerEvent]]:
        with self.hub.subscribe_containers() as events:
            yield events

    async def list_managed(self) -> list[ContainerInfo]:
        listed = self.info
        self.info = dataclasses.replace(RUNNING, running=False, status="exited", exit_code=1)
        self.hub.deliver(ContainerEvent(EventKind.DIE, CID, 1.0, exit_code=1))
        await trio.testing.wait_all_tasks_blocked()  # whoever listens has seen the exit
        return [listed]

    async def inspect(self, container_id: str) -> ContainerInfo:
        return self.info


async def test_an_app_container_that_exits_during_the_adoption_is_marked_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = ExitsWhileListed()
    monkeypatch.setattr("hotswap.runtime.docker.DockerRuntime", lambda docker: runtime)
    from hotswap.app import App

    server = ServerConfig(listen=Address("127.0.0.1", 0), admin_listen=Address("127.0.0.1", 0))
    config = Config(
        server=server,
        deploy=DeployConfig(watch_images=False),
        routes={"app.test": Route("app.test", "app:1")},
    )
    app = App(config)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(app.run)
            await trio.testing.wait_all_tasks_blocked()
            backend = app.routes.get("app.test")
            assert backend is not None and backend.container_id == CID
            assert backend.state is BackendState.DOWN
            assert "exited with code 1" in backend.down_reason
            nursery.cancel_scope.cancel()
