"""Path routes in the config: keys like "example.com/api", strip_prefix, and the rules
that tie a path route to its domain (names, HTTPS). Every message names file and key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from hotswap.config import Config, ExternalRoute, Route, TlsMode, parse_config
from hotswap.config_render import config_to_dict
from hotswap.errors import ConfigError

FILE = Path("/etc/hotswap/hotswap.toml")


def parse(text: str) -> Config:
    return parse_config(tomllib.loads(text), FILE)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value.problems


def test_a_path_route_is_a_route_next_to_its_domains_plain_route() -> None:
    config = parse(
        """
        [routes]
        "example.com" = "shop:1"
        [routes."Example.com/api"]
        image = "shop-api:3"
        strip_prefix = true
        [routes."example.com/api/v2"]
        image = "shop-api:4"
        """
    )
    assert set(config.routes) == {"example.com", "example.com/api", "example.com/api/v2"}
    api = config.routes["example.com/api"]
    assert (api.host, api.path, api.strip_prefix) == ("example.com", "/api", True)
    assert config.routes["example.com/api/v2"].strip_prefix is False
    assert (config.routes["example.com"].host, config.routes["example.com"].path) == (
        "example.com",
        "",
    )


def test_a_domain_may_have_path_routes_only() -> None:
    config = parse('[routes]\n"example.com/api" = "api:1"\n"example.com/admin" = "admin:1"\n')
    assert set(config.routes) == {"example.com/api", "example.com/admin"}


def test_external_routes_take_path_keys_too() -> None:
    # The strangler pattern both ways: a new container takes /api off a legacy app, or a
    # legacy app keeps /legacy under a new one.
    config = parse(
        '[routes]\n"example.com/api" = "api:1"\n'
        '[external_routes]\n"example.com" = "127.0.0.1:9000"\n'
        '"example.com/legacy" = "127.0.0.1:9001"\n'
    )
    assert config.external_routes["example.com/legacy"] == ExternalRoute(
        "example.com/legacy", config.external_routes["example.com/legacy"].address
    )
    assert set(config.routes) == {"example.com/api"}


def test_an_invalid_route_path_names_the_file_and_the_key() -> None:
    assert problems_of('[routes]\n"example.com/api/" = "api:1"\n') == [
        f'{FILE}: routes."example.com/api/": invalid route path "/api/": no trailing "/": '
        'write "example.com/api" (it serves /api and every path under /api/)'
    ]
    assert problems_of('[external_routes]\n"example.com/a?b" = "127.0.0.1:9000"\n') == [
        f'{FILE}: external_routes."example.com/a?b": invalid route path "/a?b": a route path '
        'has no query ("?")'
    ]


def test_the_same_path_route_twice_is_an_error() -> None:
    text = """
        [routes]
        "example.com/api" = "api:1"
        "EXAMPLE.com/api" = "api:2"
        [external_routes]
        "example.com./api" = "127.0.0.1:9000"
    """
    assert problems_of(text) == [
        f'{FILE}: routes."EXAMPLE.com/api": duplicate route "example.com/api": already '
        'defined at routes."example.com/api"',
        f'{FILE}: external_routes."example.com./api": duplicate route "example.com/api": '
        'already defined at routes."example.com/api"',
    ]


def test_paths_are_case_sensitive_so_two_cases_are_two_routes() -> None:
    config = parse('[routes]\n"example.com/api" = "a:1"\n"example.com/API" = "b:1"\n')
    assert set(config.routes) == {"example.com/api", "example.com/API"}


def test_hosts_on_a_path_route_are_refused_pointing_at_the_domains_route() -> None:
    text = '[routes."example.com/api"]\nimage = "api:1"\nhosts = ["www.example.com"]\n'
    assert problems_of(text) == [
        f'{FILE}: routes."example.com/api".hosts: a path route serves the names of its '
        'domain: set hosts on routes."example.com" (its names lead to its path routes too)'
    ]


def test_strip_prefix_on_a_plain_route_is_refused() -> None:
    assert problems_of('[routes."example.com"]\nimage = "a:1"\nstrip_prefix = true\n') == [
        f'{FILE}: routes."example.com".strip_prefix: only a path route (like '
        '"example.com/api") has a prefix to strip'
    ]
    assert problems_of('[routes."example.com/api"]\nimage = "a:1"\nstrip_prefix = "yes"\n') == [
        f'{FILE}: routes."example.com/api".strip_prefix: expected a boolean (true or false), '
        'got string "yes"'
    ]


def test_a_path_route_takes_its_domains_tls_unless_it_sets_the_same() -> None:
    config = parse(
        '[routes."example.com"]\nimage = "a:1"\ntls = "off"\n'
        '[routes."example.com/api"]\nimage = "api:1"\n'
    )
    assert config.routes["example.com/api"].tls is TlsMode.OFF
    text = (
        '[routes."example.com"]\nimage = "a:1"\ntls = "off"\n'
        '[routes."example.com/api"]\nimage = "api:1"\ntls = "auto"\n'
        '[routes."other.com/a"]\nimage = "a:1"\n[routes."other.com/b"]\nimage = "b:1"\n'
        'tls = "off"\n'
    )
    assert problems_of(text) == [
        f'{FILE}: routes."example.com/api".tls: "auto" differs from routes."example.com" '
        '("off"): HTTPS is per domain; give every route of example.com the same tls',
        f'{FILE}: routes."other.com/b".tls: "off" differs from routes."other.com/a" ("auto"): '
        "HTTPS is per domain; give every route of other.com the same tls",
    ]


def test_an_off_path_route_under_an_external_route_is_refused() -> None:
    text = (
        '[routes."example.com/api"]\nimage = "api:1"\ntls = "off"\n'
        '[external_routes]\n"example.com" = "127.0.0.1:9000"\n'
    )
    assert problems_of(text) == [
        f'{FILE}: routes."example.com/api".tls: "off" differs from external_routes."example.com" '
        '("auto"): HTTPS is per domain; give every route of example.com the same tls'
    ]


def test_the_domain_of_a_path_route_is_no_other_routes_name_nor_a_redirect() -> None:
    text = (
        '[routes]\n"example.com/api" = "api:1"\n'
        '[routes."shop.com"]\nimage = "shop:1"\nhosts = ["example.com"]\n'
        '[redirects]\n"example.com" = "https://shop.com"\n'
    )
    assert problems_of(text) == [
        f'{FILE}: routes."shop.com".hosts[0]: "example.com" already belongs to '
        'routes."example.com/api": a name belongs to one route',
        f'{FILE}: redirects."example.com": "example.com" already belongs to '
        'routes."example.com/api": a name belongs to one route',
    ]


def test_a_redirect_to_a_domain_with_path_routes_only_is_no_loop() -> None:
    config = parse(
        '[routes]\n"example.com/api" = "api:1"\n'
        '[redirects]\n"www.example.com" = "https://example.com"\n'
    )
    assert config.redirects == {"www.example.com": "https://example.com"}


def test_strip_prefix_alone_changes_no_container_setting() -> None:
    route = Route("example.com/api", "api:1", strip_prefix=True)
    assert route.container_settings() == Route("example.com/api", "api:1")


def test_a_config_with_path_routes_round_trips_through_tomli_w() -> None:
    text = (
        '[routes."example.com"]\nimage = "a:1"\ntls = "off"\nhosts = ["www.example.com"]\n'
        '[routes."example.com/api"]\nimage = "api:1"\nstrip_prefix = true\n'
        '[external_routes]\n"example.com/legacy" = "127.0.0.1:9000"\n'
    )
    assert problems_of(text) == [
        f'{FILE}: external_routes."example.com/legacy": an external route, "auto", differs '
        'from routes."example.com" ("off"): HTTPS is per domain; give every route of '
        "example.com the same tls"
    ]
    config = parse(text.replace('tls = "off"\n', ""))
    again = parse_config(tomllib.loads(tomli_w.dumps(config_to_dict(config))), FILE)
    assert again == config


def test_an_inherited_tls_round_trips() -> None:
    config = parse(
        '[routes."example.com"]\nimage = "a:1"\ntls = "off"\n'
        '[routes."example.com/api"]\nimage = "api:1"\n'
    )
    again = parse_config(tomllib.loads(tomli_w.dumps(config_to_dict(config))), FILE)
    assert again == config
