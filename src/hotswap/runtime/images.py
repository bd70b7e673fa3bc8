"""Image references, the pull-policy decision and the image's port: pure functions, no I/O.

A reference is what a user writes in a route: "myapp", "myapp:1.4",
"registry:5000/team/app:latest" or "app@sha256:<hex>". Docker reports the
same image in events in its short ("familiar") form, e.g. "myapp:latest", so
refs are compared after `normalize_ref`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from hotswap.config import PullPolicy
from hotswap.runtime.base import LABEL_PORT, ImageInfo

DEFAULT_TAG = "latest"
_DOCKER_HUB_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "docker.io/")


def is_digest_ref(ref: str) -> bool:
    """True for a reference pinned by content ("app@sha256:..."): it can never change."""
    return "@" in ref


def split_ref(ref: str) -> tuple[str, str]:
    """Split a reference into (repository, tag or digest); the tag defaults to "latest".

    The colon of a registry port ("host:5000/app") is not a tag separator.
    """
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, digest
    last_slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > last_slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, DEFAULT_TAG


def normalize_ref(ref: str) -> str:
    """The familiar form Docker uses in events: "myapp" -> "myapp:latest",
    "docker.io/library/nginx:1" -> "nginx:1". Digest references keep their digest."""
    ref = ref.strip()
    for prefix in _DOCKER_HUB_PREFIXES:
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    if is_digest_ref(ref):
        return ref
    repo, tag = split_ref(ref)
    return f"{repo}:{tag}"


class PullDecision(enum.Enum):
    PULL = "pull"  # pull; on failure fall back to the local image if there is one
    USE_LOCAL = "use-local"  # the local image is what we want; don't contact a registry


def pull_decision(ref: str, policy: PullPolicy, *, present: bool) -> PullDecision:
    """What ensure_image does for `ref` under `policy`, given whether it is present locally.

    - always: pull.
    - if-not-present: pull only when missing.
    - if-tag-changed: a tag may have moved in the registry, so pull it (a failed pull
      falls back to the local image); a digest reference that is present cannot have
      changed, so it is never pulled.
    """
    if not present:
        return PullDecision.PULL
    if policy is PullPolicy.ALWAYS:
        return PullDecision.PULL
    if policy is PullPolicy.IF_NOT_PRESENT:
        return PullDecision.USE_LOCAL
    return PullDecision.USE_LOCAL if is_digest_ref(ref) else PullDecision.PULL


def parse_port_label(value: str) -> int | None:
    """The port in an image label value ("8080", "8080/tcp"), or None if it is not a port."""
    text = value.strip().lower().removesuffix("/tcp")
    if not text.isdigit():
        return None
    port = int(text)
    return port if 1 <= port <= 65535 else None


def image_port(labels: Mapping[str, str] | None, exposed: Mapping[str, Any] | None) -> int | None:
    """The port an image's app listens on: label hotswap.port, else the lowest EXPOSEd tcp port.

    Docker keeps ExposedPorts as a map with no order, so "first" is the lowest number.
    A route's own `port` wins over both; the deployer applies that (see `route_port`).
    """
    if labels and LABEL_PORT in labels:
        port = parse_port_label(labels[LABEL_PORT])
        if port is not None:
            return port
    tcp_ports: list[int] = []
    for key in exposed or {}:
        number, _, proto = key.partition("/")
        if (proto or "tcp") == "tcp" and number.isdigit():
            tcp_ports.append(int(number))
    return min(tcp_ports) if tcp_ports else None


def route_port(route_port_setting: int | None, image: ImageInfo) -> int | None:
    """The container port to route to: the route's `port`, else the image's, else None."""
    return route_port_setting if route_port_setting is not None else image.port


def image_info_from_inspect(ref: str, data: Mapping[str, Any]) -> ImageInfo:
    """Build ImageInfo from `docker image inspect` output."""
    config: Mapping[str, Any] = data.get("Config") or {}
    healthcheck: Mapping[str, Any] = config.get("Healthcheck") or {}
    test = healthcheck.get("Test") or []
    has_healthcheck = bool(test) and test[0] != "NONE"
    return ImageInfo(
        ref=ref,
        id=str(data.get("Id", "")),
        port=image_port(config.get("Labels"), config.get("ExposedPorts")),
        has_healthcheck=has_healthcheck,
    )
