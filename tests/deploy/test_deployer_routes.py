"""Which domains the Deployer deploys and retires: [routes] only, with a clear word for the
others; retiring a route survives Docker failing; start-up skips routes removed meanwhile."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from hotswap.config import Address, parse_config
from hotswap.deploy.adopt import AdoptionPlan
from hotswap.deploy.deployer import Deployer
from hotswap.errors import ContainerRuntimeError, UnknownDomainError
from hotswap.proxy.routes import Backend, RouteTable
from hotswap.runtime.base import ContainerRuntime


def deployer() -> Deployer:
    data: dict[str, Any] = {
        "routes": {"app.test": "example/app:1"},
        "external_routes": {"legacy.test": "127.0.0.1:8081"},
    }
    config = parse_config(data, Path("hotswap.toml"))
    # Refusing a domain happens before the runtime is ever used.
    return Deployer(config, cast(ContainerRuntime, object()), RouteTable())


def test_an_external_route_is_not_deployed_and_the_error_says_why() -> None:
    with pytest.raises(UnknownDomainError, match=r"legacy\.test is an external route"):
        deployer().start_deploy("legacy.test")


def test_an_unknown_domain_says_there_is_no_route() -> None:
    with pytest.raises(UnknownDomainError, match=r"unknown domain nope\.test: no route"):
        deployer().start_rollback("nope.test")


class FailingDocker:
    """The two calls retiring a route makes; Docker fails both."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def stop(self, container_id: str, grace: float) -> None:
        self.calls.append(f"stop {container_id}")
        raise ContainerRuntimeError(f"stop container {container_id}: the daemon went away")

    async def remove(self, container_id: str) -> None:
        self.calls.append(f"remove {container_id}")
        raise ContainerRuntimeError(f"remove container {container_id}: the daemon went away")


async def test_retiring_a_route_survives_docker_failing_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    docker = FailingDocker()
    config = parse_config({"routes": {"app.test": "example/app:1"}}, Path("hotswap.toml"))
    routes = RouteTable()
    routes.switch("app.test", Backend(Address("127.0.0.1", 9), name="c", container_id="c1"))
    deployer = Deployer(config, cast(ContainerRuntime, docker), routes)
    await deployer.retire("app.test")  # raises nothing: hotswap keeps serving
    assert docker.calls == ["stop c1"]
    assert routes.get("app.test") is None
    assert "could not stop the container of a removed route" in caplog.text


async def test_retiring_with_a_replacement_switches_the_domain_to_it() -> None:
    docker = FailingDocker()
    config = parse_config({"routes": {"app.test": "example/app:1"}}, Path("hotswap.toml"))
    routes = RouteTable()
    routes.switch("app.test", Backend(Address("127.0.0.1", 9), name="c", container_id="c1"))
    deployer = Deployer(config, cast(ContainerRuntime, docker), routes)
    external = Backend(Address("127.0.0.1", 10), name="external:127.0.0.1:10")
    await deployer.retire("app.test", external)
    assert routes.get("app.test") is external
    assert docker.calls == ["stop c1"]


async def test_start_up_does_not_deploy_a_route_a_reload_removed_meanwhile() -> None:
    deployer_ = deployer()
    without = parse_config({"routes": {}}, Path("hotswap.toml"))
    deployer_.update_config(without)
    await deployer_.finish_start_up(AdoptionPlan(deploy=["app.test"]))  # nothing to do
