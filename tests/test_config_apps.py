"""The route keys that run real apps (hosts, env_file, volumes, networks, command, user,
memory, cpus, restart) and [redirects]: parsed values, and every refusal naming its key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from hotswap.config import (
    Config,
    RestartPolicy,
    Route,
    Volume,
    parse_config,
)
from hotswap.config_apps import normalize_name, wildcard_matches
from hotswap.config_render import config_to_dict
from hotswap.errors import ConfigError

FILE = Path("/etc/hotswap/hotswap.toml")
APP = '[routes."app.example.com"]\nimage = "myapp:1"\n'


def parse(text: str) -> Config:
    return parse_config(tomllib.loads(text), FILE)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value.problems


def test_every_app_key_is_parsed_into_its_type() -> None:
    config = parse(
        APP
        + """
hosts = ["www.App.example.com", "*.app.example.com"]
env_file = "app.env"
volumes = ["app-data:/data", "/srv/uploads:/uploads:ro", "/srv/cache/:/cache:rw"]
networks = ["backend", "db_net"]
command = ["bin/rails", "server", "-p", "3000"]
user = "1000:1000"
memory = "512MB"
cpus = 1.5
restart = "on-failure"
[redirects]
"Old.example.com" = "HTTPS://App.example.com/"
"*.old.example.com" = "http://app.example.com:8080"
"""
    )
    route = config.routes["app.example.com"]
    assert route.hosts == ("www.app.example.com", "*.app.example.com")
    assert route.env_file == "/etc/hotswap/app.env"  # relative to the config file
    assert route.volumes == (
        Volume("app-data", "/data"),
        Volume("/srv/uploads", "/uploads", read_only=True),
        Volume("/srv/cache/", "/cache"),
    )
    assert [v.is_bind for v in route.volumes] == [False, True, True]
    assert route.networks == ("backend", "db_net")
    assert route.command == ("bin/rails", "server", "-p", "3000")
    assert route.user == "1000:1000"
    assert route.memory == 512_000_000
    assert route.cpus == 1.5
    assert route.restart is RestartPolicy.ON_FAILURE
    assert config.redirects == {
        "old.example.com": "https://app.example.com",
        "*.old.example.com": "http://app.example.com:8080",
    }


def test_the_defaults_run_the_image_as_it_is_with_restart_unless_stopped() -> None:
    route = parse(APP).routes["app.example.com"]
    assert route == Route("app.example.com", "myapp:1")
    assert (route.memory, route.cpus, route.user, route.command) == (0, 0.0, "", ())
    assert route.restart is RestartPolicy.UNLESS_STOPPED
    assert parse(APP + 'memory = ""\ncpus = 0').routes["app.example.com"] == route


def test_app_keys_and_redirects_round_trip_through_tomli_w() -> None:
    config = parse(
        APP + 'hosts = ["*.app.example.com"]\nenv_file = "/e/app.env"\nvolumes = ["dd:/data:ro"]\n'
        'networks = ["n"]\ncommand = ["a"]\nuser = "app"\nmemory = "1GiB"\ncpus = 2\n'
        'restart = "no"\n[redirects]\n"old.example.com" = "https://app.example.com"\n'
    )
    again = parse_config(tomllib.loads(tomli_w.dumps(config_to_dict(config))), FILE)
    assert again == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'hosts = "www.app.example.com"',
            'routes."app.example.com".hosts: expected an array of strings like '
            '["www.example.com", "*.example.com"], got string "www.app.example.com"',
        ),
        (
            'hosts = ["www..example.com"]',
            'routes."app.example.com".hosts[0]: invalid domain "www..example.com": each '
            "dot-separated label must be 1-63 letters, digits or hyphens, not starting or ending "
            "with a hyphen",
        ),
        (
            'hosts = ["a.*.example.com"]',
            'routes."app.example.com".hosts[0]: invalid name "a.*.example.com": a wildcard is "*." '
            'followed by a domain, like "*.example.com"',
        ),
        ("env_file = 3", 'routes."app.example.com".env_file: expected a path, got integer 3'),
        (
            'volumes = ["data:/data", "./uploads:/uploads"]',
            'routes."app.example.com".volumes[1]: "./uploads" is neither a volume name (letters, '
            'digits, "_", ".", "-") nor an absolute path: bind-mount paths are absolute',
        ),
        (
            'volumes = ["data:data"]',
            'routes."app.example.com".volumes[0]: the container path must be absolute and not "/", '
            'got "data"',
        ),
        (
            'volumes = ["data:/data/.."]',  # Docker cleans it to "/", and refuses that
            'routes."app.example.com".volumes[0]: the container path must be absolute and not "/", '
            'got "/data/.."',
        ),
        (
            'volumes = ["a1:/data", "/srv:/srv/../data/."]',  # the same mount point for Docker
            'routes."app.example.com".volumes[1]: /data is mounted already by '
            'routes."app.example.com".volumes[0]',
        ),
        (
            'volumes = ["data:/data:z"]',
            'routes."app.example.com".volumes[0]: the mode must be "ro" or "rw", got "z"',
        ),
        (
            'volumes = ["data"]',
            'routes."app.example.com".volumes[0]: expected "source:/path[:ro]", got string "data"',
        ),
        (
            'volumes = ["a1:/data", "/srv:/data/"]',
            'routes."app.example.com".volumes[1]: /data is mounted already by '
            'routes."app.example.com".volumes[0]',
        ),
        (
            'networks = ["backend", "host"]',
            'routes."app.example.com".networks[1]: "host" is not a user-defined network (create '
            "one: docker network create NAME)",
        ),
        (
            'networks = ["back end"]',
            'routes."app.example.com".networks[0]: invalid network name string "back end"',
        ),
        ('networks = ["b", "b"]', 'routes."app.example.com".networks[1]: "b" is listed twice'),
        (
            'command = "rails server"',
            'routes."app.example.com".command: expected an array of strings like ["bin/rails", '
            '"server"], got string "rails server"',
        ),
        (
            'command = ["", "x"]',
            'routes."app.example.com".command: the program (the first element) must not be empty',
        ),
        (
            'user = "app user"',
            'routes."app.example.com".user: expected "user", "uid", "user:group" or "uid:gid", '
            'got string "app user"',
        ),
        (
            'memory = "1MB"',
            'routes."app.example.com".memory: must be at least 6MiB (Docker\'s minimum), got '
            'string "1MB"',
        ),
        (
            "memory = true",
            'routes."app.example.com".memory: expected a size like "512MB", or "" for no limit, '
            "got boolean true",
        ),
        (
            'cpus = "2"',
            'routes."app.example.com".cpus: expected a number of CPUs like 1.5, or 0 for no limit, '
            'got string "2"',
        ),
        (
            "cpus = nan",  # TOML has nan and inf; Docker has neither
            'routes."app.example.com".cpus: expected a number of CPUs like 1.5, or 0 for no limit, '
            "got float nan",
        ),
        (
            "cpus = inf",
            'routes."app.example.com".cpus: expected a number of CPUs like 1.5, or 0 for no limit, '
            "got float inf",
        ),
        (
            "cpus = 0.001",
            'routes."app.example.com".cpus: must be 0 (no limit) or at least 0.01, got float 0.001',
        ),
        (
            'restart = "on_failure"',
            'routes."app.example.com".restart: expected one of "no", "on-failure", '
            '"unless-stopped", "always", got string "on_failure" (did you mean "on-failure"?)',
        ),
    ],
)
def test_each_invalid_app_key_is_refused_naming_the_file_and_the_key(
    text: str, message: str
) -> None:
    assert problems_of(APP + text) == [f"{FILE}: {message}"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("app.example.com", 'expected an origin starting with "https://" or "http://"'),
        ("ftp://app.example.com", 'expected an origin starting with "https://" or "http://"'),
        (
            "https://app.example.com/new",
            "expected an origin without a path (the request's path and query are kept)",
        ),
        (
            "https://app.example.com?x=1",
            "expected an origin without a path (the request's path and query are kept)",
        ),
        ("https://u:p@app.example.com", "expected an origin without user information"),
    ],
)
def test_a_redirect_target_must_be_an_origin(target: str, message: str) -> None:
    text = f'[redirects]\n"old.example.com" = "{target}"'
    assert problems_of(text) == [
        f'{FILE}: redirects."old.example.com": {message}, got string "{target}"'
    ]


def test_a_redirect_that_would_loop_is_refused() -> None:
    text = '[redirects]\n"old.example.com" = "https://old.example.com"\n'
    text += '"*.x.example.com" = "https://a.x.example.com"\n'
    assert problems_of(text) == [
        f'{FILE}: redirects."old.example.com": "https://old.example.com" is served by this '
        "redirect itself: it would loop",
        f'{FILE}: redirects."*.x.example.com": "https://a.x.example.com" is served by this '
        "redirect itself: it would loop",
    ]


def test_redirects_that_send_each_other_back_are_refused() -> None:
    text = '[redirects]\n"a.example.com" = "https://b.example.com"\n'
    text += '"b.example.com" = "https://c.example.com"\n"*.example.com" = "https://a.example.com"\n'
    text += '"d.example.com" = "https://a.example.com"\n'  # leads into the loop, is not in it
    assert problems_of(text) == [
        f'{FILE}: redirects."a.example.com": "https://b.example.com" is redirected back to '
        'this name by redirects."b.example.com", redirects."*.example.com": it would loop',
        f'{FILE}: redirects."b.example.com": "https://c.example.com" is redirected back to '
        'this name by redirects."*.example.com", redirects."a.example.com": it would loop',
        f'{FILE}: redirects."*.example.com": "https://a.example.com" is redirected back to '
        'this name by redirects."a.example.com", redirects."b.example.com": it would loop',
    ]


def test_a_wildcard_redirect_to_a_name_a_route_serves_is_no_loop() -> None:
    # Every other subdomain to www: the exact name wins over the wildcard, as in the proxy.
    text = APP + 'hosts = ["www.example.com"]\n[routes."api.example.com"]\nimage = "api:1"\n'
    text += '[redirects]\n"*.example.com" = "https://www.example.com"\n'
    text += '"old.example.com" = "https://api.example.com"\n'
    assert parse(text).redirects == {
        "*.example.com": "https://www.example.com",
        "old.example.com": "https://api.example.com",
    }


def test_a_name_belongs_to_one_route() -> None:
    text = (
        '[routes]\n"api.example.com" = "api:1"\n'
        + APP
        + 'hosts = ["www.app.example.com", "api.example.com", "app.example.com", '
        '"*.app.example.com"]\n'
        + '[routes."other.example.com"]\nimage = "o:1"\nhosts = ["*.app.example.com", '
        '"legacy.example.com"]\n'
        + '[external_routes]\n"legacy.example.com" = "127.0.0.1:9000"\n'
        + '[redirects]\n"www.app.example.com" = "https://app.example.com"\n'
    )
    assert problems_of(text) == [
        f'{FILE}: routes."app.example.com".hosts[1]: "api.example.com" already belongs to '
        'routes."api.example.com": a name belongs to one route',
        f'{FILE}: routes."app.example.com".hosts[2]: "app.example.com" already belongs to '
        'routes."app.example.com": a name belongs to one route',
        f'{FILE}: routes."other.example.com".hosts[0]: "*.app.example.com" already belongs to '
        'routes."app.example.com".hosts[3]: a name belongs to one route',
        f'{FILE}: routes."other.example.com".hosts[1]: "legacy.example.com" already belongs to '
        'external_routes."legacy.example.com": a name belongs to one route',
        f'{FILE}: redirects."www.app.example.com": "www.app.example.com" already belongs to '
        'routes."app.example.com".hosts[0]: a name belongs to one route',
    ]


def test_networks_are_refused_in_host_network_mode() -> None:
    text = '[docker]\nnetwork_mode = "host"\n' + APP + 'networks = ["backend"]'
    assert problems_of(text) == [
        f'{FILE}: routes."app.example.com".networks: needs docker.network_mode = "bridge": '
        "a container on the host network cannot join other networks"
    ]


def test_a_wildcard_matches_exactly_one_more_label() -> None:
    wildcard = normalize_name("*.App.example.com")
    assert wildcard == "*.app.example.com"
    assert wildcard_matches(wildcard, "www.app.example.com")
    assert not wildcard_matches(wildcard, "a.b.app.example.com")
    assert not wildcard_matches(wildcard, "app.example.com")
