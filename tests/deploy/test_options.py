"""What a deploy reads and checks before it pulls or creates anything (no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotswap.config import NetworkMode, Route
from hotswap.deploy.options import check_options, load_env
from hotswap.errors import DeployError
from hotswap.runtime.base import ContainerSpec, Preflight


class FakeRuntime:
    def __init__(self, problems: list[Preflight]) -> None:
        self.problems = problems
        self.checked: list[ContainerSpec] = []

    async def preflight(self, spec: ContainerSpec) -> list[Preflight]:
        self.checked.append(spec)
        return self.problems


def spec(mode: NetworkMode = NetworkMode.BRIDGE, networks: tuple[str, ...] = ()) -> ContainerSpec:
    return ContainerSpec("app.test", "app:1", "", "1", 8000, mode, networks=networks)


async def test_env_wins_over_the_env_file_read_at_each_deploy(tmp_path: Path) -> None:
    path = tmp_path / "app.env"
    path.write_text("A=from file\nB=from file\n")
    route = Route("app.test", "app:1", env={"B": "from env"}, env_file=str(path))
    assert await load_env(route) == {"A": "from file", "B": "from env"}
    path.write_text("A=changed\n")
    assert (await load_env(route))["A"] == "changed"


async def test_a_missing_or_invalid_env_file_fails_naming_the_key(tmp_path: Path) -> None:
    route = Route("app.test", "app:1", env_file=str(tmp_path / "missing.env"))
    with pytest.raises(DeployError, match=r'^routes."app.test".env_file: cannot read .*missing'):
        await load_env(route)
    (tmp_path / "bad.env").write_text("OK=1\nNOT OK=2\n")
    bad = Route("app.test", "app:1", env_file=str(tmp_path / "bad.env"))
    with pytest.raises(DeployError, match=r"env_file: .*bad.env: line 2: the variable name"):
        await load_env(bad)


async def test_every_problem_the_docker_host_finds_is_refused_with_its_key() -> None:
    runtime = FakeRuntime(
        [
            Preflight("networks", 'network "backend" does not exist'),
            Preflight("volumes[1]", "bind-mount source /srv/x does not exist on this host"),
        ]
    )
    route = Route("app.test", "app:1")
    with pytest.raises(DeployError) as caught:
        await check_options(runtime, route, spec())  # type: ignore[arg-type]
    assert str(caught.value) == (
        'routes."app.test".networks: network "backend" does not exist; '
        'routes."app.test".volumes[1]: bind-mount source /srv/x does not exist on this host'
    )


async def test_networks_are_refused_in_host_mode_even_if_the_config_was_bridge() -> None:
    runtime = FakeRuntime([])
    with pytest.raises(DeployError, match=r'networks: needs docker\.network_mode = "bridge"'):
        await check_options(
            runtime,  # type: ignore[arg-type]
            Route("app.test", "app:1"),
            spec(NetworkMode.HOST, ("backend",)),
        )
