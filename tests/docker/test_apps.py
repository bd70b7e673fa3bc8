"""Real apps on the real engine (issue 11): volumes, bind mounts, env files, command, user,
limits, networks, restarts, names, redirects, and options refused before anything exists.

Host network mode unless said otherwise; traffic only to the proxy on 127.0.0.1. The
bridge-mode tests (networks, a restart publishing the port again) send no traffic at
all: on this engine (--bridge=none) a published port forwards to the container's
private address on a user-defined bridge network, which tests must never reach, so
they check the attachment and the route's address with docker inspect instead.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import trio
from deploy_harness import Harness, open_harness
from docker_helpers import container_events, http_request, wait_for_event, wait_for_health

from hotswap.config import NetworkMode, ReadinessMode, RestartPolicy, Volume
from hotswap.proxy.routes import BackendState

SERVE = "exec python3 /app/server.py"


def shell(script: str) -> tuple[str, ...]:
    """A route command: `script`, then the test app (VERSION carries what it found)."""
    return ("sh", "-c", f"{script}; {SERVE}")


@pytest.fixture
async def h(test_images: dict[str, str]) -> AsyncIterator[Harness]:
    async with open_harness(test_images) as harness:
        yield harness


@pytest.fixture
async def bridge(test_images: dict[str, str]) -> AsyncIterator[Harness]:
    async with open_harness(test_images, network_mode=NetworkMode.BRIDGE) as harness:
        harness.set_deploy(readiness_mode=ReadinessMode.DOCKER_HEALTH)  # no probe: no traffic
        yield harness


@pytest.fixture
def volume_name(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"hstest-data-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        docker_client.volumes.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass


@pytest.fixture
def networks(docker_client: docker.DockerClient) -> Iterator[tuple[str, str]]:
    """(front, back): a user-defined bridge network, and one created with --internal."""
    suffix = uuid.uuid4().hex[:8]
    front = docker_client.networks.create(f"hstest-front-{suffix}", driver="bridge")
    back = docker_client.networks.create(f"hstest-back-{suffix}", driver="bridge", internal=True)
    try:
        yield str(front.name), str(back.name)
    finally:
        for network in (front, back):
            network.reload()
            for container in network.containers:
                try:
                    network.disconnect(container, force=True)
                except docker.errors.APIError:
                    pass
            network.remove()


def inspect(client: docker.DockerClient, container_id: str | None) -> dict[str, Any]:
    assert container_id is not None
    data: dict[str, Any] = client.api.inspect_container(container_id)
    return data


async def test_volume_data_survives_a_deploy_and_a_read_only_bind_mount_is_read_only(
    h: Harness, docker_client: docker.DockerClient, volume_name: str, tmp_path: Path
) -> None:
    # The first version writes a marker into the named volume; the next one reads it.
    # Each reports what it found through VERSION, which the app answers with.
    script = (
        'test -f /data/marker || echo "written by $VERSION" > /data/marker; '
        "if touch /srv/probe 2>/dev/null; then RO=writable; else RO=read-only; fi; "
        'export VERSION="$(cat /data/marker), /srv $RO"'
    )
    domain = h.add_route(
        "volume",
        "app_v1",
        volumes=(Volume(volume_name, "/data"), Volume(str(tmp_path), "/srv", read_only=True)),
        command=shell(script),
    )
    with trio.fail_after(90):
        first = await h.deploy(domain)
        assert first.result.ok, first.result.error
        assert await h.get(domain) == (200, b"written by v1, /srv read-only\n")
        second = await h.deploy(domain, "app_v2")
        assert second.result.ok, second.result.error
        assert await h.get(domain) == (200, b"written by v1, /srv read-only\n")
    data = inspect(docker_client, second.result.container_id)
    assert data["Config"]["Image"].startswith("sha256:") and data["Config"]["Env"]
    mounts = {m["Destination"]: m for m in data["Mounts"]}
    assert (mounts["/data"]["Type"], mounts["/data"]["Name"]) == ("volume", volume_name)
    assert (mounts["/srv"]["Type"], mounts["/srv"]["RW"]) == ("bind", False)
    assert not (tmp_path / "probe").exists()


async def test_env_file_env_command_user_and_limits_reach_the_container(
    h: Harness, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("# secrets\nFROM_FILE=file\nBOTH=file\n")
    domain = h.add_route(
        "options",
        "app_v1",
        env={"BOTH": "env"},
        env_file=str(env_file),
        command=shell('export VERSION="$FROM_FILE-$BOTH-$(id -u):$(id -g)"'),
        user="65534:65534",
        memory=64 * 1024 * 1024,
        cpus=0.5,
        restart=RestartPolicy.ON_FAILURE,
    )
    with trio.fail_after(60):
        deployed = await h.deploy(domain)
        assert deployed.result.ok, deployed.result.error
        assert await h.get(domain) == (200, b"file-env-65534:65534\n")
    data = inspect(docker_client, deployed.result.container_id)
    env = dict(item.split("=", 1) for item in data["Config"]["Env"])
    assert (env["FROM_FILE"], env["BOTH"]) == ("file", "env")  # env wins over env_file
    assert data["Config"]["User"] == "65534:65534"
    assert data["Config"]["Cmd"][:2] == ["sh", "-c"]
    host = data["HostConfig"]
    assert (host["Memory"], host["NanoCpus"]) == (64 * 1024 * 1024, 500_000_000)
    assert host["RestartPolicy"]["Name"] == "on-failure"


async def test_a_name_in_hosts_and_a_wildcard_reach_the_app_and_a_redirect_answers_308(
    h: Harness,
) -> None:
    domain = h.add_route("names", "app_v1")
    h.routes.set_names(
        {domain: (f"www.{domain}", f"*.{domain}")}, {f"old.{h.suffix}": f"https://{domain}"}
    )
    with trio.fail_after(60):
        assert (await h.deploy(domain)).result.ok
        for host in (domain, f"www.{domain}", f"eu.{domain}"):
            assert await h.get(host) == (200, b"v1\n"), host
        assert (await h.get(f"a.b.{domain}"))[0] == 404  # a wildcard is one label
        moved = await http_request(h.proxy.port, "/path?q=1", host=f"old.{h.suffix}")
    assert moved.status == 308
    assert moved.headers["location"] == f"https://{domain}/path?q=1"


async def kill_app(client: docker.DockerClient, container_id: str | None) -> None:
    """Kill the app's process from the host, as a crash or the OOM killer would."""
    pid = inspect(client, container_id)["State"]["Pid"]
    assert pid > 0
    os.kill(pid, signal.SIGKILL)


