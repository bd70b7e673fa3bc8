"""The keys that make a route run a real app, and [redirects]: checked without I/O.

    hosts     more names served by the route's container (exact, or "*.example.com")
    env_file  docker's env-file syntax, read at each deploy (the path is checked here)
    volumes   "name:/path[:ro|rw]" (a named volume) or "/host/path:/path[:ro|rw]" (a bind mount)
    networks  user-defined Docker networks to join (bridge mode only)
    command, user, memory, cpus, restart
    [redirects]  "old.example.com" = "https://app.example.com" (an origin; 308)

Names (route keys, hosts, external routes, redirects) live in one space: a name
belongs to one route. A wildcard `*.example.com` matches exactly one more label
(`a.example.com`, not `a.b.example.com` nor `example.com`), the rule of TLS
certificates (RFC 6125) and Caddy; an exact name always wins over a wildcard.

Each checker returns the typed value or reports through `report(key, message)`
and returns INVALID; config.py calls them for the route table keys it does not
handle itself.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from hotswap.addresses import normalize_domain
from hotswap.config_values import Report, describe, key_part
from hotswap.units import parse_size

INVALID: Final = object()  # a value that produced a problem; the key keeps its default

# Docker refuses a smaller memory limit (linuxMinMemory in the engine).
MIN_MEMORY: Final = 6 * 1024 * 1024
MIN_CPUS: Final = 0.01  # Docker's smallest CPU quota
WILDCARD_PREFIX: Final = "*."
_DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # volume and network names
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.][A-Za-z0-9_.-]*)?")
# Docker's own networks: a route cannot join them by name (network_mode says which).
DOCKER_NETWORKS: Final = frozenset({"host", "none", "bridge", "default"})


def normalize_name(text: str) -> str:
    """A host name or a wildcard name ("*.example.com"), normalised like a route key."""
    if text.startswith(WILDCARD_PREFIX):
        rest = text[len(WILDCARD_PREFIX) :]
        if "*" in rest:
            raise ValueError(f'invalid name "{text}": "*" only as the whole first label')
        return WILDCARD_PREFIX + normalize_domain(rest)
    if "*" in text:
        raise ValueError(
            f'invalid name "{text}": a wildcard is "*." followed by a domain, like "*.example.com"'
        )
    return normalize_domain(text)


def wildcard_matches(wildcard: str, host: str) -> bool:
    """True if `host` is one label under `wildcard` ("*.example.com" matches "a.example.com")."""
    return host.partition(".")[2] == wildcard[len(WILDCARD_PREFIX) :] and "." in host


def _strings(raw: object, key: str, report: Report, example: str) -> list[str] | None:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        report(key, f"expected an array of strings like {example}, got {describe(raw)}")
        return None
    return list(raw)


def parse_hosts(raw: object, key: str, report: Report) -> tuple[str, ...] | object:
    items = _strings(raw, key, report, '["www.example.com", "*.example.com"]')
    if items is None:
        return INVALID
    names: list[str] = []
    ok = True
    for index, item in enumerate(items):
        try:
            name = normalize_name(item)
        except ValueError as exc:
            report(f"{key}[{index}]", str(exc))
            ok = False
            continue
        names.append(name)
    return tuple(names) if ok else INVALID


def parse_env_file(raw: object, key: str, report: Report, base: Path) -> str | object:
    """The env file's absolute path ("" = none); relative to the config file's directory.

    Only the path is checked here: the file is read at each deploy, which refuses
    to start when it is missing or invalid.
    """
    if not isinstance(raw, str):
        report(key, f"expected a path, got {describe(raw)}")
        return INVALID
    if not raw:
        return ""
    return str(base / Path(raw).expanduser())


def parse_volume(text: str, key: str, report: Report) -> tuple[str, str, bool] | None:
    """(source, target, read_only) of "source:target[:ro|rw]"."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        report(key, f'expected "source:/path[:ro]", got {describe(text)}')
        return None
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    problem = None
    if source.startswith("/"):
        if "\0" in source or source.rstrip("/") == "":
            problem = f'invalid bind-mount source "{source}"'
    elif not _DOCKER_NAME.fullmatch(source) or len(source) < 2:
        problem = (
            f'"{source}" is neither a volume name (letters, digits, "_", ".", "-") nor an '
            "absolute path: bind-mount paths are absolute"
        )
    # Docker cleans the container path ("/data/..", "/data/." and "/data" are one mount
    # point) and refuses "/" and duplicates only when it creates the container.
    cleaned = "/" + posixpath.normpath(target).lstrip("/")
    if problem is None and (not target.startswith("/") or cleaned == "/"):
        problem = f'the container path must be absolute and not "/", got "{target}"'
    if problem is None and mode not in ("ro", "rw"):
        problem = f'the mode must be "ro" or "rw", got "{mode}"'
    if problem is not None:
        report(key, problem)
        return None
    return source, cleaned, mode == "ro"


def parse_volumes(raw: object, key: str, report: Report) -> list[tuple[str, str, bool]] | object:
    items = _strings(raw, key, report, '["app-data:/data", "/srv/uploads:/uploads:ro"]')
    if items is None:
        return INVALID
    volumes: list[tuple[str, str, bool]] = []
    targets: dict[str, int] = {}
    ok = True
    for index, item in enumerate(items):
        volume = parse_volume(item, f"{key}[{index}]", report)
        if volume is None:
            ok = False
            continue
        if volume[1] in targets:
            report(
                f"{key}[{index}]", f"{volume[1]} is mounted already by {key}[{targets[volume[1]]}]"
            )
            ok = False
            continue
        targets[volume[1]] = index
        volumes.append(volume)
    return volumes if ok else INVALID


