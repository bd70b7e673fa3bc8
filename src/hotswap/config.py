"""hotswap's configuration: one TOML file parsed into frozen dataclasses.

Durations are floats in seconds, sizes ints in bytes. The loader reports every
problem at once, each naming the file and the key path.
"""

from __future__ import annotations

import enum
import os
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hotswap import config_apps as apps
from hotswap.addresses import is_loopback
from hotswap.config_schema import (
    EXTERNAL_ROUTE_KEYS,
    ROUTE_KEYS,
    SECTION_KEYS,
    SECTIONS,
    KeySpec,
    Kind,
)
from hotswap.config_values import (
    Report,
    check_image,
    closest,
    convert,
    describe,
    is_host,
    key_part,
    parse_certificate_files,
    parse_cidrs,
    parse_env,
    relative_to_config,
    syntax_error_position,
    unquoted_domain,
)
from hotswap.errors import ConfigError
from hotswap.routekey import is_path_route, normalize_route_key, route_domain, split_route_key

if TYPE_CHECKING:
    from hotswap.tls.certificate import Certificate


class NetworkMode(enum.StrEnum):
    BRIDGE = "bridge"
    HOST = "host"


class PullPolicy(enum.StrEnum):
    ALWAYS = "always"
    IF_NOT_PRESENT = "if-not-present"
    IF_TAG_CHANGED = "if-tag-changed"


class ReadinessMode(enum.StrEnum):
    AUTO = "auto"
    DOCKER_HEALTH = "docker-health"
    DELAY = "delay"
    HTTP = "http"


class DrainMode(enum.StrEnum):
    AUTO = "auto"
    INFLIGHT = "inflight"
    DELAY = "delay"


class WebSocketDrain(enum.StrEnum):
    CLOSE = "close"
    WAIT = "wait"


class HttpParser(enum.StrEnum):
    """The proxy's HTTP/1.1 codec: fast (llhttp via httptools, strict) or h11 (the reference)."""

    FAST = "fast"
    H11 = "h11"


class AccessLogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    COMBINED = "combined"
    OFF = "off"


class RestartPolicy(enum.StrEnum):
    """Docker's restart policy of the app containers."""

    NO = "no"
    ON_FAILURE = "on-failure"
    UNLESS_STOPPED = "unless-stopped"
    ALWAYS = "always"


class TlsMode(enum.StrEnum):
    AUTO = "auto"  # a loaded certificate that covers the name, else ACME when configured
    OFF = "off"  # plain HTTP only