async def test_a_killed_app_is_restarted_by_docker_and_traffic_resumes_by_itself(
    h: Harness, docker_client: docker.DockerClient
) -> None:
    domain = h.add_route("restart", "app_v1")
    with trio.fail_after(90):
        deployed = await h.deploy(domain)
        assert deployed.result.ok, deployed.result.error
        container_id = deployed.result.container_id or ""
        async with container_events(docker_client, container_id) as events:
            await kill_app(docker_client, container_id)
            await wait_for_event(events, "start")  # Docker's restart policy, no command
            await wait_for_health(events, "healthy")  # the app listens again
        await h.wait_route(domain, up=True, restarts=1)
        assert await h.get(domain) == (200, b"v1\n")
    status = h.deployer.status()["domains"][domain]
    assert status["restarts"] == 1 and status["restart_policy"] == "unless-stopped"
    assert status["container_id"] == deployed.result.container_id


async def test_a_down_container_gets_502_at_once_and_traffic_resumes_when_it_runs(
    h: Harness, docker_client: docker.DockerClient
) -> None:
    domain = h.add_route("down", "app_v1", restart=RestartPolicy.NO)
    with trio.fail_after(90):
        deployed = await h.deploy(domain)
        assert deployed.result.ok, deployed.result.error
        await kill_app(docker_client, deployed.result.container_id)
        await h.wait_route(domain, up=False)
        status, body = await h.get(domain)
        assert status == 502
        assert b"the app is not running right now" in body
        backend = h.routes.get(domain)
        assert backend is not None
        assert "exited with code 137" in backend.down_reason
        assert "stays down until the next deploy" in backend.down_reason
        assert backend is not None and backend.pool.connects == 0  # not even tried
        container_id = deployed.result.container_id or ""
        async with container_events(docker_client, container_id) as events:
            await trio.to_thread.run_sync(docker_client.api.start, container_id)
            await wait_for_health(events, "healthy")
        await h.wait_route(domain, up=True)
        assert await h.get(domain) == (200, b"v1\n")


async def test_a_container_joins_its_networks_and_a_restart_rereads_the_published_port(
    bridge: Harness, docker_client: docker.DockerClient, networks: tuple[str, str]
) -> None:
    front, back = networks
    domain = bridge.add_route("networks", "app_v1", networks=(front, back))
    with trio.fail_after(90):
        deployed = await bridge.deploy(domain)
        assert deployed.result.ok, deployed.result.error
        data = inspect(docker_client, deployed.result.container_id)
        assert {front, back} <= set(data["NetworkSettings"]["Networks"])
        assert bridge.deployer.status()["domains"][domain]["networks"] == sorted([back, front])
        await kill_app(docker_client, deployed.result.container_id)
        await bridge.wait_route(domain, up=True, restarts=1)
    # No traffic: the route's address is the port Docker published after the restart.
    published = inspect(docker_client, deployed.result.container_id)["NetworkSettings"]["Ports"]
    port = int(published["8000/tcp"][0]["HostPort"])
    backend = bridge.routes.get(domain)
    assert backend is not None and backend.state is BackendState.UP
    assert (backend.address.host, backend.address.port) == ("127.0.0.1", port)


async def test_invalid_options_are_refused_before_anything_is_created(
    h: Harness, bridge: Harness, tmp_path: Path
) -> None:
    cases = [
        (h, {"env_file": str(tmp_path / "missing.env")}, "env_file: cannot read"),
        (h, {"volumes": (Volume(str(tmp_path / "nope"), "/x"),)}, "volumes[0]: bind-mount source"),
        (h, {"cpus": 4096.0}, "cpus: 4096 CPUs asked, the Docker host has"),
        (h, {"networks": ("hstest-none",)}, 'needs docker.network_mode = "bridge"'),
        (bridge, {"networks": ("hstest-missing-net",)}, 'network "hstest-missing-net" does not'),
    ]
    with trio.fail_after(90):
        for index, (harness, options, message) in enumerate(cases):
            domain = harness.add_route(f"invalid{index}", "app_v1", **options)
            deployed = await harness.deploy(domain)
            assert not deployed.result.ok
            assert f'routes."{domain}".' in (deployed.result.error or "")
            assert message in (deployed.result.error or ""), deployed.result.error
            assert "pulling" not in deployed.phases and "creating" not in deployed.phases
            assert await harness.managed(domain) == []
