"""The [tls] and [tls.acme] sections, trusted_proxies and a route's tls key: values and errors."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tomli_w
from tls_helpers import ThrowawayCA

from hotswap.config import (
    AcmeConfig,
    Address,
    Config,
    TlsConfig,
    TlsMode,
    parse_config,
)
from hotswap.config_render import config_to_dict, render_default_config
from hotswap.errors import ConfigError


@pytest.fixture
def ca(tmp_path: Path) -> ThrowawayCA:
    return ThrowawayCA(tmp_path)


def parse(text: str, path: Path) -> Config:
    return parse_config(tomllib.loads(text), path)


def problems_of(text: str, path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, path)
    return caught.value.problems


def only_problem(text: str, path: Path) -> str:
    problems = problems_of(text, path)
    assert len(problems) == 1, problems
    return problems[0]


def test_tls_is_off_by_default(tmp_path: Path) -> None:
    config = parse("", tmp_path / "hotswap.toml")
    assert config.tls == TlsConfig()
    assert config.tls.listen is None
    assert not config.tls.acme.enabled
    assert config.tls.acme.renew_before == 30 * 86400
    assert config.server.trusted_proxies == ()


def test_every_tls_key_is_parsed_and_certificate_files_are_read(
    tmp_path: Path, ca: ThrowawayCA
) -> None:
    issued = ca.issue("example.com", "*.example.com")
    ca.ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    config = parse(
        f"""
        [server]
        trusted_proxies = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
        [tls]
        listen = "0.0.0.0:443"
        certificates = [{{ cert = "{issued.cert.name}", key = "{issued.key}" }}]
        redirect_http = false
        hsts = "max-age=31536000; includeSubDomains"
        handshake_timeout = "5s"
        certs_dir = "/var/lib/hotswap/tls"
        [tls.acme]
        email = "admin@example.com"
        directory = "https://127.0.0.1:14000/dir"
        ca_bundle = "ca.pem"
        renew_before = "20d"
        [routes."app.example.com"]
        image = "app:1"
        tls = "off"
        """,
        tmp_path / "hotswap.toml",
    )
    assert config.server.trusted_proxies == ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32")
    tls = config.tls
    assert tls.listen == Address("0.0.0.0", 443)
    assert (tls.redirect_http, tls.hsts, tls.handshake_timeout, tls.certs_dir) == (
        False,
        "max-age=31536000; includeSubDomains",
        5.0,
        "/var/lib/hotswap/tls",
    )
    assert tls.acme == AcmeConfig(
        email="admin@example.com",
        directory="https://127.0.0.1:14000/dir",
        ca_bundle="ca.pem",
        renew_before=20 * 86400,
    )
    [files] = tls.certificates
    assert (files.cert, files.key) == (issued.cert.name, str(issued.key))
    assert files.certificate is not None
    assert files.certificate.names == ("example.com", "*.example.com")
    assert files.certificate.origin == str(issued.cert)  # relative to the config file
    assert config.routes["app.example.com"].tls is TlsMode.OFF


def test_an_expired_certificate_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, ca: ThrowawayCA
) -> None:
    issued = ca.issue("old.example.com", not_after=datetime(2020, 1, 1, tzinfo=UTC))
    path = tmp_path / "hotswap.toml"
    text = f'[tls]\ncertificates = [{{ cert = "{issued.cert}", key = "{issued.key}" }}]'
    assert only_problem(text, path) == (
        f"{path}: tls.certificates[0].cert: {issued.cert}: the certificate expired on "
        "2020-01-01 00:00:00 UTC; renew it or remove it from the config"
    )


def test_a_key_that_is_not_the_certificates_is_refused(tmp_path: Path, ca: ThrowawayCA) -> None:
    one = ca.issue("one.example.com")
    other = ca.issue("other.example.com")
    path = tmp_path / "hotswap.toml"
    text = f'[tls]\ncertificates = [{{ cert = "{one.cert}", key = "{other.key}" }}]'
    assert only_problem(text, path) == (
        f"{path}: tls.certificates[0].key: {other.key} is not the key of the certificate in "
        f"{one.cert} (the public keys differ); the server's own certificate must come first "
        "in the certificate file"
    )


def test_unreadable_and_wrong_certificate_files(tmp_path: Path, ca: ThrowawayCA) -> None:
    issued = ca.issue("a.example.com")
    path = tmp_path / "hotswap.toml"
    text = f"""
        [tls]
        certificates = [
            {{ cert = "missing.pem", key = "{issued.key}" }},
            {{ cert = "{issued.key}", key = "{issued.key}" }},
            {{ cert = "{issued.cert}", key = "{issued.cert}" }},
        ]
    """
    assert problems_of(text, path) == [
        f"{path}: tls.certificates[0].cert: cannot read {tmp_path / 'missing.pem'}: "
        "No such file or directory",
        f"{path}: tls.certificates[1].cert: {issued.key}: no certificate found (expected PEM "
        '"-----BEGIN CERTIFICATE-----")',
        f"{path}: tls.certificates[2].key: {issued.cert}: no private key found (expected PEM "
        '"-----BEGIN ... PRIVATE KEY-----")',
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[tls]\ncertificates = {}",
            'tls.certificates: expected an array of tables like [{ cert = "fullchain.pem", '
            'key = "privkey.pem" }], got a table',
        ),
        (
            '[tls]\ncertificates = ["a.pem"]',
            'tls.certificates[0]: expected a table with cert and key, got string "a.pem"',
        ),
        (
            '[tls]\ncertificates = [{ cert = "a.pem" }]',
            "tls.certificates[0].key: missing; each certificate needs cert and key files",
        ),
        (
            '[tls]\ncertificates = [{ cert = "a.pem", kye = "b.pem", key = "c.pem" }]',
            "tls.certificates[0].kye: unknown key; did you mean tls.certificates[0].key?",
        ),
        (
            '[tls]\nlisten = "443"',
            'tls.listen: invalid address "443": expected host:port, like "127.0.0.1:8080" or '
            '"[::1]:8080"',
        ),
        (
            "[tls]\nredirect_http = 1",
            "tls.redirect_http: expected a boolean (true or false), got integer 1",
        ),
        (
            '[tls]\nhsts = "1 year"',
            'tls.hsts: expected a Strict-Transport-Security value like "max-age=31536000" or '
            '"max-age=31536000; includeSubDomains", got string "1 year"',
        ),
        (
            '[tls]\nhandshake_timeout = "0s"',
            'tls.handshake_timeout: must be greater than 0, got string "0s"',
        ),
        ("[tls]\nacme = 1", "tls.acme: expected a table, got integer 1"),
        (
            '[tls.acme]\nemial = "a@b.c"',
            "tls.acme.emial: unknown key; did you mean tls.acme.email?",
        ),
        (
            '[tls.acme]\nemail = "admin"',
            'tls.acme.email: expected an email address like "admin@example.com", '
            'got string "admin"',
        ),
        (
            '[tls.acme]\ndirectory = "http://ca.example/dir"',
            'tls.acme.directory: expected an https:// URL, got string "http://ca.example/dir"',
        ),
        (
            '[tls.acme]\nrenew_before = "30"',
            'tls.acme.renew_before: invalid duration "30": a unit is required, like "30s" or '
            '"30ms"',
        ),
        (
            '[server]\ntrusted_proxies = "10.0.0.0/8"',
            'server.trusted_proxies: expected an array of CIDRs like ["10.0.0.0/8"], '
            'got string "10.0.0.0/8"',
        ),
        (
            '[server]\ntrusted_proxies = ["10.0.0.1/8"]',
            'server.trusted_proxies[0]: invalid CIDR string "10.0.0.1/8": host bits are set; '
            'did you mean "10.0.0.0/8"?',
        ),
        (
            '[server]\ntrusted_proxies = ["lb.internal", 7]',
            'server.trusted_proxies[0]: invalid CIDR string "lb.internal": expected an IP '
            'address or address/prefix, like "10.0.0.0/8", "192.0.2.7" or "2001:db8::/32"',
        ),
        (
            '[routes."a.example"]\nimage = "a"\ntls = "on"',
            'routes."a.example".tls: expected one of "auto", "off", got string "on"',
        ),
    ],
)
def test_tls_value_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "hotswap.toml"
    assert problems_of(text, path)[0] == f"{path}: {message}"


def test_a_ca_bundle_that_is_missing_or_not_pem_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hotswap.toml"
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    assert only_problem('[tls.acme]\nca_bundle = "nope.pem"', path) == (
        f"{path}: tls.acme.ca_bundle: cannot read {tmp_path / 'nope.pem'}: "
        "No such file or directory"
    )
    assert only_problem('[tls.acme]\nca_bundle = "junk.pem"', path).startswith(
        f"{path}: tls.acme.ca_bundle: {tmp_path / 'junk.pem'}: not a PEM file of CA certificates"
    )


def test_tls_settings_round_trip_through_tomli_w(tmp_path: Path, ca: ThrowawayCA) -> None:
    issued = ca.issue("a.example.com")
    path = tmp_path / "hotswap.toml"
    config = parse(
        f"""
        [server]
        trusted_proxies = ["127.0.0.1", "::1/128"]
        [tls]
        listen = "[::]:8443"
        certificates = [{{ cert = "{issued.cert.name}", key = "{issued.key.name}" }}]
        hsts = "max-age=60"
        [tls.acme]
        email = "a@example.com"
        renew_before = "1d12h"
        [routes."a.example.com"]
        image = "a:1"
        tls = "off"
        """,
        path,
    )
    again = parse_config(tomllib.loads(tomli_w.dumps(config_to_dict(config))), path)
    assert again == config


def test_the_default_file_lists_the_tls_sections(tmp_path: Path) -> None:
    text = render_default_config()
    assert "\n[tls]\n" in text
    assert "\n[tls.acme]\n" in text
    assert '# renew_before = "30d"' in text
    assert parse(text, tmp_path / "hotswap.toml") == Config(path=tmp_path / "hotswap.toml")
