"""Issue 11 in the runtime without Docker: what inspect tells about restarts, mounts and
networks, empty health, log lines, the host config of a spec, every container's events."""

from __future__ import annotations

from typing import Any

import trio
from test_runtime_events import FakeDocker, event
from test_runtime_parse import inspect_data

from hotswap.config import NetworkMode, RestartPolicy, Volume
from hotswap.runtime.base import ContainerSpec, EventKind, Health
from hotswap.runtime.docker import _lines, host_config_options
from hotswap.runtime.events import EventHub
from hotswap.runtime.parse import container_info_from_inspect, log_line


def test_an_empty_health_status_is_starting_not_no_healthcheck() -> None:
    info = container_info_from_inspect(inspect_data(Health={"Status": "", "Log": []}))
    assert info.health is Health.STARTING
    assert container_info_from_inspect(inspect_data()).health is Health.NONE


def test_inspect_gives_restarts_policy_mounts_and_user_networks() -> None:
    data: dict[str, Any] = inspect_data()
    data["RestartCount"] = 3
    data["HostConfig"] = {"NetworkMode": "default", "RestartPolicy": {"Name": "unless-stopped"}}
    data["Mounts"] = [
        {
            "Type": "volume",
            "Name": "app-data",
            "Source": "/var/lib/docker/volumes/app-data/_data",
            "Destination": "/data",
            "RW": True,
        },
        {"Type": "bind", "Source": "/srv/uploads", "Destination": "/uploads", "RW": False},
    ]
    data["NetworkSettings"]["Networks"] = {"bridge": {}, "backend": {}, "front": {}}
    info = container_info_from_inspect(data)
    assert (info.restart_count, info.restart_policy) == (3, "unless-stopped")
    assert info.mounts == ("app-data:/data", "/srv/uploads:/uploads:ro")
    assert info.networks == ("backend", "front")


def test_log_lines_carry_dockers_stamp_for_ordering() -> None:
    line = log_line("2026-05-01T12:00:00.5Z GET / 200")
    assert line.text == "GET / 200" and line.stamp[1] == 500_000_000
    later = log_line("2026-05-01T12:00:00.500000001Z next")
    assert later.stamp > line.stamp
    assert log_line("no stamp here").stamp == (0, 0)


def test_log_frames_are_split_into_lines_even_mid_line() -> None:
    assert list(_lines([b"one\ntw", b"o\r\nthree"])) == ["one", "two", "three"]


def test_the_host_config_carries_restart_policy_mounts_and_limits() -> None:
    spec = ContainerSpec(
        domain="app.test",
        image="app:1",
        image_id="sha256:1",
        deploy_id="1",
        container_port=8000,
        network_mode=NetworkMode.BRIDGE,
        volumes=(Volume("app-data", "/data"), Volume("/srv/up", "/up", read_only=True)),
        memory=512_000_000,
        cpus=1.5,
        restart=RestartPolicy.ON_FAILURE,
    )
    options = host_config_options(spec)
    assert options["restart_policy"] == {"Name": "on-failure"}
    assert options["mem_limit"] == 512_000_000 and options["nano_cpus"] == 1_500_000_000
    volume, bind = options["mounts"]
    assert (volume["Type"], volume["Source"], volume["Target"], volume["ReadOnly"]) == (
        "volume",
        "app-data",
        "/data",
        False,
    )
    assert (bind["Type"], bind["Source"], bind["ReadOnly"]) == ("bind", "/srv/up", True)
    plain = host_config_options(ContainerSpec("a", "a", "", "1", 80, NetworkMode.HOST))
    assert plain == {"restart_policy": {"Name": "unless-stopped"}}


async def test_a_subscription_to_every_container_gets_each_containers_events() -> None:
    hub, fake = EventHub(), FakeDocker()
    with trio.fail_after(10), hub.subscribe_containers() as every:
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run, fake.connect, fake.resolve)
            fake.streams[0].feed(event("a" * 12, "die", exitCode="1"), event("b" * 12, "start"))
            assert (await every.receive()).kind is EventKind.DIE
            assert (await every.receive()).kind is EventKind.START
            nursery.cancel_scope.cancel()