@dataclass(frozen=True)
class Address:
    """A host:port pair (host may be a name, an IPv4 or an IPv6 address)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ServerConfig:
    listen: Address = Address("0.0.0.0", 8080)
    admin_listen: Address = Address("127.0.0.1", 9090)
    admin_token: str = ""
    admin_token_file: str = ""
    max_connections: int = 10_000
    max_body_size: int = 100_000_000  # bytes; 0 = unlimited
    header_timeout: float = 10.0
    idle_timeout: float = 75.0
    upstream_connect_timeout: float = 5.0
    upstream_response_timeout: float = 60.0
    http_parser: HttpParser = HttpParser.FAST
    access_log: AccessLogFormat = AccessLogFormat.TEXT
    request_id: bool = True
    trusted_proxies: tuple[str, ...] = ()  # normalised networks, e.g. "10.0.0.0/8"
    error_pages: str = ""  # a directory (relative to the config file); "" = built-in pages
    # The pages of error_pages, read and checked when the config is loaded: "502", "503",
    # "504", "maintenance" -> the file's bytes.
    error_page_files: Mapping[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class DockerConfig:
    host: str = ""
    network_mode: NetworkMode = NetworkMode.BRIDGE


@dataclass(frozen=True)
class DeployConfig:
    pull_policy: PullPolicy = PullPolicy.IF_TAG_CHANGED
    readiness_mode: ReadinessMode = ReadinessMode.AUTO
    health_timeout: float = 90.0
    readiness_delay: float = 5.0
    drain_mode: DrainMode = DrainMode.AUTO
    drain_timeout: float = 30.0
    drain_delay: float = 2.0
    stop_timeout: float = 10.0
    watch_images: bool = True
    stabilization: float = 2.0
    websocket_drain: WebSocketDrain = WebSocketDrain.CLOSE


LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
DAY = 86_400.0


@dataclass(frozen=True)
class CertificateFiles:
    """One entry of tls.certificates: the files as written, and what the loader read."""

    cert: str
    key: str
    # Read and checked when the config is loaded (None only for a Config built in code).
    certificate: Certificate | None = field(default=None, repr=False)


@dataclass(frozen=True)
class AcmeConfig:
    email: str = ""  # ACME is on when set
    directory: str = LETS_ENCRYPT_DIRECTORY
    ca_bundle: str = ""  # relative to the config file; "" = the system's CAs
    renew_before: float = 30 * DAY

    @property
    def enabled(self) -> bool:
        return bool(self.email)


@dataclass(frozen=True)
class TlsConfig:
    listen: Address | None = None  # None: no HTTPS listener
    certificates: tuple[CertificateFiles, ...] = ()
    redirect_http: bool = True
    hsts: str = ""
    handshake_timeout: float = 10.0
    certs_dir: str = ""  # "" = tls.store.default_certs_dir()
    acme: AcmeConfig = field(default_factory=AcmeConfig)


@dataclass(frozen=True)
class Volume:
    """A named volume ("app-data") or a bind mount (an absolute host path) at `target`."""

    source: str
    target: str
    read_only: bool = False

    @property
    def is_bind(self) -> bool:
        return self.source.startswith("/")

    def __str__(self) -> str:
        return f"{self.source}:{self.target}" + (":ro" if self.read_only else "")


@dataclass(frozen=True)
class Route:
    """A domain (or a domain and a path prefix) served by a container hotswap deploys."""

    domain: str  # the route key: "example.com", or "example.com/api" for a path route
    image: str
    port: int | None = None  # container port; None: label hotswap.port, else first EXPOSE
    env: Mapping[str, str] = field(default_factory=dict)
    health_path: str = "/up"
    health_host: str = ""  # Host header of the health request; "" = the domain
    hosts: tuple[str, ...] = ()  # more names (exact or "*.example.com") for this container
    env_file: str = ""  # absolute path; read at each deploy; env wins over it
    volumes: tuple[Volume, ...] = ()
    networks: tuple[str, ...] = ()  # user-defined networks to join (bridge mode)
    command: tuple[str, ...] = ()  # overrides the image's CMD when not empty
    user: str = ""  # overrides the image's USER when set
    memory: int = 0  # bytes; 0 = no limit
    cpus: float = 0.0  # 0 = no limit
    restart: RestartPolicy = RestartPolicy.UNLESS_STOPPED
    tls: TlsMode = TlsMode.AUTO
    strip_prefix: bool = False  # path routes: the app sees the path without the prefix

    @property
    def host(self) -> str:
        """The domain of the route key ("example.com" of "example.com/api")."""
        return route_domain(self.domain)

    @property
    def path(self) -> str:
        """The path prefix of a path route ("/api"); "" for a plain route."""
        return split_route_key(self.domain)[1]

    def container_settings(self) -> Route:
        """The route without what the proxy alone uses (its names, its TLS mode, the
        prefix it strips): what a deploy runs, so a change of these alone needs no deploy."""
        return replace(self, hosts=(), tls=TlsMode.AUTO, strip_prefix=False)


@dataclass(frozen=True)
class ExternalRoute:
    """A domain served by a fixed address hotswap does not manage."""

    domain: str
    address: Address


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    docker: DockerConfig = field(default_factory=DockerConfig)
    deploy: DeployConfig = field(default_factory=DeployConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    routes: Mapping[str, Route] = field(default_factory=dict)
    external_routes: Mapping[str, ExternalRoute] = field(default_factory=dict)
    redirects: Mapping[str, str] = field(default_factory=dict)  # name -> origin (308)


# The loader. Value checks live in config_values.py, the key table in config_schema.py.

DEFAULT_CONFIG_PATH = Path("~/.config/hotswap/hotswap.toml")
CONFIG_ENV_VAR = "HOTSWAP_CONFIG"

_CHOICE_TYPES: dict[str, type[enum.StrEnum]] = {
    "docker.network_mode": NetworkMode,
    "deploy.pull_policy": PullPolicy,
    "deploy.readiness_mode": ReadinessMode,
    "deploy.drain_mode": DrainMode,
    "deploy.websocket_drain": WebSocketDrain,
    "server.http_parser": HttpParser,
    "server.access_log": AccessLogFormat,
    "routes.<domain>.restart": RestartPolicy,
    "routes.<domain>.tls": TlsMode,
}
# Tables inside a section, parsed into their own dataclass.
_SUBSECTIONS: dict[str, type[AcmeConfig]] = {"tls.acme": AcmeConfig}
_SECTION_SPECS = {spec.name: spec for keys in SECTION_KEYS.values() for spec in keys}
_ROUTE_SPECS = {spec.leaf: spec for spec in ROUTE_KEYS[1:]}
_TOKEN = re.compile(r"[\x21-\x7e]+")  # sent in an Authorization header: visible ASCII
_INVALID = apps.INVALID  # a value that produced a problem; the key keeps its default


def default_config_path() -> Path:
    """$HOTSWAP_CONFIG if set, else ~/.config/hotswap/hotswap.toml."""
    from_env = os.environ.get(CONFIG_ENV_VAR, "")
    return Path(from_env or DEFAULT_CONFIG_PATH).expanduser()


def load_config(path: Path) -> Config:
    """Read and validate the TOML file at `path`; raises ConfigError listing every problem."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file; create it with: hotswap config init {shlex.quote(str(path))}"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, column, message = syntax_error_position(exc, text)
        raise ConfigError(f"{path}: line {line}, column {column}: invalid TOML: {message}") from exc
    return parse_config(data, path)


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    """Validate parsed TOML `data` read from `path` (named in messages; base of relative paths).

    Raises ConfigError with one line per problem: "<file>: <key.path>: <message>".
    """
    problems: list[str] = []

    def report(key: str, message: str) -> None:
        problems.append(f"{path}: {key}: {message}")

    tables: dict[str, Mapping[str, Any]] = {}
    for name, value in data.items():
        if name not in SECTIONS:
            report(key_part(name), "unknown key" + _hint(name, SECTIONS))
        elif not isinstance(value, dict):
            report(name, f"expected a table, got {describe(value)}")
        else:
            tables[name] = value
    server = ServerConfig(**_parse_section("server", tables.get("server", {}), report))
    docker = _parse_section("docker", tables.get("docker", {}), report)
    deploy = DeployConfig(**_parse_section("deploy", tables.get("deploy", {}), report))
    tls = TlsConfig(**_parse_section("tls", tables.get("tls", {}), report))
    seen: dict[str, str] = {}  # domain -> key path that defined it first
    routes = _parse_routes(tables.get("routes", {}), seen, report, path.parent)
    external = _parse_external_routes(tables.get("external_routes", {}), seen, report)
    redirects = _parse_redirects(tables.get("redirects", {}), report)
    _check_names(routes, redirects, seen, report)
    _check_tls_modes(routes, external, report)
    if docker.get("network_mode") is NetworkMode.HOST:
        for domain, route in routes.items():
            if route.networks:
                report(
                    f"routes.{key_part(domain)}.networks",
                    'needs docker.network_mode = "bridge": a container on the host network '
                    "cannot join other networks",
                )
    server = _check_admin(server, path, report)
    server = _load_error_pages(server, path, report)
    tls = _check_tls(tls, path, report)
    if problems:
        raise ConfigError(problems)
    return Config(
        path=path,
        server=server,
        docker=DockerConfig(**docker),
        deploy=deploy,
        tls=tls,
        routes=routes,
        external_routes=external,
        redirects=redirects,
    )


