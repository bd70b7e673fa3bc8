"""What the config asks of TLS: files, names switched off, ACME orders."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tls_helpers import ThrowawayCA

from hotswap.config import Config, parse_config
from hotswap.tls.plan import CertificateOrder, plan_tls


def parse(text: str, folder: Path) -> Config:
    return parse_config(tomllib.loads(text), folder / "hotswap.toml")


ACME = """
[tls]
listen = "0.0.0.0:443"
{certificates}
[tls.acme]
email = "ops@example.com"
"""


def test_every_auto_route_not_covered_by_a_file_gets_an_acme_order(tmp_path: Path) -> None:
    issued = ThrowawayCA(tmp_path).issue("*.example.com")
    text = ACME.format(
        certificates=f'certificates = [{{ cert = "{issued.cert}", key = "{issued.key}" }}]'
    )
    config = parse(
        text
        + """
        [routes]
        "shop.example.com" = "shop:1"      # the wildcard file covers it
        "example.com" = "site:1"            # the wildcard does not cover the bare domain
        [routes."plain.example.org"]
        image = "plain:1"
        tls = "off"
        [external_routes]
        "legacy.example.org" = "127.0.0.1:9000"
        """,
        tmp_path,
    )
    plan = plan_tls(config)
    assert [c.names for c in plan.static] == [("*.example.com",)]
    assert plan.disabled == {"plain.example.org"}
    assert plan.orders == {
        "example.com": CertificateOrder("example.com", ("example.com",)),
        "legacy.example.org": CertificateOrder("legacy.example.org", ("legacy.example.org",)),
    }
    assert set(plan.domains) == {
        "shop.example.com",
        "example.com",
        "plain.example.org",
        "legacy.example.org",
    }
    assert plan.acme is not None and plan.acme.email == "ops@example.com"


def test_acme_needs_an_email_and_an_https_listener(tmp_path: Path) -> None:
    routes = '\n[routes]\n"app.example.com" = "app:1"\n'
    no_listener = parse('[tls.acme]\nemail = "ops@example.com"' + routes, tmp_path)
    no_email = parse('[tls]\nlisten = "0.0.0.0:443"' + routes, tmp_path)
    assert plan_tls(no_listener).orders == {}
    assert plan_tls(no_listener).acme is None
    assert plan_tls(no_email).orders == {}
    assert plan_tls(parse(ACME.format(certificates="") + routes, tmp_path)).orders == {
        "app.example.com": CertificateOrder("app.example.com", ("app.example.com",))
    }


def test_the_ca_bundle_is_relative_to_the_config_file(tmp_path: Path) -> None:
    ThrowawayCA(tmp_path).ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = parse(ACME.format(certificates="") + 'ca_bundle = "ca.pem"\n', tmp_path)
    plan = plan_tls(config)
    assert plan.acme is not None
    assert plan.acme.ca_bundle == str(tmp_path / "ca.pem")


def test_a_domain_and_its_path_routes_share_one_acme_order(tmp_path: Path) -> None:
    # Certificates are per host name: a path route's domain is its plain route's, and the
    # order keeps the plain route's extra names whatever the order of the keys.
    config = parse(
        ACME.format(certificates="")
        + """
        [routes]
        "example.com/api" = "api:1"
        "example.com/admin" = "admin:1"
        [routes."example.com"]
        image = "site:1"
        hosts = ["www.example.com"]
        [external_routes]
        "other.org/legacy" = "127.0.0.1:9000"
        """,
        tmp_path,
    )
    plan = plan_tls(config)
    assert plan.orders == {
        "example.com": CertificateOrder("example.com", ("example.com", "www.example.com")),
        "other.org": CertificateOrder("other.org", ("other.org",)),
    }
    assert plan.domains == ("example.com", "www.example.com", "other.org")


def test_a_path_routes_tls_off_switches_its_domain_off(tmp_path: Path) -> None:
    route = '[routes."example.com/api"]\nimage = "api:1"\ntls = "off"\n'
    config = parse(ACME.format(certificates="") + route, tmp_path)
    plan = plan_tls(config)
    assert plan.disabled == {"example.com"}
    assert plan.orders == {}
