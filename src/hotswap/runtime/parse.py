"""Docker's JSON (container inspect, events) into our data types, and the container
name and labels we create: pure functions, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hotswap.config import Address, NetworkMode
from hotswap.config_apps import DOCKER_NETWORKS
from hotswap.runtime.base import (
    LABEL_DEPLOY,
    LABEL_DOMAIN,
    LABEL_IMAGE,
    LABEL_MANAGED,
    ContainerEvent,
    ContainerInfo,
    ContainerSpec,
    EventKind,
    Health,
    ImageEvent,
    LogLine,
)

# Our own bookkeeping labels, so an adopted container's address can be rebuilt.
LABEL_HOST_PORT = "hotswap.host-port"  # host mode: the loopback port passed as $PORT
LABEL_CONTAINER_PORT = "hotswap.container-port"  # bridge mode: the published container port
LOOPBACK = "127.0.0.1"
SHORT_ID_LENGTH = 8

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]+")
_NAME_CHAR_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")
_FRACTION = re.compile(r"\.(\d+)")


def short_id(deploy_id: str) -> str:
    """The first characters of a deploy id that are safe in a container name."""
    safe = _NAME_UNSAFE.sub("", deploy_id.replace(".", ""))
    return safe[:SHORT_ID_LENGTH] or "x"


def container_name(domain: str, deploy_id: str) -> str:
    """`hotswap-<route key with dots as dashes>-<short id>` (DESIGN.md, Docker conventions);
    a path route's "/" and other characters Docker refuses in names are dashes too
    ("example.com/api" -> hotswap-example-com-api-<id>). Two route keys may give the
    same name but for the deploy's id: the name is for people, the hotswap.domain label
    holds the route key, and adoption reads only the label."""
    safe = _NAME_CHAR_UNSAFE.sub("-", domain.replace(".", "-"))
    return f"hotswap-{safe}-{short_id(deploy_id)}"


def container_labels(spec: ContainerSpec, host_port: int | None) -> dict[str, str]:
    """Labels of a new container; ours win over spec.extra_labels."""
    labels = dict(spec.extra_labels)
    labels.update(
        {
            LABEL_MANAGED: "true",
            LABEL_DOMAIN: spec.domain,
            LABEL_DEPLOY: spec.deploy_id,
            LABEL_IMAGE: spec.image,
        }
    )
    if host_port is not None:
        labels[LABEL_HOST_PORT] = str(host_port)
    if spec.network_mode is NetworkMode.BRIDGE and spec.container_port is not None:
        labels[LABEL_CONTAINER_PORT] = str(spec.container_port)
    return labels


def container_env(spec: ContainerSpec, host_port: int | None) -> dict[str, str]:
    """The route's env, plus PORT in host mode (it overrides a PORT the route sets)."""
    env = dict(spec.env)
    if host_port is not None:
        env["PORT"] = str(host_port)
    return env


def parse_docker_time(text: str) -> float:
    """Unix time from Docker's RFC 3339 timestamps, which carry nanoseconds; 0.0 if unset."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _health(state: Mapping[str, Any]) -> tuple[Health, str]:
    health = state.get("Health")
    if not health:
        return Health.NONE, ""
    # A container with a healthcheck whose first probe has not run may report an empty
    # status: that is "starting", not "no healthcheck".
    try:
        status = Health(health.get("Status") or Health.STARTING)
    except ValueError:
        status = Health.STARTING
    log = health.get("Log") or []
    output = str(log[-1].get("Output", "")).strip() if log else ""
    return status, output


def _int_label(labels: Mapping[str, str], key: str) -> int | None:
    value = labels.get(key, "")
    return int(value) if value.isdigit() else None


def container_address(data: Mapping[str, Any]) -> Address | None:
    """Where the app answers: host mode from our host-port label, bridge mode from the
    published port Docker chose (only known once started)."""
    labels: Mapping[str, str] = (data.get("Config") or {}).get("Labels") or {}
    host_port = _int_label(labels, LABEL_HOST_PORT)
    network_mode = (data.get("HostConfig") or {}).get("NetworkMode", "")
    if host_port is not None and network_mode == "host":
        return Address(LOOPBACK, host_port)
    ports: Mapping[str, Any] = (data.get("NetworkSettings") or {}).get("Ports") or {}
    container_port = _int_label(labels, LABEL_CONTAINER_PORT)
    keys = [f"{container_port}/tcp"] if container_port is not None else sorted(ports)
    for key in keys:
        for binding in ports.get(key) or []:
            port = str(binding.get("HostPort", ""))
            if port.isdigit() and int(port) > 0:
                host = binding.get("HostIp") or LOOPBACK
                return Address(LOOPBACK if host in ("0.0.0.0", "") else host, int(port))
    return None


def container_info_from_inspect(data: Mapping[str, Any]) -> ContainerInfo:
    """Build ContainerInfo from `docker container inspect` output."""
    config: Mapping[str, Any] = data.get("Config") or {}
    labels: dict[str, str] = dict(config.get("Labels") or {})
    state: Mapping[str, Any] = data.get("State") or {}
    status = str(state.get("Status", ""))
    health, health_log = _health(state)
    exited = status in ("exited", "dead", "restarting")  # restarting: the last exit
    return ContainerInfo(
        id=str(data.get("Id", "")),
        name=str(data.get("Name", "")).lstrip("/"),
        domain=labels.get(LABEL_DOMAIN, ""),
        image=labels.get(LABEL_IMAGE, str(config.get("Image", ""))),
        image_id=str(data.get("Image", "")),
        deploy_id=labels.get(LABEL_DEPLOY, ""),
        created=parse_docker_time(str(data.get("Created", ""))),
        running=bool(state.get("Running", False)),
        status=status,
        health=health,
        health_log=health_log,
        exit_code=int(state.get("ExitCode", 0)) if exited else None,
        address=container_address(data),
        labels=labels,
        restart_count=int(data.get("RestartCount") or 0),
        restart_policy=str(
            ((data.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or ""
        ),
        mounts=tuple(_mount(m) for m in data.get("Mounts") or []),
        networks=tuple(
            sorted(set((data.get("NetworkSettings") or {}).get("Networks") or {}) - DOCKER_NETWORKS)
        ),
    )


def _mount(mount: Mapping[str, Any]) -> str:
    """One mount as written in a route's volumes: "name:/path" or "/host:/path", ":ro" if so."""
    source = mount.get("Name") if mount.get("Type") == "volume" else mount.get("Source")
    text = f"{source or '?'}:{mount.get('Destination', '?')}"
    return text if mount.get("RW", True) else f"{text}:ro"