def _parse_section(name: str, table: Mapping[str, Any], report: Report) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for leaf, raw in table.items():
        dotted = f"{name}.{leaf}"
        key = f"{name}.{key_part(leaf)}"
        spec = _SECTION_SPECS.get(dotted)
        if dotted in _SUBSECTIONS:
            if isinstance(raw, dict):
                fields[leaf] = _SUBSECTIONS[dotted](**_parse_section(dotted, raw, report))
            else:
                report(key, f"expected a table, got {describe(raw)}")
            continue
        if spec is None:
            report(key, "unknown key" + _hint(leaf, [s.name for s in SECTION_KEYS[name]]))
            continue
        if spec.kind is Kind.CIDRS:
            fields[leaf] = parse_cidrs(raw, key, report)
            continue
        if spec.kind is Kind.CERTIFICATES:
            pairs = parse_certificate_files(raw, key, report)
            fields[leaf] = tuple(CertificateFiles(cert, key_file) for cert, key_file in pairs)
            continue
        value = _convert(spec, raw, key, report)
        if value is not _INVALID:
            fields[leaf] = value
    return fields


def _hint(leaf: str, nearby: Sequence[str], *, other_sections: bool = True) -> str:
    """ "; did you mean X?" for an unknown key named `leaf`, or "".

    A key of that exact name in another section wins (it is in the wrong table);
    else the closest of `nearby` (dotted names in the same table); else the closest
    key of any section. Leaves are compared without their table prefix, which would
    make every key of a table look alike.
    """
    groups = [nearby]
    if other_sections:
        misplaced = [name for name in _SECTION_SPECS if name.rpartition(".")[2] == leaf]
        if misplaced:
            return f"; did you mean {misplaced[0]}?"
        groups.append(list(_SECTION_SPECS))
    for candidates in groups:
        by_leaf = {name.rpartition(".")[2]: name for name in candidates}
        match = closest(leaf, list(by_leaf))
        if match is not None:
            return f"; did you mean {by_leaf[match]}?"
    return ""


