"""ACME end to end against Pebble on loopback: issue, serve, reuse, renew, fail and back off.

The CA validates HTTP-01 by fetching the token from 127.0.0.1:<pebble.http_port>,
served by a tiny responder that calls TlsManager.challenge_response, the function
the proxy's plain listener calls.
"""

from __future__ import annotations

import ssl
import stat
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import trio
import trio.testing
from pebble_server import Pebble, free_port
from tls_helpers import (
    ChallengeResponder,
    FakeClock,
    ThrowawayCA,
    TlsTestServer,
    handshake,
    served_names,
)

from hotswap.config import Config, parse_config
from hotswap.tls.manager import TlsManager
from hotswap.tls.schedule import Backoff

WAIT = 60  # seconds any one step may take before the test fails
BACKOFF = Backoff(first=60.0)


def config_for(
    folder: Path,
    directory: str,
    ca_bundle: Path,
    routes: dict[str, str],
    *,
    renew_before: str = "30d",
) -> Config:
    route_lines = "\n".join(f'"{domain}" = "{image}"' for domain, image in routes.items())
    text = f"""
        [tls]
        listen = "127.0.0.1:0"
        certs_dir = "{folder / "certs"}"
        [tls.acme]
        email = "ops@example.com"
        directory = "{directory}"
        ca_bundle = "{ca_bundle}"
        renew_before = "{renew_before}"
        [routes]
        {route_lines}
    """
    return parse_config(tomllib.loads(text), folder / "hotswap.toml")


async def wait_until(manager: TlsManager, condition: Callable[[], bool]) -> None:
    with trio.fail_after(WAIT):
        while not condition():
            await manager.changed()


def acme_state(manager: TlsManager, domain: str) -> dict[str, object]:
    state = manager.status()["domains"][domain]["acme"]
    assert isinstance(state, dict)
    return state


@dataclass
class Harness:
    pebble: Pebble
    folder: Path
    nursery: trio.Nursery
    responder: ChallengeResponder
    manager: TlsManager | None = None

    async def start(self, config: Config, clock: FakeClock | None = None) -> TlsManager:
        manager = TlsManager(config, clock=clock or FakeClock(), backoff=BACKOFF)
        self.manager = manager
        await self.nursery.start(manager.run)
        return manager

    def config(self, routes: dict[str, str], **options: str) -> Config:
        return config_for(
            self.folder, self.pebble.directory, self.pebble.ca_bundle, routes, **options
        )

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.pebble.root_pem().decode())


@pytest.fixture
async def acme(pebble: Pebble, tmp_path: Path) -> AsyncIterator[Harness]:
    async with trio.open_nursery() as nursery:
        harness: Harness

        def answer(method: str, host: str, target: str) -> bytes | None:
            manager = harness.manager
            return manager.challenge_response(method, host, target) if manager else None

        responder = ChallengeResponder(answer, pebble.http_port)
        harness = Harness(pebble, tmp_path, nursery, responder)
        await nursery.start(responder.run)
        yield harness
        nursery.cancel_scope.cancel()


async def test_a_route_gets_a_certificate_from_acme_and_it_is_served(acme: Harness) -> None:
    manager = await acme.start(acme.config({"app.example.com": "app:1"}))
    await wait_until(manager, lambda: manager.has_certificate("app.example.com"))
    assert acme.responder.served >= 1  # the CA fetched the token from our responder
    assert len(manager.pending) == 0  # no token answered once the order is over
    domain = manager.status()["domains"]["app.example.com"]
    assert domain["https"] is True
    assert domain["certificate"]["source"] == "acme"
    assert domain["certificate"]["names"] == ["app.example.com"]
    assert domain["certificate"]["issuer"].startswith("Pebble Intermediate CA")
    assert domain["acme"]["state"] == "valid"
    assert domain["acme"]["last_error"] is None
    # Served over real TLS, with a chain that verifies up to Pebble's root.
    server = TlsTestServer(manager.context)
    await acme.nursery.start(server.run)
    stream = await handshake(server.port, "app.example.com", acme.client_context())
    assert served_names(stream) == ["app.example.com"]
    await stream.aclose()
    # Stored privately: one file with the key and the chain, in a 0700 directory.
    [stored] = (acme.folder / "certs" / "certificates").glob("*/app.example.com.pem")
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((acme.folder / "certs").stat().st_mode) == 0o700
    assert stat.S_IMODE((acme.folder / "certs" / "account.key").stat().st_mode) == 0o600


async def test_a_restart_serves_the_stored_certificate_without_a_new_order(
    acme: Harness,
) -> None:
    config = acme.config({"app.example.com": "app:1"})
    first = await acme.start(config)
    await wait_until(first, lambda: first.has_certificate("app.example.com"))
    issued = first.live.certificate_for("app.example.com")
    account_key = (acme.folder / "certs" / "account.key").read_bytes()
    acme.responder.refuse = True  # a new order would fail now
    second = await acme.start(config)
    # Ready when run() has started: the stored certificate, nothing ordered.
    assert second.live.certificate_for("app.example.com") == issued
    assert acme_state(second, "app.example.com")["failures"] == 0
    assert (acme.folder / "certs" / "account.key").read_bytes() == account_key


