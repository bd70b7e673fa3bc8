"""The container runtime: the protocol the deployer talks to, and its Docker implementation."""

from hotswap.runtime.base import (
    LABEL_DEPLOY,
    LABEL_DOMAIN,
    LABEL_IMAGE,
    LABEL_MANAGED,
    LABEL_PORT,
    LABEL_PREVIOUS_IMAGE,
    ContainerEvent,
    ContainerInfo,
    ContainerRuntime,
    ContainerSpec,
    EventKind,
    EventReceiver,
    Health,
    ImageEvent,
    ImageInfo,
)
from hotswap.runtime.docker import DockerRuntime
from hotswap.runtime.images import is_digest_ref, normalize_ref, route_port
from hotswap.runtime.parse import LABEL_HOST_PORT, container_name

__all__ = [
    "LABEL_DEPLOY",
    "LABEL_DOMAIN",
    "LABEL_HOST_PORT",
    "LABEL_IMAGE",
    "LABEL_MANAGED",
    "LABEL_PORT",
    "LABEL_PREVIOUS_IMAGE",
    "ContainerEvent",
    "ContainerInfo",
    "ContainerRuntime",
    "ContainerSpec",
    "DockerRuntime",
    "EventKind",
    "EventReceiver",
    "Health",
    "ImageEvent",
    "ImageInfo",
    "container_name",
    "is_digest_ref",
    "normalize_ref",
    "route_port",
]