def parse_networks(raw: object, key: str, report: Report) -> tuple[str, ...] | object:
    items = _strings(raw, key, report, '["backend"]')
    if items is None:
        return INVALID
    ok = True
    for index, name in enumerate(items):
        if name in DOCKER_NETWORKS:
            report(
                f"{key}[{index}]",
                f'"{name}" is not a user-defined network (create one: docker network create NAME)',
            )
            ok = False
        elif not _DOCKER_NAME.fullmatch(name):
            report(f"{key}[{index}]", f"invalid network name {describe(name)}")
            ok = False
        elif name in items[:index]:
            report(f"{key}[{index}]", f'"{name}" is listed twice')
            ok = False
    return tuple(items) if ok else INVALID


def parse_command(raw: object, key: str, report: Report) -> tuple[str, ...] | object:
    items = _strings(raw, key, report, '["bin/rails", "server"]')
    if items is None:
        return INVALID
    if items and not items[0]:
        report(key, "the program (the first element) must not be empty")
        return INVALID
    return tuple(items)


def parse_user(raw: object, key: str, report: Report) -> str | object:
    if not isinstance(raw, str):
        report(key, f'expected a string like "1000" or "app:app", got {describe(raw)}')
        return INVALID
    if raw and not _USER.fullmatch(raw):
        report(key, f'expected "user", "uid", "user:group" or "uid:gid", got {describe(raw)}')
        return INVALID
    return raw


def parse_memory(raw: object, key: str, report: Report) -> int | object:
    if raw == "" or raw == 0:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        report(key, f'expected a size like "512MB", or "" for no limit, got {describe(raw)}')
        return INVALID
    try:
        size = parse_size(raw)
    except ValueError as exc:
        report(key, str(exc))
        return INVALID
    if 0 < size < MIN_MEMORY:
        report(key, f"must be at least 6MiB (Docker's minimum), got {describe(raw)}")
        return INVALID
    return size


def parse_cpus(raw: object, key: str, report: Report) -> float | object:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        report(key, f"expected a number of CPUs like 1.5, or 0 for no limit, got {describe(raw)}")
        return INVALID
    if raw < 0 or 0 < raw < MIN_CPUS:
        report(key, f"must be 0 (no limit) or at least {MIN_CPUS}, got {describe(raw)}")
        return INVALID
    return float(raw)


def parse_redirect_target(raw: object, key: str, report: Report) -> str | object:
    """An origin "https://host[:port]" (a trailing "/" is allowed), normalised."""
    if not isinstance(raw, str):
        report(key, f'expected an origin like "https://app.example.com", got {describe(raw)}')
        return INVALID
    parts = urlsplit(raw)
    problem = None
    if parts.scheme.lower() not in ("http", "https"):
        problem = 'expected an origin starting with "https://" or "http://"'
    elif parts.path not in ("", "/") or parts.query or parts.fragment or "?" in raw:
        problem = "expected an origin without a path (the request's path and query are kept)"
    elif parts.username is not None or parts.password is not None:
        problem = "expected an origin without user information"
    if problem is None:
        try:
            host = normalize_domain(parts.hostname or "")
            port = parts.port
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        report(key, f"{problem}, got {describe(raw)}")
        return INVALID
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


Parser = Callable[[object, str, Report], object]
ROUTE_PARSERS: Final[Mapping[str, Parser]] = {
    "hosts": parse_hosts,
    "volumes": parse_volumes,
    "networks": parse_networks,
    "command": parse_command,
    "user": parse_user,
    "memory": parse_memory,
    "cpus": parse_cpus,
}


def check_names(
    names: list[tuple[str, str]], report: Report, seen: dict[str, str] | None = None
) -> None:
    """Report every name defined twice. `names`: (name, key path that defines it)."""
    first: dict[str, str] = dict(seen or {})
    for name, key in names:
        if name in first:
            report(key, f'"{name}" already belongs to {first[name]}: a name belongs to one route')
        else:
            first[name] = key


def check_redirect_loops(
    redirects: Mapping[str, str], served: Collection[str], report: Report
) -> None:
    """Report each redirect whose target comes back to it, directly or through other
    redirects. `served`: every name a route or an external route serves (exact or
    wildcard). A target host resolves as in the proxy: an exact name before a wildcard."""

    def lands_on(host: str) -> str | None:
        """The redirect that answers `host`, None if a route serves it (or nothing)."""
        if host in served:
            return None
        if host in redirects:
            return host
        wildcard = WILDCARD_PREFIX + host.partition(".")[2]
        if "." not in host or wildcard in served:
            return None
        return wildcard if wildcard in redirects else None

    for name, target in redirects.items():
        path = [name]
        following = lands_on(urlsplit(target).hostname or "")
        while following is not None and following not in path:
            path.append(following)
            following = lands_on(urlsplit(redirects[following]).hostname or "")
        if following != name:
            continue  # no loop, or one this redirect only leads into
        key = f"redirects.{key_part(name)}"
        if len(path) == 1:
            report(key, f'"{target}" is served by this redirect itself: it would loop')
        else:
            others = ", ".join(f"redirects.{key_part(other)}" for other in path[1:])
            report(key, f'"{target}" is redirected back to this name by {others}: it would loop')
