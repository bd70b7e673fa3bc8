"""DeployRun on a fake runtime (no Docker): the same image is skipped only while its
container serves; routing back after a failed stabilisation keeps a down container down."""

from __future__ import annotations

import dataclasses

import pytest

from container_fakes import running_container
from hotswap.config import Address, Config, PullPolicy, Route
from hotswap.deploy.progress import DeployHandle, Outcome
from hotswap.deploy.steps import DeployRun, health_target
from hotswap.errors import ContainerRuntimeError, DeployError
from hotswap.proxy.routes import Backend, BackendState, RouteTable
from hotswap.runtime.base import (
    ContainerEvent,
    ContainerInfo,
    ContainerSpec,
    EventKind,
    ImageInfo,
    Preflight,
)

IMAGE = ImageInfo("app:1", "sha256:1", 8000, has_healthcheck=False)
CURRENT = running_container(id="c1", image_id=IMAGE.id, restart_policy="no")


class Created(Exception):
    """The deploy got as far as creating a container (not skipped)."""


class FakeRuntime:
    async def preflight(self, spec: ContainerSpec) -> list[Preflight]:
        return []

    async def ensure_image(self, ref: str, policy: PullPolicy) -> ImageInfo:
        return IMAGE

    async def create(self, spec: ContainerSpec) -> str:
        raise Created

    async def inspect(self, container_id: str) -> ContainerInfo:
        raise ContainerRuntimeError("gone")

    async def logs_tail(self, container_id: str, lines: int) -> str:
        return ""

    async def remove(self, container_id: str) -> None:
        pass


def run_with(routes: RouteTable) -> DeployRun:
    route = Route("app.test", "app:1")
    return DeployRun(
        runtime=FakeRuntime(),  # type: ignore[arg-type]
        routes=routes,
        config=Config(routes={"app.test": route}),
        route=route,
        handle=DeployHandle("d2", "app.test", "app:1", "manual"),
        current=CURRENT,
        force=False,
    )


def serving(routes: RouteTable) -> Backend:
    backend = Backend(Address("127.0.0.1", 1), name=CURRENT.name, container_id=CURRENT.id)
    routes.switch("app.test", backend)
    return backend


async def test_the_image_its_running_container_has_is_skipped() -> None:
    routes = RouteTable()
    serving(routes)
    result = await run_with(routes).run()
    assert result.outcome is Outcome.SKIPPED


async def test_the_same_image_is_deployed_when_its_container_is_down() -> None:
    # restart = "no": the container exited and stays down "until the next deploy", which
    # must not answer that the image "is already running".
    routes = RouteTable()
    routes.mark_down(serving(routes), "the app's container exited with code 1")
    with pytest.raises(Created):
        await run_with(routes).run()


async def test_routing_back_to_a_container_that_is_down_keeps_it_down() -> None:
    # The old container had exited (restart = "no"); the deploy meant to replace it dies
    # within stabilization: the route goes back to the old one, still down (502 at once).
    routes = RouteTable()
    old = serving(routes)
    routes.mark_down(old, "the app's container exited with code 1")
    new_info = dataclasses.replace(CURRENT, id="c2", name="hotswap-app-test-2")
    new = Backend(Address("127.0.0.1", 2), name=new_info.name, container_id="c2")
    routes.switch("app.test", new)
    died = ContainerEvent(EventKind.DIE, "c2", 1.0, exit_code=3)
    with pytest.raises(DeployError, match="traffic routed back"):
        await run_with(routes)._route_back(new_info, new, old, died)
    back = routes.get("app.test")
    assert back is not None and back.container_id == CURRENT.id
    assert back.state is BackendState.DOWN
    assert back.down_reason == "the app's container exited with code 1"


@pytest.mark.parametrize(
    ("key", "strip", "health_path", "probed"),
    [
        ("example.com", False, "/up", "/up"),
        ("example.com/api", False, "/up", "/api/up"),
        ("example.com/api", False, "/", "/api/"),
        ("example.com/api", True, "/up", "/up"),
        ("example.com/api/v2", False, "/health?full=1", "/api/v2/health?full=1"),
    ],
)
def test_the_health_path_of_a_path_route_is_under_its_prefix_as_a_client_asks(
    key: str, strip: bool, health_path: str, probed: str
) -> None:
    route = Route(key, "img:1", health_path=health_path, strip_prefix=strip)
    assert health_target(route) == probed