def _convert(spec: KeySpec, raw: object, key: str, report: Report) -> Any:
    """The typed value of `raw`, or _INVALID after reporting why it is wrong."""
    try:
        value = convert(spec, raw)
    except ValueError as exc:
        report(key, str(exc))
        return _INVALID
    if isinstance(value, tuple):  # (host, port)
        return Address(*value)
    if spec.kind is Kind.CHOICE:
        return _CHOICE_TYPES[spec.name](str(value))
    return value


def _parse_routes(
    table: Mapping[str, Any], seen: dict[str, str], report: Report, base: Path
) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    inherit: list[str] = []  # routes without a tls key of their own
    for raw_domain, value in table.items():
        key = f"routes.{key_part(raw_domain)}"
        if unquoted_domain(raw_domain, value, key, report):
            continue
        domain = _route_key(raw_domain, key, seen, report)
        fields: dict[str, Any] = {}
        if isinstance(value, str):
            image = check_image(value, key, report)
        elif isinstance(value, dict):
            image, fields = _parse_route_table(value, key, report, base)
        else:
            report(key, f"expected an image reference or a table, got {describe(value)}")
            continue
        if domain is not None:
            _check_path_keys(domain, fields, key, report)
        if domain is not None and image is not None:
            routes[domain] = Route(domain=domain, image=image, **fields)
            if "tls" not in fields:
                inherit.append(domain)
    # A path route without its own tls has its domain's (HTTPS is per domain).
    for key in inherit:
        plain = routes.get(route_domain(key))
        if plain is not None and plain is not routes[key]:
            routes[key] = replace(routes[key], tls=plain.tls)
    return routes


def _check_path_keys(key: str, fields: dict[str, Any], key_path: str, report: Report) -> None:
    """A path route takes its domain's names; only a path route can strip its prefix."""
    domain, path = split_route_key(key)
    if path and fields.get("hosts"):
        report(
            f"{key_path}.hosts",
            f"a path route serves the names of its domain: set hosts on "
            f"routes.{key_part(domain)} (its names lead to its path routes too)",
        )
        del fields["hosts"]
    if not path and fields.get("strip_prefix"):
        report(
            f"{key_path}.strip_prefix",
            f'only a path route (like "{domain}/api") has a prefix to strip',
        )


def _parse_route_table(
    table: Mapping[str, Any], route_key: str, report: Report, base: Path
) -> tuple[str | None, dict[str, Any]]:
    image: str | None = None
    fields: dict[str, Any] = {}
    if "image" not in table:
        report(f"{route_key}.image", "missing; the long form of a route needs an image")
    for leaf, raw in table.items():
        key = f"{route_key}.{key_part(leaf)}"
        if leaf not in _ROUTE_SPECS:
            candidates = [f"{route_key}.{name}" for name in _ROUTE_SPECS]
            report(key, "unknown key" + _hint(leaf, candidates, other_sections=False))
        elif leaf in ("tls", "strip_prefix", "restart"):  # checked by their KeySpec
            value = _convert(_ROUTE_SPECS[leaf], raw, key, report)
            if value is not _INVALID:
                fields[leaf] = value
        elif leaf == "port":
            if isinstance(raw, int) and not isinstance(raw, bool) and 1 <= raw <= 65535:
                fields["port"] = raw
            else:
                report(key, f"expected a port number 1-65535, got {describe(raw)}")
        elif leaf == "env":
            fields["env"] = parse_env(raw, key, report)
        elif leaf == "env_file" or leaf in apps.ROUTE_PARSERS:
            value = _parse_app_key(leaf, raw, key, report, base)
            if value is not apps.INVALID:
                fields[leaf] = value
        elif not isinstance(raw, str):
            report(key, f"expected a string, got {describe(raw)}")
        elif leaf == "image":
            image = check_image(raw, key, report)
        elif leaf == "health_path" and not raw.startswith("/"):
            report(key, f'must start with "/", got {describe(raw)}')
        elif leaf == "health_host" and raw and not is_host(raw):
            report(key, f"expected a host name (optionally with :port), got {describe(raw)}")
        else:
            fields[leaf] = raw
    return image, fields


