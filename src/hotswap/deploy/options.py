"""What a deploy checks and assembles before it pulls or creates anything (issue 11).

The route's options become the ContainerSpec here: the env file is read (at each
deploy, so a changed secret takes effect at the next deploy), its values overridden
by the route's env; then the runtime checks what only the Docker host knows (the
networks exist, the bind-mount sources exist, the CPUs are there). Every problem
fails the deploy before anything exists, naming the route key and the reason.
"""

from __future__ import annotations

import trio

from hotswap.config import NetworkMode, Route
from hotswap.config_values import key_part
from hotswap.deploy.progress import DeployHandle
from hotswap.envfile import EnvFileError, read_env_file
from hotswap.errors import DeployError
from hotswap.runtime.base import ContainerRuntime, ContainerSpec


def route_key(route: Route, leaf: str) -> str:
    return f"routes.{key_part(route.domain)}.{leaf}"


async def load_env(route: Route) -> dict[str, str]:
    """env_file's variables overridden by env's (env wins). Values are never logged."""
    env: dict[str, str] = {}
    if route.env_file:
        try:
            env = await trio.to_thread.run_sync(read_env_file, route.env_file)
        except EnvFileError as exc:
            raise DeployError(f"{route_key(route, 'env_file')}: {exc}") from None
    env.update(route.env)
    return env


async def check_options(runtime: ContainerRuntime, route: Route, spec: ContainerSpec) -> None:
    """Refuse, before anything is created, what Docker would refuse or do wrong."""
    problems: list[str] = []
    if spec.networks and spec.network_mode is NetworkMode.HOST:
        problems.append(
            f'{route_key(route, "networks")}: needs docker.network_mode = "bridge": a '
            "container on the host network cannot join other networks"
        )
    problems += [
        f"{route_key(route, found.key)}: {found.message}" for found in await runtime.preflight(spec)
    ]
    if problems:
        raise DeployError("; ".join(problems))


def container_spec(
    route: Route,
    handle: DeployHandle,
    network_mode: NetworkMode,
    env: dict[str, str],
    image_id: str,
    port: int | None,
    labels: dict[str, str],
) -> ContainerSpec:
    """The container a deploy of `route` creates (image_id "" before the image is known)."""
    return ContainerSpec(
        domain=route.domain,
        image=handle.image,
        image_id=image_id,
        deploy_id=handle.id,
        container_port=port,
        network_mode=network_mode,
        env=env,
        extra_labels=labels,
        volumes=route.volumes,
        networks=route.networks,
        command=route.command,
        user=route.user,
        memory=route.memory,
        cpus=route.cpus,
        restart=route.restart,
    )
