"""DeployRun's skip rule on a fake runtime (no Docker): the same image is skipped only while
its container serves."""

from __future__ import annotations

import pytest

from hotswap.config import Address, Config, PullPolicy, Route
from hotswap.deploy.progress import DeployHandle, Outcome
from hotswap.deploy.steps import DeployRun
from hotswap.proxy.routes import Backend, RouteTable
from hotswap.runtime.base import ContainerInfo, ContainerSpec, Health, ImageInfo, Preflight

IMAGE = ImageInfo("app:1", "sha256:1", 8000, has_healthcheck=False)
CURRENT = ContainerInfo(
    id="c1",
    name="hotswap-app-test-1",
    domain="app.test",
    image="app:1",
    image_id=IMAGE.id,
    deploy_id="1",
    created=0.0,
    running=True,
    status="running",
    health=Health.NONE,
    health_log="",
    exit_code=None,
    address=Address("127.0.0.1", 1),
    restart_policy="no",
)


class Created(Exception):
    """The deploy got as far as creating a container (not skipped)."""


class FakeRuntime:
    async def preflight(self, spec: ContainerSpec) -> list[Preflight]:
        return []

    async def ensure_image(self, ref: str, policy: PullPolicy) -> ImageInfo:
        return IMAGE

    async def create(self, spec: ContainerSpec) -> str:
        raise Created


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