def _parse_app_key(leaf: str, raw: object, key: str, report: Report, base: Path) -> Any:
    """A key of config_apps (hosts, volumes, ...); apps.INVALID after a report."""
    if leaf == "env_file":
        return apps.parse_env_file(raw, key, report, base)
    value = apps.ROUTE_PARSERS[leaf](raw, key, report)
    if leaf == "volumes" and value is not apps.INVALID:
        return tuple(Volume(*volume) for volume in value)  # type: ignore[attr-defined]
    return value


def _parse_redirects(table: Mapping[str, Any], report: Report) -> dict[str, str]:
    redirects: dict[str, str] = {}
    for raw_name, value in table.items():
        key = f"redirects.{key_part(raw_name)}"
        if unquoted_domain(raw_name, value, key, report):
            continue
        try:
            name = apps.normalize_name(raw_name)
        except ValueError as exc:
            report(key, str(exc))
            continue
        target = apps.parse_redirect_target(value, key, report)
        if isinstance(target, str):
            redirects[name] = target
    return redirects


def _check_names(
    routes: Mapping[str, Route],
    redirects: Mapping[str, str],
    seen: dict[str, str],
    report: Report,
) -> None:
    """A name (a route's domain or host, an external route, a redirect) belongs to one route.

    The domain of path routes ("example.com" of "example.com/api") is theirs, shared with
    the domain's plain route if it has one, and no other route's name or redirect."""
    claimed: dict[str, str] = {}  # domain -> key path of its (first) route
    for key, key_path in sorted(seen.items(), key=lambda item: is_path_route(item[0])):
        claimed.setdefault(route_domain(key), key_path)
    names = [
        (name, f"routes.{key_part(domain)}.hosts[{index}]")
        for domain, route in routes.items()
        for index, name in enumerate(route.hosts)
    ]
    names += [(name, f"redirects.{key_part(name)}") for name in redirects]
    apps.check_names(names, report, claimed)
    served = set(claimed) | {name for route in routes.values() for name in route.hosts}
    apps.check_redirect_loops(redirects, served, report)


def _check_tls_modes(
    routes: Mapping[str, Route], external: Mapping[str, ExternalRoute], report: Report
) -> None:
    """HTTPS is per domain: every route of a domain (plain and path routes) has one tls.

    An external route has no tls key: it is "auto"."""
    first: dict[str, tuple[TlsMode, str]] = {}  # domain -> (mode, key path that set it)
    entries = [(key, route.tls, True) for key, route in routes.items()]
    entries += [(key, TlsMode.AUTO, False) for key in external]
    # Plain routes first: a path route is measured against its domain's plain route.
    for key, mode, managed in sorted(entries, key=lambda entry: is_path_route(entry[0])):
        domain = route_domain(key)
        section = "routes" if managed else "external_routes"
        key_path = f"{section}.{key_part(key)}"
        if domain not in first:
            first[domain] = (mode, key_path)
            continue
        mode0, path0 = first[domain]
        if mode is not mode0:
            what = f'"{mode}"' if managed else 'an external route, "auto",'
            report(
                f"{key_path}.tls" if managed else key_path,
                f'{what} differs from {path0} ("{mode0}"): HTTPS is per domain; give '
                f"every route of {domain} the same tls",
            )


