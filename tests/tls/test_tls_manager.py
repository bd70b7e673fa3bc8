"""The TLS manager with certificate files: what the proxy asks it, status, and reloads."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import trio
from tls_helpers import Issued, ThrowawayCA, TlsTestServer, handshake, served_names

from hotswap.config import Config, parse_config
from hotswap.tls.manager import TlsManager


def config_with(folder: Path, issued: list[Issued], extra: str = "") -> Config:
    files = ", ".join(f'{{ cert = "{i.cert}", key = "{i.key}" }}' for i in issued)
    text = f"""
        [tls]
        listen = "0.0.0.0:8443"
        certificates = [{files}]
        hsts = "max-age=31536000"
        certs_dir = "{folder / "certs"}"
        {extra}
        [routes]
        "app.example.com" = "app:1"
        "www.example.org" = "www:1"
        [routes."plain.example.com"]
        image = "plain:1"
        tls = "off"
    """
    return parse_config(tomllib.loads(text), folder / "hotswap.toml")


def test_what_the_proxy_asks_of_the_manager(tmp_path: Path) -> None:
    issued = ThrowawayCA(tmp_path).issue("*.example.com")
    manager = TlsManager(config_with(tmp_path, [issued]))
    assert manager.has_certificate("app.example.com")
    assert not manager.has_certificate("www.example.org")  # no certificate, no ACME
    assert not manager.has_certificate("plain.example.com")  # tls = "off"
    assert manager.redirect_location("app.example.com", "/a?b=1") == (
        "https://app.example.com:8443/a?b=1"
    )
    assert manager.redirect_location("www.example.org", "/") is None
    assert manager.redirect_location("plain.example.com", "/") is None
    assert manager.hsts == "max-age=31536000"
    assert (
        manager.challenge_response("GET", "app.example.com", "/.well-known/acme-challenge/x")
        is None
    )
    assert [domain for domain, _ in manager.expiry_samples()] == ["app.example.com"]


def test_no_redirect_when_it_is_turned_off_or_there_is_no_https_listener(tmp_path: Path) -> None:
    issued = ThrowawayCA(tmp_path).issue("app.example.com")
    off = TlsManager(config_with(tmp_path, [issued], "redirect_http = false"))
    assert off.has_certificate("app.example.com")
    assert off.redirect_location("app.example.com", "/") is None
    config = config_with(tmp_path, [issued])
    no_listener = TlsManager(replace(config, tls=replace(config.tls, listen=None)))
    assert no_listener.redirect_location("app.example.com", "/") is None


def test_status_shows_each_domains_certificate_and_source(tmp_path: Path) -> None:
    issued = ThrowawayCA(tmp_path).issue("app.example.com")
    status = TlsManager(config_with(tmp_path, [issued])).status()
    assert status["listen"] == "0.0.0.0:8443"
    assert status["acme"] is None
    app = status["domains"]["app.example.com"]
    assert app["https"] is True
    assert app["certificate"]["source"] == "file"
    assert app["certificate"]["origin"] == str(issued.cert)
    assert app["certificate"]["not_after"] == issued.certificate().not_after.isoformat()
    assert status["domains"]["www.example.org"] == {
        "https": False,
        "off": False,
        "certificate": None,
    }
    assert status["domains"]["plain.example.com"]["off"] is True
    assert [c["names"] for c in status["certificates"]] == [["app.example.com"]]


async def test_a_reload_with_renewed_files_serves_them_to_the_next_connection(
    tmp_path: Path,
) -> None:
    ca = ThrowawayCA(tmp_path)
    old = ca.issue("app.example.com")
    manager = TlsManager(config_with(tmp_path, [old]))
    server = TlsTestServer(manager.context)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        before = await handshake(server.port, "app.example.com", ca.client_context())
        new = ca.issue("app.example.com", "www.example.org")
        changes = manager.apply(config_with(tmp_path, [new]))
        assert changes == ["tls: certificate files reloaded (1 in use)"]
        after = await handshake(server.port, "www.example.org", ca.client_context())
        assert served_names(after) == ["app.example.com", "www.example.org"]
        assert before.getpeercert(binary_form=True) != after.getpeercert(binary_form=True)
        for stream in (before, after):
            await stream.aclose()
        nursery.cancel_scope.cancel()