def log_line(raw: str) -> LogLine:
    """A line Docker stamped ("2024-05-01T12:00:00.123456789Z text"); unstamped: (0, 0)."""
    stamp, sep, text = raw.partition(" ")
    if not sep or not stamp.endswith("Z") or "T" not in stamp:
        return LogLine((0, 0), raw)
    whole, _, fraction = stamp[:-1].partition(".")
    try:
        seconds = int(datetime.fromisoformat(whole + "+00:00").timestamp())
    except ValueError:
        return LogLine((0, 0), raw)
    nanos = int((fraction[:9] or "0").ljust(9, "0")) if fraction.isdigit() else 0
    return LogLine((seconds, nanos), text)


def _event_time(event: Mapping[str, Any]) -> float:
    if "timeNano" in event:
        return int(event["timeNano"]) / 1e9
    return float(event.get("time", 0))


def _actor(event: Mapping[str, Any]) -> tuple[str, Mapping[str, str]]:
    actor: Mapping[str, Any] = event.get("Actor") or {}
    return str(actor.get("ID") or event.get("id", "")), actor.get("Attributes") or {}


def container_event(event: Mapping[str, Any]) -> ContainerEvent | None:
    """A container event we care about (start, die, health_status, destroy), else None."""
    if event.get("Type", "container") != "container":
        return None
    action = str(event.get("Action") or event.get("status", ""))
    name, _, detail = action.partition(":")
    try:
        kind = EventKind(name.strip())
    except ValueError:
        return None
    container_id, attributes = _actor(event)
    health: Health | None = None
    exit_code: int | None = None
    if kind is EventKind.HEALTH:
        try:
            health = Health(detail.strip())
        except ValueError:
            return None
    elif kind is EventKind.DIE:
        code = str(attributes.get("exitCode", ""))
        exit_code = int(code) if code.lstrip("-").isdigit() else None
    return ContainerEvent(kind, container_id, _event_time(event), health, exit_code)


@dataclass(frozen=True)
class ImageRefEvent:
    """An image event whose image id may still have to be resolved (pull names only the ref)."""

    ref: str
    image_id: str  # "" when it has to be looked up
    time: float

    def resolved(self, image_id: str) -> ImageEvent:
        return ImageEvent(self.ref, image_id, self.time)


IMAGE_ACTIONS = ("tag", "pull")


def image_event(event: Mapping[str, Any]) -> ImageRefEvent | None:
    """`tag` (actor: the image id, attribute name: the new ref) or `pull` (actor: the ref)."""
    if event.get("Type") != "image":
        return None
    action = str(event.get("Action") or event.get("status", ""))
    actor_id, attributes = _actor(event)
    if action == "tag":
        name = str(attributes.get("name", ""))
        if not name:
            return None
        return ImageRefEvent(name, actor_id, _event_time(event))
    if action == "pull":
        if not actor_id:
            return None
        image_id = actor_id if actor_id.startswith("sha256:") else ""
        return ImageRefEvent(actor_id, image_id, _event_time(event))
    return None
