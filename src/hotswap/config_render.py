"""Config -> TOML: the data behind a config file, and the commented default file.

Values are rendered with tomli-w; durations and sizes are spelled the way a
person writes them ("90s", "100MB"), and the result parses back to the same
Config (tested).
"""

from __future__ import annotations

import functools
import textwrap
from typing import Any

import tomli_w

from hotswap.config import Config, Route
from hotswap.config_schema import (
    EXTERNAL_ROUTE_KEYS,
    REDIRECT_KEYS,
    ROUTE_KEYS,
    SECTION_KEYS,
    KeySpec,
    Kind,
)
from hotswap.config_values import key_part
from hotswap.units import format_duration, format_size

WIDTH = 88

_HEADER = """\
# hotswap configuration (TOML).
#
# Every key is listed with its default value, commented out: uncomment a line to
# change it. Durations: "500ms", "90s", "1m30s", "2h", "30d". Sizes: "512KB", "10MB"
# (decimal), "1MiB" (binary), or a number of bytes. Addresses: "host:port",
# "[::1]:8080". `hotswap config check` validates this file; the reference is
# docs/configuration.md.
"""

_ROUTES = """\
# Short form: "<domain>" = "<image>".
# "app.example.com" = "myapp:latest"
#
# Long form: one table per domain.
# [routes."api.example.com"]
# image = "myapi:1.4"
# port = 8080                           # container port
# env = { RAILS_ENV = "production" }    # values are strings
# health_path = "/up"                   # used by deploy.readiness_mode = "http"
# health_host = ""                      # Host header of the health request ("" = the domain)
# hosts = ["www.api.example.com", "*.api.example.com"]   # more names for this container
# env_file = "/etc/hotswap/api.env"     # KEY=VALUE lines, read at each deploy; env wins
# volumes = ["api-data:/data", "/srv/uploads:/uploads:ro"]   # bind-mount paths are absolute
# networks = ["backend"]                # user-defined networks to join (bridge mode only)
# command = []                          # overrides the image's CMD when not empty
# user = ""                             # overrides the image's USER when set
# memory = ""                           # e.g. "512MB"; "" = no limit
# cpus = 0                              # e.g. 1.5; 0 = no limit
# restart = "unless-stopped"            # no | on-failure | unless-stopped | always
# tls = "auto"                          # auto (a certificate or ACME) | off (plain HTTP only)
#
# A path route: example.com/api and everything under example.com/api/ (the longest
# prefix wins; "example.com" serves the rest). It takes example.com's names.
# [routes."example.com/api"]
# image = "shop-api:3"
# strip_prefix = false                  # true: the app sees /users for /api/users
"""

_EXTERNAL_ROUTES = """\
# "legacy.example.com" = "127.0.0.1:9000"
"""

_REDIRECTS = """\
# "old.example.com" = "https://app.example.com"
"""


def toml_value(value: object) -> str:
    """`value` as it is written on the right of `key = ` in TOML (tables inline)."""
    if isinstance(value, dict):
        items = ", ".join(f"{key_part(key)} = {toml_value(item)}" for key, item in value.items())
        return f"{{ {items} }}" if items else "{}"
    return tomli_w.dumps({"k": value}).removeprefix("k = ").strip()


def to_toml(kind: Kind, value: object) -> object:
    """A typed config value as TOML data (inverse of the loader's conversion)."""
    if kind is Kind.DURATION:
        assert isinstance(value, float | int)
        return format_duration(value)
    if kind is Kind.SIZE:
        assert isinstance(value, int)
        return format_size(value)
    if kind in (Kind.ADDRESS, Kind.LISTEN_ADDRESS, Kind.CHOICE):
        return str(value)
    if kind is Kind.OPTIONAL_LISTEN_ADDRESS:
        return "" if value is None else str(value)
    if kind is Kind.CIDRS:
        assert isinstance(value, tuple)
        return list(value)
    if kind is Kind.CERTIFICATES:
        assert isinstance(value, tuple)
        return [{"cert": files.cert, "key": files.key} for files in value]
    return value