def _parse_external_routes(
    table: Mapping[str, Any], seen: dict[str, str], report: Report
) -> dict[str, ExternalRoute]:
    routes: dict[str, ExternalRoute] = {}
    for raw_domain, value in table.items():
        key = f"external_routes.{key_part(raw_domain)}"
        if unquoted_domain(raw_domain, value, key, report):
            continue
        domain = _route_key(raw_domain, key, seen, report)
        address = _convert(EXTERNAL_ROUTE_KEYS[0], value, key, report)
        if domain is not None and address is not _INVALID:
            routes[domain] = ExternalRoute(domain=domain, address=address)
    return routes


def _route_key(raw: str, key: str, seen: dict[str, str], report: Report) -> str | None:
    """The normalised route key (a domain, or a domain and a path); reports invalid and
    duplicate ones."""
    try:
        route = normalize_route_key(raw)
    except ValueError as exc:
        report(key, str(exc))
        return None
    if route in seen:
        what = "route" if is_path_route(route) else "domain"
        report(key, f'duplicate {what} "{route}": already defined at {seen[route]}')
        return None
    seen[route] = key
    return route


ERROR_PAGES: Final = ("502", "503", "504", "maintenance")
MAX_ERROR_PAGE: Final = 1_000_000  # bytes


def _load_error_pages(server: ServerConfig, path: Path, report: Report) -> ServerConfig:
    """Read server.error_pages: 502.html, 503.html, 504.html and maintenance.html, the ones
    present (at least one), each UTF-8 text of at most MAX_ERROR_PAGE bytes."""
    if not server.error_pages:
        return server
    folder = relative_to_config(path, server.error_pages)
    if not folder.is_dir():
        report("server.error_pages", f"{folder} is not a directory")
        return server
    pages: dict[str, bytes] = {}
    for name in ERROR_PAGES:
        file = folder / f"{name}.html"
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            report("server.error_pages", f"cannot read {file}: {exc.strerror or exc}")
            continue
        if len(data) > MAX_ERROR_PAGE:
            report("server.error_pages", f"{file} is larger than {MAX_ERROR_PAGE} bytes")
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            report("server.error_pages", f"{file} is not UTF-8 text (byte {exc.start})")
            continue
        pages[name] = data
    if not pages:
        expected = ", ".join(f"{name}.html" for name in ERROR_PAGES)
        report("server.error_pages", f"{folder} has none of {expected}")
    return replace(server, error_page_files=pages)


def _check_admin(server: ServerConfig, path: Path, report: Report) -> ServerConfig:
    """Read admin_token_file; refuse an admin API reachable from the network without a token."""
    token = server.admin_token
    if server.admin_token and server.admin_token_file:
        report(
            "server.admin_token_file",
            "set either server.admin_token or server.admin_token_file, not both",
        )
        return server
    if server.admin_token_file:
        # Relative to the config file, so a config and its token file can move together.
        token_path = relative_to_config(path, server.admin_token_file)
        try:
            token = token_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            report("server.admin_token_file", f"cannot read {token_path}: {reason}")
            return server
        if not token:
            report("server.admin_token_file", f"{token_path} is empty")
            return server
    if token and not _TOKEN.fullmatch(token):
        key = "server.admin_token_file" if server.admin_token_file else "server.admin_token"
        report(key, "the token must be printable ASCII without spaces (it is sent in a header)")
    if not token and not is_loopback(server.admin_listen.host):
        report(
            "server.admin_listen",
            f'"{server.admin_listen}" is not a loopback address; set server.admin_token '
            "or server.admin_token_file to expose the admin API",
        )
    if server.admin_listen == server.listen and server.listen.port != 0:
        report("server.admin_listen", f'same address as server.listen ("{server.listen}")')
    return replace(server, admin_token=token)


def _check_tls(tls: TlsConfig, path: Path, report: Report) -> TlsConfig:
    """Read and check the certificate files, the CA bundle and the ACME settings."""
    if not (tls.certificates or tls.acme != AcmeConfig() or tls.hsts):
        return tls
    # imports cryptography: only when needed
    from hotswap.config_tls import check_acme, check_hsts, load_certificates

    pairs = [(files.cert, files.key) for files in tls.certificates]
    loaded = [
        replace(files, certificate=certificate)
        for files, certificate in zip(
            tls.certificates, load_certificates(pairs, path, report), strict=True
        )
        if certificate is not None
    ]
    check_acme(tls.acme.email, tls.acme.ca_bundle, path, report)
    check_hsts(tls.hsts, report)
    return replace(tls, certificates=tuple(loaded))
