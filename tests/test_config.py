"""The config loader: defaults, every bad-config message, round trips, example and docs."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from hotswap.config import (
    AccessLogFormat,
    Address,
    Config,
    DeployConfig,
    DockerConfig,
    DrainMode,
    ExternalRoute,
    HttpParser,
    NetworkMode,
    PullPolicy,
    ReadinessMode,
    RestartPolicy,
    Route,
    ServerConfig,
    TlsMode,
    WebSocketDrain,
    default_config_path,
    load_config,
    parse_config,
)
from hotswap.config_render import config_to_dict, render_default_config
from hotswap.config_schema import SCHEMA, SECTION_KEYS, Kind
from hotswap.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"
FILE = Path("/etc/hotswap/hotswap.toml")


def problems_of(text: str, path: Path = FILE) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(text), path)
    return caught.value.problems


def only_problem(text: str, path: Path = FILE) -> str:
    problems = problems_of(text, path)
    assert len(problems) == 1, problems
    return problems[0]


def parse(text: str, path: Path = FILE) -> Config:
    return parse_config(tomllib.loads(text), path)


# ------------------------------------------------------------------ defaults and values


def test_empty_file_gives_the_defaults() -> None:
    assert parse("") == Config(path=FILE)


def test_every_key_is_parsed_into_its_type() -> None:
    config = parse(
        """
        [server]
        listen = "[::1]:0"
        admin_listen = "localhost:9999"
        max_connections = 5
        max_body_size = "1MiB"
        header_timeout = "1m30s"
        idle_timeout = "500ms"
        upstream_connect_timeout = "2h"
        upstream_response_timeout = "1.5s"
        [docker]
        host = "unix:///run/docker.sock"
        network_mode = "host"
        [deploy]
        pull_policy = "always"
        readiness_mode = "http"
        drain_mode = "delay"
        drain_delay = 0
        watch_images = false
        websocket_drain = "wait"
        """
    )
    assert config.server == ServerConfig(
        listen=Address("::1", 0),
        admin_listen=Address("localhost", 9999),
        max_connections=5,
        max_body_size=1_048_576,
        header_timeout=90.0,
        idle_timeout=0.5,
        upstream_connect_timeout=7200.0,
        upstream_response_timeout=1.5,
    )
    assert config.docker == DockerConfig("unix:///run/docker.sock", NetworkMode.HOST)
    assert config.deploy == DeployConfig(
        pull_policy=PullPolicy.ALWAYS,
        readiness_mode=ReadinessMode.HTTP,
        drain_mode=DrainMode.DELAY,
        drain_delay=0.0,
        watch_images=False,
        websocket_drain=WebSocketDrain.WAIT,
    )


def test_routes_short_and_long_form_and_external_routes() -> None:
    config = parse(
        """
        [routes]
        "App.Example.com." = "myapp:latest"
        [routes."api.example.com:8443"]
        image = "myapi:1.4"
        port = 8080
        env = { RAILS_ENV = "production" }
        health_path = "/healthz"
        health_host = "internal.example.com"
        [external_routes]
        "Legacy.example.com" = "127.0.0.1:9000"
        "v6.example.com" = "[::1]:9001"
        """
    )
    assert config.routes == {
        "app.example.com": Route("app.example.com", "myapp:latest"),
        "api.example.com": Route(
            "api.example.com",
            "myapi:1.4",
            port=8080,
            env={"RAILS_ENV": "production"},
            health_path="/healthz",
            health_host="internal.example.com",
        ),
    }
    assert config.external_routes == {
        "legacy.example.com": ExternalRoute("legacy.example.com", Address("127.0.0.1", 9000)),
        "v6.example.com": ExternalRoute("v6.example.com", Address("::1", 9001)),
    }


def test_default_config_path_prefers_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HOTSWAP_CONFIG", raising=False)
    assert default_config_path() == tmp_path / ".config" / "hotswap" / "hotswap.toml"
    monkeypatch.setenv("HOTSWAP_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert default_config_path() == tmp_path / "elsewhere.toml"


# --------------------------------------------------------------- bad-config messages


def test_enumeration_names_the_key_and_the_allowed_values() -> None:
    assert only_problem('[deploy]\ndrain_mode = "sometimes"') == (
        f'{FILE}: deploy.drain_mode: expected one of "auto", "inflight", "delay", '
        'got string "sometimes"'
    )


def test_enumeration_suggests_a_close_value() -> None:
    assert only_problem('[deploy]\npull_policy = "if-tag-change"') == (
        f'{FILE}: deploy.pull_policy: expected one of "always", "if-not-present", '
        '"if-tag-changed", got string "if-tag-change" (did you mean "if-tag-changed"?)'
    )


def test_unknown_key_suggests_the_closest_one() -> None:
    assert only_problem('[deploy]\ndrain_timout = "1s"') == (
        f"{FILE}: deploy.drain_timout: unknown key; did you mean deploy.drain_timeout?"
    )


def test_key_in_the_wrong_section_suggests_its_section() -> None:
    assert only_problem('[server]\ndrain_timeout = "1s"') == (
        f"{FILE}: server.drain_timeout: unknown key; did you mean deploy.drain_timeout?"
    )
    assert only_problem('listen = "127.0.0.1:1"') == (
        f"{FILE}: listen: unknown key; did you mean server.listen?"
    )


def test_unknown_section_and_unknown_key_without_a_close_match() -> None:
    assert problems_of('[serve]\nx = 1\n[deploy]\ncolour = "blue"') == [
        f"{FILE}: serve: unknown key; did you mean server?",
        f"{FILE}: deploy.colour: unknown key",
    ]


def test_section_must_be_a_table() -> None:
    assert only_problem("server = 1") == f"{FILE}: server: expected a table, got integer 1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[server]\nmax_connections = "10"',
            'server.max_connections: expected an integer, got string "10"',
        ),
        (
            "[server]\nmax_connections = true",
            "server.max_connections: expected an integer, got boolean true",
        ),
        ("[server]\nmax_connections = 0", "server.max_connections: must be at least 1, got 0"),
        (
            '[deploy]\nwatch_images = "yes"',
            'deploy.watch_images: expected a boolean (true or false), got string "yes"',
        ),
        ("[docker]\nhost = 2375", "docker.host: expected a string, got integer 2375"),
        ("[server]\nadmin_token = []", "server.admin_token: expected a string, got an array"),
        (
            "[server]\nheader_timeout = 10",
            'server.header_timeout: expected a duration like "30s" or "500ms", got integer 10',
        ),
        (
            '[server]\nheader_timeout = "10"',
            'server.header_timeout: invalid duration "10": a unit is required, '
            'like "10s" or "10ms"',
        ),
        (
            '[server]\nheader_timeout = "0s"',
            'server.header_timeout: must be greater than 0, got string "0s"',
        ),
        (
            "[deploy]\ndrain_timeout = 1.5",
            'deploy.drain_timeout: expected a duration like "30s" or "500ms", got float 1.5',
        ),
        (
            '[server]\nmax_body_size = "10 potatoes"',
            'server.max_body_size: invalid size "10 potatoes": expected a number of bytes or a '
            "number with a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), "
            'like "512KB", "10MB" or "1MiB"',
        ),
        (
            "[server]\nmax_body_size = 1.5",
            'server.max_body_size: expected a size like "10MB" or 0, got float 1.5',
        ),
        (
            "[server]\nmax_body_size = -1",
            "server.max_body_size: invalid size -1: must not be negative",
        ),
        (
            "[docker]\nnetwork_mode = 1",
            'docker.network_mode: expected one of "bridge", "host", got integer 1',
        ),
    ],
)
def test_type_and_value_errors_name_the_key_and_the_expected_type(text: str, message: str) -> None:
    assert only_problem(text) == f"{FILE}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[server]\nlisten = "localhost"',
            'server.listen: invalid address "localhost": expected host:port, '
            'like "127.0.0.1:8080" or "[::1]:8080"',
        ),
        (
            '[server]\nlisten = "0.0.0.0:70000"',
            'server.listen: invalid address "0.0.0.0:70000": port must be 0-65535',
        ),
        (
            '[external_routes]\n"a.example" = "127.0.0.1:0"',
            'external_routes."a.example": invalid address "127.0.0.1:0": port must be 1-65535',
        ),
        (
            '[external_routes]\n"a.example" = "::1:80"',
            'external_routes."a.example": invalid address "::1:80": write an IPv6 address in '
            'brackets, like "[::1]:8080"',
        ),
        (
            '[external_routes]\n"a.example" = 9000',
            'external_routes."a.example": expected an address like "127.0.0.1:8080", '
            "got integer 9000",
        ),
    ],
)
def test_address_errors(text: str, message: str) -> None:
    assert only_problem(text) == f"{FILE}: {message}"


def test_listen_addresses_accept_port_zero() -> None:
    config = parse('[server]\nlisten = "127.0.0.1:0"\nadmin_listen = "127.0.0.1:0"')
    assert config.server.listen == Address("127.0.0.1", 0)
    assert config.server.admin_listen == Address("127.0.0.1", 0)


def test_admin_listen_equal_to_listen_is_refused() -> None:
    assert only_problem('[server]\nlisten = "127.0.0.1:9090"') == (
        f'{FILE}: server.admin_listen: same address as server.listen ("127.0.0.1:9090")'
    )


def test_invalid_domain() -> None:
    assert only_problem('[routes]\n"bad_domain" = "img"') == (
        f'{FILE}: routes.bad_domain: invalid domain "bad_domain": each dot-separated label '
        "must be 1-63 letters, digits or hyphens, not starting or ending with a hyphen"
    )


def test_same_domain_twice_after_normalisation_is_an_error() -> None:
    text = """
        [routes]
        "App.Example.com" = "img"
        "app.example.com." = "img2"
        [external_routes]
        "APP.example.com:8080" = "127.0.0.1:9000"
    """
    assert problems_of(text) == [
        f'{FILE}: routes."app.example.com.": duplicate domain "app.example.com": '
        'already defined at routes."App.Example.com"',
        f'{FILE}: external_routes."APP.example.com:8080": duplicate domain "app.example.com": '
        'already defined at routes."App.Example.com"',
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '"x.example" = 5',
            'routes."x.example": expected an image reference or a table, got integer 5',
        ),
        (
            '"x.example" = ""',
            'routes."x.example": expected an image reference like "myapp:latest", got string ""',
        ),
        (
            '[routes."x.example"]\nimage = "a"\nport = "80"',
            'routes."x.example".port: expected a port number 1-65535, got string "80"',
        ),
        (
            '[routes."x.example"]\nimage = "a"\nport = 0',
            'routes."x.example".port: expected a port number 1-65535, got integer 0',
        ),
        (
            '[routes."x.example"]\nimage = "a"\nenv = { DEBUG = 1 }',
            'routes."x.example".env.DEBUG: expected a string, got integer 1',
        ),
        (
            '[routes."x.example"]\nimage = "a"\nenv = "DEBUG=1"',
            'routes."x.example".env: expected a table of strings, got string "DEBUG=1"',
        ),
        (
            '[routes."x.example"]\nimage = "a"\nhealth_path = "up"',
            'routes."x.example".health_path: must start with "/", got string "up"',
        ),
        (
            '[routes."x.example"]\nimage = "a"\nhealth_host = "not a host"',
            'routes."x.example".health_host: expected a host name (optionally with :port), '
            'got string "not a host"',
        ),
        (
            '[routes."x.example"]\nimage = 3',
            'routes."x.example".image: expected a string, got integer 3',
        ),
        (
            '[routes."x.example"]\nport = 80',
            'routes."x.example".image: missing; the long form of a route needs an image',
        ),
    ],
)
def test_route_errors(text: str, message: str) -> None:
    assert only_problem("[routes]\n" + text) == f"{FILE}: {message}"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[routes]\napp.example.com = "img"', "routes.app"),
        ('[routes.app.example.com]\nimage = "img"', "routes.app"),
        ('[external_routes]\nlegacy.example.com = "127.0.0.1:9000"', "external_routes.legacy"),
    ],
)
def test_unquoted_domain_gets_a_hint(text: str, key: str) -> None:
    domain = "app.example.com" if key == "routes.app" else "legacy.example.com"
    assert only_problem(text) == (
        f'{FILE}: {key}: TOML splits unquoted keys at dots; write the domain in quotes: "{domain}"'
    )


def test_unknown_route_key_suggests_the_closest_one() -> None:
    assert problems_of('[routes."api.example.com"]\nimgae = "x"') == [
        f'{FILE}: routes."api.example.com".image: missing; the long form of a route needs an image',
        f'{FILE}: routes."api.example.com".imgae: unknown key; did you mean '
        'routes."api.example.com".image?',
    ]


def test_all_problems_are_reported_at_once() -> None:
    problems = problems_of(
        """
        [server]
        listen = "nope"
        [deploy]
        drain_mode = "sometimes"
        drain_timout = "1s"
        [routes]
        "bad_domain" = "img"
        """
    )
    assert [line.split(": ")[1] for line in problems] == [
        "server.listen",
        "deploy.drain_mode",
        "deploy.drain_timout",
        "routes.bad_domain",
    ]


# ----------------------------------------------------------------------- admin token


def test_non_loopback_admin_listen_without_token_is_refused() -> None:
    assert only_problem('[server]\nadmin_listen = "0.0.0.0:9090"') == (
        f'{FILE}: server.admin_listen: "0.0.0.0:9090" is not a loopback address; set '
        "server.admin_token or server.admin_token_file to expose the admin API"
    )


def test_non_loopback_admin_listen_with_token_is_accepted() -> None:
    config = parse('[server]\nadmin_listen = "[::]:9090"\nadmin_token = "s3cret"')
    assert config.server.admin_listen == Address("::", 9090)
    assert config.server.admin_token == "s3cret"


def test_admin_token_and_token_file_together_are_refused() -> None:
    text = '[server]\nadmin_token = "a"\nadmin_token_file = "token"'
    assert only_problem(text) == (
        f"{FILE}: server.admin_token_file: set either server.admin_token or "
        "server.admin_token_file, not both"
    )


def test_admin_token_file_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("  s3cret\n")
    config = parse(
        '[server]\nadmin_listen = "0.0.0.0:9090"\nadmin_token_file = "token"',
        tmp_path / "hotswap.toml",
    )
    assert config.server.admin_token == "s3cret"
    assert config.server.admin_token_file == "token"


def test_missing_admin_token_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "hotswap.toml"
    assert only_problem('[server]\nadmin_token_file = "missing"', path) == (
        f"{path}: server.admin_token_file: cannot read {tmp_path / 'missing'}: "
        "No such file or directory"
    )


def test_empty_admin_token_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    path = tmp_path / "hotswap.toml"
    assert only_problem('[server]\nadmin_token_file = "token"', path) == (
        f"{path}: server.admin_token_file: {tmp_path / 'token'} is empty"
    )


def test_admin_token_must_fit_in_a_header() -> None:
    assert only_problem('[server]\nadmin_token = "two words"') == (
        f"{FILE}: server.admin_token: the token must be printable ASCII without spaces "
        "(it is sent in a header)"
    )


# ------------------------------------------------------------------------ load_config


def test_load_config_sets_the_path(tmp_path: Path) -> None:
    path = tmp_path / "hotswap.toml"
    path.write_text('[routes]\n"app.example.com" = "myapp:1"\n')
    config = load_config(path)
    assert config.path == path
    assert list(config.routes) == ["app.example.com"]


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        f"{path}: no such file; create it with: hotswap config init {path}"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nlisten = \n", "line 2, column 10: invalid TOML: Invalid value"),
        ('[server]\nlisten = "x', "line 2, column 12: invalid TOML: Unterminated string"),
        (
            "[server]\n[server]\n",
            "line 2, column 8: invalid TOML: Cannot declare ('server',) twice",
        ),
        ("[server]\nlisten = ", "line 2, column 10: invalid TOML: Invalid value"),
    ],
)
def test_toml_syntax_error_shows_file_line_and_column(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "hotswap.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [f"{path}: {message}"]


def test_load_config_wraps_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert caught.value.problems == [f"{tmp_path}: cannot read: Is a directory"]
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError) as caught:
        load_config(binary)
    assert caught.value.problems == [f"{binary}: not UTF-8 text (byte 0)"]


# ----------------------------------------------------------------------- round trips


def round_trip(config: Config, path: Path = FILE) -> Config:
    return parse_config(tomllib.loads(tomli_w.dumps(config_to_dict(config))), path)


def test_defaults_round_trip_through_tomli_w() -> None:
    assert round_trip(Config()) == Config(path=FILE)


def test_config_with_routes_round_trips_through_tomli_w() -> None:
    config = Config(
        path=FILE,
        server=ServerConfig(
            listen=Address("::", 0),
            admin_listen=Address("0.0.0.0", 9091),
            admin_token="tok",
            max_body_size=1536,
            header_timeout=0.25,
            idle_timeout=90.0,
        ),
        docker=DockerConfig(network_mode=NetworkMode.HOST),
        deploy=DeployConfig(drain_mode=DrainMode.INFLIGHT, drain_delay=0.0, watch_images=False),
        routes={
            "app.example.com": Route("app.example.com", "myapp:latest"),
            "api.example.com": Route(
                "api.example.com",
                "myapi:1.4",
                port=8080,
                env={"A": "1", "B C": "x"},
                health_path="/up2",
                health_host="h.example.com",
            ),
        },
        external_routes={
            "legacy.example.com": ExternalRoute("legacy.example.com", Address("::1", 9000)),
        },
    )
    assert round_trip(config) == config


def test_config_with_token_file_round_trips(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    path = tmp_path / "hotswap.toml"
    config = parse('[server]\nadmin_token_file = "token"', path)
    assert round_trip(config, path) == config


def test_rendered_default_config_loads_as_the_defaults() -> None:
    assert parse(render_default_config()) == Config(path=FILE)


def test_rendered_default_config_uncommented_keys_are_the_defaults() -> None:
    # Uncommenting any `# key = value` line of a section keeps the defaults.
    lines = []
    for line in render_default_config().splitlines():
        match = re.fullmatch(r"# (\w+ = .*)", line)
        lines.append(match[1] if match and "[routes" not in line else line)
    text = "\n".join(lines).split("\n[routes]")[0]
    assert len(re.findall(r"^\w+ = ", text, re.MULTILINE)) == sum(map(len, SECTION_KEYS.values()))
    assert parse(text) == Config(path=FILE)


# ------------------------------------------------------- schema, example and the docs


def flatten(data: dict[str, Any]) -> dict[str, Any]:
    """Every section key's value by its dotted name ("tls.acme.email"); subtables skipped."""
    flat = {}
    for section, specs in SECTION_KEYS.items():
        table = data
        for part in section.split("."):
            table = table[part]
        flat.update({spec.name: table[spec.leaf] for spec in specs})
    return flat


