"""Which domains the Deployer deploys: [routes] only, with a clear word for the others."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from hotswap.config import parse_config
from hotswap.deploy.deployer import Deployer
from hotswap.errors import UnknownDomainError
from hotswap.proxy.routes import RouteTable
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