def section_values(config: Config, section: str) -> Any:
    """The dataclass of a section: config.tls.acme for "tls.acme"."""
    return functools.reduce(getattr, section.split("."), config)


def section_table(data: dict[str, Any], section: str) -> dict[str, Any]:
    """The TOML table of a section inside `data`, created on the way."""
    table = data
    for part in section.split("."):
        table = table.setdefault(part, {})
    return table


def config_to_dict(config: Config) -> dict[str, Any]:
    """`config` as TOML-ready data that parse_config() turns back into an equal Config."""
    data: dict[str, Any] = {}
    for section, specs in SECTION_KEYS.items():
        values = section_values(config, section)
        table = section_table(data, section)
        for spec in specs:
            table[spec.leaf] = to_toml(spec.kind, getattr(values, spec.leaf))
    if config.server.admin_token_file:
        # The token came from the file and is read from it again on load.
        data["server"]["admin_token"] = ""
    data["routes"] = {domain: _route_to_toml(route) for domain, route in config.routes.items()}
    data["external_routes"] = {
        domain: str(route.address) for domain, route in config.external_routes.items()
    }
    data["redirects"] = dict(config.redirects)
    return data


def _route_to_toml(route: Route) -> str | dict[str, Any]:
    defaults = Route(domain=route.domain, image=route.image)
    if route == defaults:
        return route.image
    table: dict[str, Any] = {"image": route.image}
    if route.port is not None:
        table["port"] = route.port
    if route.env:
        table["env"] = dict(route.env)
    if route.health_path != defaults.health_path:
        table["health_path"] = route.health_path
    if route.health_host != defaults.health_host:
        table["health_host"] = route.health_host
    if route.tls != defaults.tls:
        table["tls"] = str(route.tls)
    if route.strip_prefix:
        table["strip_prefix"] = True
    table.update(_app_keys(route, defaults))
    return table


def _app_keys(route: Route, defaults: Route) -> dict[str, Any]:
    """The keys of config_apps that differ from their defaults, as TOML data."""
    table: dict[str, Any] = {}
    for name in ("hosts", "networks", "command"):
        if getattr(route, name):
            table[name] = list(getattr(route, name))
    if route.volumes:
        table["volumes"] = [str(volume) for volume in route.volumes]
    for name in ("env_file", "user", "cpus"):
        if getattr(route, name) != getattr(defaults, name):
            table[name] = getattr(route, name)
    if route.memory:
        table["memory"] = format_size(route.memory)
    if route.restart is not defaults.restart:
        table["restart"] = str(route.restart)
    return table


def render_default_config() -> str:
    """The default configuration: every key commented with its meaning and default."""
    defaults = config_to_dict(Config())
    parts = [_HEADER]
    for section, specs in SECTION_KEYS.items():
        parts.append(f"\n[{section}]\n")
        for index, spec in enumerate(specs):
            parts.append("\n" if index else "")
            parts.append(_comment(spec))
            default = section_table(defaults, section)[spec.leaf]
            parts.append(f"# {spec.leaf} = {toml_value(default)}\n")
    parts.append("\n[routes]\n")
    parts.append(_comment(ROUTE_KEYS[0]))
    parts.append(_ROUTES)
    parts.append("\n[external_routes]\n")
    parts.append(_comment(EXTERNAL_ROUTE_KEYS[0]))
    parts.append(_EXTERNAL_ROUTES)
    parts.append("\n[redirects]\n")
    parts.append(_comment(REDIRECT_KEYS[0]))
    parts.append(_REDIRECTS)
    return "".join(parts)


def _comment(spec: KeySpec) -> str:
    text = f"{spec.meaning} Takes effect: {spec.effect}."
    if spec.choices:
        text = f"{' | '.join(spec.choices)}. {text}"
    return (
        textwrap.fill(
            text, WIDTH, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False
        )
        + "\n"
    )