def test_schema_covers_every_dataclass_field_with_its_default() -> None:
    defaults = flatten(config_to_dict(Config()))
    section_specs = [spec for specs in SECTION_KEYS.values() for spec in specs]
    assert {spec.name: spec.default for spec in section_specs} == defaults
    route_fields = {f.name for f in dataclasses.fields(Route)} - {"domain"}
    assert {spec.leaf for spec in SCHEMA if spec.section == "routes"} - {"<domain>"} == (
        route_fields
    )


def test_schema_choices_are_the_enumerations() -> None:
    enums = {
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
    choices = {spec.name: spec.choices for spec in SCHEMA if spec.kind is Kind.CHOICE}
    assert choices == {name: tuple(member.value for member in enum) for name, enum in enums.items()}


def test_every_key_has_a_meaning_and_an_effect() -> None:
    for spec in SCHEMA:
        assert spec.meaning.endswith((".", ")")), spec.name
        assert spec.effect in ("start-up", "reload", "next deploy")


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert set(config.routes) == {"app.example.com", "api.example.com", "app.example.com/api"}
    assert config.routes["app.example.com/api"].strip_prefix
    assert config.routes["api.example.com"].env == {"RAILS_ENV": "production"}
    assert set(config.external_routes) == {"legacy.example.com"}
    assert config.redirects == {"old.example.com": "https://app.example.com"}
    empty = dataclasses.replace(config, routes={}, external_routes={}, redirects={})
    assert empty == Config(path=EXAMPLE)


def test_example_config_mentions_every_key() -> None:
    text = EXAMPLE.read_text()
    for section in (
        "server",
        "docker",
        "deploy",
        "tls",
        "tls.acme",
        "routes",
        "external_routes",
        "redirects",
    ):
        assert f"[{section}]" in text, section
    for spec in SCHEMA:
        if spec.leaf != "<domain>":
            assert re.search(rf"^#?\s*{spec.leaf} = ", text, re.MULTILINE), spec.name


def test_config_docs_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-config-docs"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_config_docs_mention_every_key() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for spec in SCHEMA:
        assert f"`{spec.name}`" in text
