"""Docker's inspect and event JSON into our types; names, labels and env (no Docker)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hotswap.config import Address, NetworkMode
from hotswap.runtime.base import ContainerEvent, ContainerSpec, EventKind, Health
from hotswap.runtime.parse import (
    ImageRefEvent,
    container_env,
    container_event,
    container_info_from_inspect,
    container_labels,
    container_name,
    image_event,
    parse_docker_time,
)

CID = "893d4fc24a4c385ad5587bd9299eeb78f678e781e53fc638569028cd0a7efcc7"
IMAGE_ID = "sha256:8ea2342dd4f075f8889b087248dd77a507bf5f91aa26f1357302bfe31fe42c2a"


def inspect_data(**state: Any) -> dict[str, Any]:
    return {
        "Id": CID,
        "Created": "2026-11-28T16:58:20.388583333Z",
        "Name": "/hotswap-app-example-com-1a2b3c4d",
        "Image": IMAGE_ID,
        "Config": {
            "Image": IMAGE_ID,
            "Labels": {
                "hotswap.managed": "true",
                "hotswap.domain": "app.example.com",
                "hotswap.deploy": "1a2b3c4d5e",
                "hotswap.image": "myapp:latest",
                "hotswap.host-port": "25000",
            },
        },
        "HostConfig": {"NetworkMode": "host"},
        "NetworkSettings": {"Ports": {}},
        "State": {"Status": "running", "Running": True, "ExitCode": 0, **state},
    }


def test_running_host_mode_container_info() -> None:
    info = container_info_from_inspect(inspect_data())
    assert info.id == CID
    assert info.name == "hotswap-app-example-com-1a2b3c4d"
    assert (info.domain, info.deploy_id, info.image) == (
        "app.example.com",
        "1a2b3c4d5e",
        "myapp:latest",
    )
    assert info.image_id == IMAGE_ID
    assert info.created == pytest.approx(parse_docker_time("2026-11-28T16:58:20.388583Z"))
    assert info.running and info.status == "running" and info.exit_code is None
    assert info.health is Health.NONE and info.health_log == ""
    assert info.address == Address("127.0.0.1", 25000)


def test_exited_container_has_exit_code_and_last_health_output() -> None:
    health = {"Status": "unhealthy", "Log": [{"Output": "first"}, {"Output": "wget: 503\n"}]}
    info = container_info_from_inspect(
        inspect_data(Status="exited", Running=False, ExitCode=3, Health=health)
    )
    assert (info.running, info.exit_code) == (False, 3)
    assert (info.health, info.health_log) == (Health.UNHEALTHY, "wget: 503")


def test_bridge_mode_address_is_the_published_port() -> None:
    data = inspect_data()
    data["HostConfig"]["NetworkMode"] = "default"
    labels = data["Config"]["Labels"]
    del labels["hotswap.host-port"]
    labels["hotswap.container-port"] = "8000"
    data["NetworkSettings"]["Ports"] = {
        "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}],
        "9000/tcp": None,
    }
    assert container_info_from_inspect(data).address == Address("127.0.0.1", 49153)
    data["NetworkSettings"]["Ports"] = {}  # created, not started: not known yet
    assert container_info_from_inspect(data).address is None


def test_parse_docker_time_handles_nanoseconds_and_unset() -> None:
    assert parse_docker_time("1970-01-01T00:00:01.5Z") == 1.5
    assert parse_docker_time("1970-01-01T00:00:02.123456789Z") == pytest.approx(2.123456)
    assert parse_docker_time("0001-01-01T00:00:00Z") == 0.0
    assert parse_docker_time("") == 0.0


def container_event_data(action: str, **attributes: str) -> dict[str, Any]:
    return {
        "status": action,
        "id": CID,
        "Type": "container",
        "Action": action,
        "Actor": {"ID": CID, "Attributes": {"image": "myapp", **attributes}},
        "scope": "local",
        "time": 1700000000,
        "timeNano": 1700000000500000000,
    }


def test_container_events_are_parsed() -> None:
    assert container_event(container_event_data("start")) == ContainerEvent(
        EventKind.START, CID, 1700000000.5
    )
    died = container_event(container_event_data("die", exitCode="137"))
    assert died is not None and (died.kind, died.exit_code) == (EventKind.DIE, 137)
    healthy = container_event(container_event_data("health_status: healthy"))
    assert healthy is not None and healthy.health is Health.HEALTHY
    unhealthy = container_event(container_event_data("health_status: unhealthy"))
    assert unhealthy is not None and unhealthy.health is Health.UNHEALTHY
    destroyed = container_event(container_event_data("destroy"))
    assert destroyed is not None and destroyed.kind is EventKind.DESTROY


def test_other_events_are_ignored() -> None:
    assert container_event(container_event_data("exec_start: sh")) is None
    assert container_event(container_event_data("create")) is None
    assert container_event({"Type": "image", "Action": "start"}) is None
    assert image_event(container_event_data("start")) is None
    assert image_event({"Type": "image", "Action": "untag", "Actor": {"ID": IMAGE_ID}}) is None


def test_image_tag_and_pull_events() -> None:
    tag = {
        "Type": "image",
        "Action": "tag",
        "timeNano": 2_000_000_000,
        "Actor": {"ID": IMAGE_ID, "Attributes": {"name": "myapp:v2"}},
    }
    assert image_event(tag) == ImageRefEvent("myapp:v2", IMAGE_ID, 2.0)
    pull = {
        "Type": "image",
        "Action": "pull",
        "time": 3,
        "Actor": {"ID": "myapp:v2", "Attributes": {"name": "myapp"}},
    }
    event = image_event(pull)
    assert event == ImageRefEvent("myapp:v2", "", 3.0)  # the id is resolved by the caller
    assert event.resolved(IMAGE_ID).image_id == IMAGE_ID


def spec(mode: NetworkMode, **kwargs: Any) -> ContainerSpec:
    return ContainerSpec(
        domain="app.example.com",
        image="myapp:latest",
        image_id=IMAGE_ID,
        deploy_id="1a2b3c4d-5e6f",
        container_port=8000,
        network_mode=mode,
        **kwargs,
    )


def test_container_name_uses_domain_and_short_deploy_id() -> None:
    assert container_name("app.example.com", "1a2b3c4d5e6f") == "hotswap-app-example-com-1a2b3c4d"
    assert container_name("a.b", "x/y z") == "hotswap-a-b-xyz"


def test_labels_include_ours_over_extra_labels_and_the_host_port() -> None:
    labels = container_labels(
        spec(NetworkMode.HOST, extra_labels={"hotswap.domain": "evil", "team": "a"}), 25000
    )
    assert labels == {
        "team": "a",
        "hotswap.managed": "true",
        "hotswap.domain": "app.example.com",
        "hotswap.deploy": "1a2b3c4d-5e6f",
        "hotswap.image": "myapp:latest",
        "hotswap.host-port": "25000",
    }
    bridge = container_labels(spec(NetworkMode.BRIDGE), None)
    assert bridge["hotswap.container-port"] == "8000" and "hotswap.host-port" not in bridge


def test_env_gets_port_in_host_mode_only() -> None:
    env = {"RAILS_ENV": "production", "PORT": "1"}
    assert container_env(spec(NetworkMode.HOST, env=env), 25000) == {
        "RAILS_ENV": "production",
        "PORT": "25000",
    }
    assert container_env(spec(NetworkMode.BRIDGE, env=env), None) == env


def test_a_path_routes_container_name_carries_its_route_key_in_dashes() -> None:
    assert container_name("example.com/api", "1a2b3c4d5e6f") == "hotswap-example-com-api-1a2b3c4d"
    assert container_name("example.com/v1.2/~x", "ab") == "hotswap-example-com-v1-2--x-ab"
    name = container_name("example.com/a:b@c!$&'()*+,;=", "ab")
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name), name