async def test_a_certificate_is_renewed_renew_before_its_expiry(acme: Harness) -> None:
    clock = FakeClock()
    manager = await acme.start(acme.config({"app.example.com": "app:1"}, renew_before="30d"), clock)
    await wait_until(manager, lambda: manager.has_certificate("app.example.com"))
    first = manager.live.certificate_for("app.example.com")
    assert first is not None
    renew_at = first.not_after - timedelta(days=30)
    clock.now = renew_at - timedelta(minutes=1)
    manager.wake()
    await trio.testing.wait_all_tasks_blocked()
    assert manager.live.certificate_for("app.example.com") == first  # not due yet
    clock.now = renew_at + timedelta(seconds=1)
    manager.wake()
    await wait_until(manager, lambda: manager.live.certificate_for("app.example.com") != first)
    renewed = manager.live.certificate_for("app.example.com")
    assert renewed is not None
    assert renewed.serial != first.serial
    assert renewed.names == ("app.example.com",)
    stored = next((acme.folder / "certs" / "certificates").glob("*/app.example.com.pem"))
    assert manager.store.load(acme.pebble.directory, "app.example.com") == renewed
    assert stored.exists()


async def test_a_failed_validation_keeps_the_cas_error_backs_off_and_retries(
    acme: Harness,
) -> None:
    clock = FakeClock()
    acme.responder.refuse = True  # DNS points here, but nothing answers the token yet
    manager = await acme.start(acme.config({"app.example.com": "app:1"}), clock)
    await wait_until(manager, lambda: acme_state(manager, "app.example.com")["failures"] == 1)
    state = acme_state(manager, "app.example.com")
    assert state["state"] == "failed"
    assert "urn:ietf:params:acme:error:unauthorized" in str(state["last_error"])
    assert "404" in str(state["last_error"])
    assert state["next_attempt"] == (clock.now + timedelta(seconds=BACKOFF.first)).isoformat()
    assert not manager.has_certificate("app.example.com")
    assert manager.redirect_location("app.example.com", "/") is None  # HTTP keeps working
    # Nothing happens before the back-off is over ...
    acme.responder.refuse = False
    manager.wake()
    await trio.testing.wait_all_tasks_blocked()
    assert acme_state(manager, "app.example.com")["failures"] == 1
    # ... and the next attempt, once it is, succeeds.
    clock.advance(timedelta(seconds=BACKOFF.first))
    manager.wake()
    await wait_until(manager, lambda: manager.has_certificate("app.example.com"))
    state = acme_state(manager, "app.example.com")
    assert (state["state"], state["failures"]) == ("valid", 0)
    assert "unauthorized" in str(state["last_error"])  # the last error stays visible


async def test_a_domain_added_at_reload_gets_its_certificate_and_the_others_keep_theirs(
    acme: Harness,
) -> None:
    manager = await acme.start(acme.config({"app.example.com": "app:1"}))
    await wait_until(manager, lambda: manager.has_certificate("app.example.com"))
    first = manager.live.certificate_for("app.example.com")
    changes = manager.apply(acme.config({"app.example.com": "app:1", "shop.example.com": "s:1"}))
    assert changes == ["tls: shop.example.com gets a certificate from ACME"]
    await wait_until(manager, lambda: manager.has_certificate("shop.example.com"))
    assert manager.live.certificate_for("app.example.com") == first
    changes = manager.apply(acme.config({"shop.example.com": "s:1"}))
    assert changes == ["tls: app.example.com no longer gets certificates from ACME"]
    assert not manager.has_certificate("app.example.com")
    assert "app.example.com" not in manager.status()["domains"]


async def test_an_unreachable_ca_is_an_error_and_failures_back_off_exponentially(
    tmp_path: Path,
) -> None:
    closed = free_port()  # nothing listens there (and no Pebble is needed)
    bundle = tmp_path / "ca.pem"
    ThrowawayCA(tmp_path).ca.cert_pem.write_to_path(str(bundle))
    config = config_for(
        tmp_path, f"https://127.0.0.1:{closed}/dir", bundle, {"app.example.com": "a:1"}
    )
    clock = FakeClock()
    manager = TlsManager(config, clock=clock, backoff=BACKOFF)
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        await wait_until(manager, lambda: acme_state(manager, "app.example.com")["failures"] == 1)
        state = acme_state(manager, "app.example.com")
        assert f"cannot reach https://127.0.0.1:{closed}/dir" in str(state["last_error"])
        first_retry = clock.now + timedelta(seconds=60)
        assert state["next_attempt"] == first_retry.isoformat()
        clock.now = first_retry
        manager.wake()
        await wait_until(manager, lambda: acme_state(manager, "app.example.com")["failures"] == 2)
        assert (
            acme_state(manager, "app.example.com")["next_attempt"]
            == (first_retry + timedelta(seconds=120)).isoformat()
        )
        nursery.cancel_scope.cancel()
