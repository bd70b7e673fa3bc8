"""The boundary the deployer talks to: what a container runtime must offer.

Plain data here (no docker, no trio I/O), so the deployer and its tests depend
on this module only. DockerRuntime (docker.py) is the implementation.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from hotswap.config import Address, NetworkMode, PullPolicy, RestartPolicy, Volume

# Labels on every container hotswap creates (DESIGN.md, "Docker conventions").
LABEL_MANAGED = "hotswap.managed"
LABEL_DOMAIN = "hotswap.domain"
LABEL_DEPLOY = "hotswap.deploy"
LABEL_IMAGE = "hotswap.image"
LABEL_PREVIOUS_IMAGE = "hotswap.previous-image"  # what ran before; used by rollback
LABEL_PORT = "hotswap.port"  # on images: the port the app listens on


class Health(enum.StrEnum):
    NONE = "none"  # the container has no healthcheck
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class EventKind(enum.StrEnum):
    START = "start"
    DIE = "die"
    HEALTH = "health_status"
    DESTROY = "destroy"


@dataclass(frozen=True)
class ImageInfo:
    ref: str  # the reference asked for, e.g. "myapp:latest"
    id: str  # "sha256:..."
    port: int | None  # label hotswap.port, else first EXPOSEd tcp port, else None
    has_healthcheck: bool


@dataclass(frozen=True)
class ContainerSpec:
    """What the deployer asks the runtime to create."""

    domain: str
    image: str  # reference (label hotswap.image)
    image_id: str
    deploy_id: str
    container_port: int | None  # ignored in host network mode ($PORT is chosen)
    network_mode: NetworkMode
    env: Mapping[str, str] = field(default_factory=dict)  # env_file's values, then env's
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[Volume, ...] = ()
    networks: tuple[str, ...] = ()  # user-defined networks to join (bridge mode)
    command: tuple[str, ...] = ()  # () = the image's CMD
    user: str = ""  # "" = the image's USER
    memory: int = 0  # bytes; 0 = no limit
    cpus: float = 0.0  # 0 = no limit
    restart: RestartPolicy = RestartPolicy.UNLESS_STOPPED


@dataclass(frozen=True)
class Preflight:
    """A problem found before creating a container: the route key it concerns and why."""

    key: str  # the route's key it is about: "networks", "volumes[1]", "cpus"
    message: str


@dataclass(frozen=True)
class LogLine:
    """One line of a container's log."""

    stamp: tuple[int, int]  # (unix seconds, nanoseconds) as Docker stamped it; orders lines
    text: str  # without its newline


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    domain: str
    image: str  # reference from label hotswap.image
    image_id: str
    deploy_id: str
    created: float  # unix time
    running: bool
    status: str  # docker's State.Status: created, running, exited, ...
    health: Health
    health_log: str  # output of the last health probe, "" if none
    exit_code: int | None
    address: Address | None  # where the app answers (127.0.0.1:<port>), None if unknown
    labels: Mapping[str, str] = field(default_factory=dict)
    restart_count: int = 0  # restarts by Docker's restart policy (State's RestartCount)
    restart_policy: str = ""  # HostConfig.RestartPolicy.Name
    mounts: tuple[str, ...] = ()  # "app-data:/data", "/srv/uploads:/uploads:ro"
    networks: tuple[str, ...] = ()  # user-defined networks it is attached to

    @property
    def serving(self) -> bool:
        """Up and not between two crashes: Docker says Running for a container that is
        restarting (unless-stopped brings a crashing one back), its status says more."""
        return self.running and self.status == "running"


@dataclass(frozen=True)
class ContainerEvent:
    kind: EventKind
    container_id: str
    time: float
    health: Health | None = None  # for HEALTH events
    exit_code: int | None = None  # for DIE events


@dataclass(frozen=True)
class ImageEvent:
    """An image reference now points at an image (docker tag / pull / build)."""

    ref: str
    image_id: str
    time: float


T_co = TypeVar("T_co", covariant=True)


class EventReceiver(Protocol[T_co]):
    """The receiving end of a subscription to Docker events."""

    async def receive(self) -> T_co:
        """The next event; raises EventStreamLost if Docker's events stream broke."""
        ...


class ContainerRuntime(Protocol):
    """Everything the deployer needs from Docker. All methods are Trio-async.

    None take a timeout: the caller owns deadlines with cancel scopes.
    """

    async def ensure_image(self, ref: str, policy: PullPolicy) -> ImageInfo: ...

    async def image_info(self, ref: str) -> ImageInfo | None:
        """The local image `ref` points at, or None if there is none."""
        ...

    async def create(self, spec: ContainerSpec) -> str:
        """Create (not start) a container; return its id."""
        ...

    async def start(self, container_id: str) -> ContainerInfo:
        """Start it and return its state, with the address read back."""
        ...

    async def inspect(self, container_id: str) -> ContainerInfo: ...

    async def stop(self, container_id: str, grace: float) -> None: ...

    async def remove(self, container_id: str) -> None:
        """Remove it (forcefully); no error if it is already gone."""
        ...

    async def logs_tail(self, container_id: str, lines: int) -> str: ...

    async def preflight(self, spec: ContainerSpec) -> list[Preflight]:
        """What would make creating `spec` fail, checked before anything is created:
        networks that do not exist, bind-mount sources that do not exist, more CPUs than
        the Docker host has."""
        ...

    def open_logs(
        self, container_id: str, *, follow: bool, tail: int | None, since: float | None
    ) -> AbstractAsyncContextManager[AsyncIterator[LogLine]]:
        """The container's log lines (stdout and stderr, oldest first) while the context is
        open; the iteration ends with the log (with `follow`: once the container stops).
        `tail`: only the last lines (None: all); `since`: unix time of the first line."""
        ...

    async def list_managed(self) -> list[ContainerInfo]:
        """Every container labelled hotswap.managed=true, running or not."""
        ...

    def subscribe(self, container_id: str) -> AbstractContextManager[EventReceiver[ContainerEvent]]:
        """Receive this container's events while the context is open.

        Subscribe before starting the container so no event is missed. If the
        events stream is lost, receive() raises EventStreamLost.
        """
        ...

    def subscribe_images(
        self,
    ) -> AbstractContextManager[EventReceiver[ImageEvent]]: ...

    def subscribe_containers(self) -> AbstractContextManager[EventReceiver[ContainerEvent]]:
        """Every container's events while the context is open (the restart watch)."""
        ...
