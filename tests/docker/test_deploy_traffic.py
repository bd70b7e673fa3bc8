"""Traffic through the proxy across real deploys: zero errors, drain, WebSockets."""

from __future__ import annotations

import logging
import ssl
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trustme
from deploy_harness import Harness, KeepAliveClient, follow, open_harness, wait_phase
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from hotswap.config import DrainMode, WebSocketDrain, parse_config
from hotswap.deploy import DeployHandle, Outcome
from hotswap.proxy.routes import Backend
from hotswap.tls.manager import TlsManager

LOOPBACK = "127.0.0.1"


@pytest.fixture
async def h(test_images: dict[str, str]) -> AsyncIterator[Harness]:
    async with open_harness(test_images) as harness:
        yield harness


async def deployed_v1(h: Harness, name: str) -> str:
    domain = h.add_route(name, "app_v1")
    assert (await h.deploy(domain)).result.ok
    return domain


async def in_flight_on(backend: Backend, count: int) -> None:
    """Wait (event-driven) until `backend` has `count` requests in flight."""
    while backend.inflight.requests < count:
        await backend.inflight.wait_change()


@asynccontextmanager
async def websocket(h: Harness, domain: str) -> AsyncIterator[WebSocketConnection]:
    """A trio-websocket client to /ws through the proxy, Host: domain; we own the stream."""
    stream = await trio.open_tcp_stream(LOOPBACK, h.proxy.port)
    async with stream, trio.open_nursery() as nursery:
        ws = await wrap_client_stream(nursery, stream, domain, "/ws")
        try:
            yield ws
        finally:
            await ws.aclose()


async def test_continuous_keep_alive_traffic_sees_no_error_across_several_deploys(
    h: Harness,
) -> None:
    with trio.fail_after(120):
        domain = await deployed_v1(h, "zero")
        results: list[tuple[int, bytes]] = []
        errors: list[BaseException] = []
        stop = trio.Event()

        async def client() -> None:
            async with KeepAliveClient.connect(h.proxy.port) as c:
                while not stop.is_set():
                    try:
                        results.append(await c.get(domain))
                    except (OSError, ConnectionError, trio.BrokenResourceError) as exc:
                        errors.append(exc)
                        return
                    await trio.sleep(0.005)  # bounded rate on a shared 2-core machine

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(client)
            for image in ("app_v2", "app_v1", "app_v2"):
                deployed = await h.deploy(domain, image)
                assert deployed.result.outcome is Outcome.OK, deployed.result.error
            stop.set()
        assert errors == []
        assert results and all(status == 200 for status, _ in results), set(results)
        assert {body for _, body in results} == {b"v1\n", b"v2\n"}
        assert results[-1] == (200, b"v2\n")


async def test_continuous_https_traffic_sees_no_error_across_deploys(
    test_images: dict[str, str], tmp_path: Path
) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("*.deploy.test")
    cert, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    text = f"""
        [tls]
        listen = "127.0.0.1:0"
        certificates = [{{ cert = "{cert}", key = "{key}" }}]
        certs_dir = "{tmp_path / "certs"}"
    """
    manager = TlsManager(parse_config(tomllib.loads(text), tmp_path / "hotswap.toml"))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with open_harness(test_images, tls=manager) as h:
        with trio.fail_after(120):
            domain = await deployed_v1(h, "https")
            results: list[tuple[int, bytes]] = []
            errors: list[BaseException] = []
            stop = trio.Event()
            port = h.proxy.tls_port
            assert port is not None

            async def client() -> None:
                async with KeepAliveClient.connect(port, context, domain) as c:
                    while not stop.is_set():
                        try:
                            results.append(await c.get(domain))
                        except (OSError, ConnectionError, trio.BrokenResourceError) as exc:
                            errors.append(exc)
                            return
                        await trio.sleep(0.005)  # bounded rate on a shared 2-core machine

            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(client)
                for image in ("app_v2", "app_v1"):
                    deployed = await h.deploy(domain, image)
                    assert deployed.result.outcome is Outcome.OK, deployed.result.error
                stop.set()
            assert errors == []
            assert results and all(status == 200 for status, _ in results), set(results)
            assert {body for _, body in results} == {b"v1\n", b"v2\n"}


@pytest.mark.parametrize("mode", [DrainMode.AUTO, DrainMode.INFLIGHT])
async def test_a_slow_request_across_the_switch_finishes_on_the_old_version(
    h: Harness, mode: DrainMode
) -> None:
    with trio.fail_after(60):
        domain = await deployed_v1(h, f"slow-{mode}")
        h.set_deploy(stabilization=0.0, drain_mode=mode)
        old = h.routes.get(domain)
        assert old is not None
        async with KeepAliveClient.connect(h.proxy.port) as client:
            handle = h.deployer.start_deploy(domain, h.image("app_v2"))
            await wait_phase(handle, "starting")
            slow_done = 0.0

            async def slow() -> None:
                nonlocal slow_done
                assert await client.get(domain, "/slow?s=3") == (200, b"v1\n")
                slow_done = trio.current_time()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow)
                await in_flight_on(old, 1)
                assert h.routes.get(domain) is old, "switched before the slow request started"
                await wait_phase(handle, "switched")
                assert await h.get(domain) == (200, b"v2\n")  # a new client: new version
                assert old.inflight.requests == 1  # the slow one is still on the old one
            # The next request on the same keep-alive connection goes to the new version.
            assert await client.get(domain) == (200, b"v2\n")
        deployed = await follow(handle)
        assert deployed.result.outcome is Outcome.OK, deployed.result.error
        # Drain ordering: draining (1 in flight) -> 0 in flight -> drained -> stopping.
        counts = [e.data.get("in_flight") for e in deployed.events if e.phase.value == "draining"]
        assert counts[0] == 1 and counts[-1] == 0
        phases = deployed.phases
        drained = phases.index("drained")
        assert phases[drained + 1 : drained + 3] == ["stopping", "stopped"]
        assert not deployed.first("drained").data["timed_out"]
        assert deployed.result.idle_to_stop is not None
        assert slow_done > 0


async def test_a_drain_timeout_warns_naming_the_container_and_goes_on(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(60):
        domain = await deployed_v1(h, "draintimeout")
        h.set_deploy(drain_timeout=0.5, stabilization=0.0)
        old = h.routes.get(domain)
        assert old is not None

        async def slow() -> None:
            try:
                async with KeepAliveClient.connect(h.proxy.port) as client:
                    await client.get(domain, "/slow?s=30")
            except (OSError, ConnectionError, trio.BrokenResourceError):
                pass  # the old container is stopped under it: expected here

        with caplog.at_level(logging.WARNING, logger="hotswap.deploy"):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow)
                await in_flight_on(old, 1)
                deployed = await h.deploy(domain, "app_v2")
                nursery.cancel_scope.cancel()
        assert deployed.result.outcome is Outcome.OK, deployed.result.error
        assert deployed.first("drained").data["timed_out"] is True
        warnings = [r.getMessage() for r in caplog.records if "drain timed out" in r.getMessage()]
        assert len(warnings) == 1
        assert old.name in warnings[0] and "timeout=0.5s" in warnings[0]


async def test_drain_delay_mode_waits_and_stops(h: Harness) -> None:
    with trio.fail_after(60):
        domain = await deployed_v1(h, "draindelay")
        h.set_deploy(drain_mode=DrainMode.DELAY, drain_delay=0.3)
        deployed = await h.deploy(domain, "app_v2")
        assert deployed.result.outcome is Outcome.OK, deployed.result.error
        assert deployed.first("draining").data["mode"] == "delay"
        assert await h.get(domain) == (200, b"v2\n")
        assert len(await h.managed(domain)) == 1


async def test_websocket_close_mode_sends_1012_and_the_client_reconnects_to_the_new_one(
    h: Harness,
) -> None:
    with trio.fail_after(60):
        domain = await deployed_v1(h, "wsclose")
        async with websocket(h, domain) as ws:
            assert await ws.get_message() == "v1"
            deployed = await h.deploy(domain, "app_v2")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            reason = closed.value.reason
            assert reason is not None and reason.code == 1012
        assert deployed.result.outcome is Outcome.OK, deployed.result.error
        assert deployed.first("drained").data["tunnels_closed"] == 1
        assert not deployed.first("drained").data["timed_out"]
        async with websocket(h, domain) as ws:
            assert await ws.get_message() == "v2"


async def test_websocket_wait_mode_keeps_it_until_it_closes(h: Harness) -> None:
    with trio.fail_after(60):
        domain = await deployed_v1(h, "wswait")
        h.set_deploy(websocket_drain=WebSocketDrain.WAIT, drain_timeout=30.0)
        async with websocket(h, domain) as ws:
            assert await ws.get_message() == "v1"
            handle = h.deployer.start_deploy(domain, h.image("app_v2"))
            await wait_phase(handle, "switched")
            await ws.send_message("still here")
            assert await ws.get_message() == "still here"  # the old one still echoes
            assert handle.phase is not None and handle.phase.value == "draining"
        deployed = await follow(handle)  # the client closed it: the drain ends
        assert deployed.result.outcome is Outcome.OK, deployed.result.error
        assert deployed.first("drained").data["tunnels_closed"] == 0


async def test_websocket_wait_mode_closes_with_1012_at_the_drain_timeout(h: Harness) -> None:
    with trio.fail_after(60):
        domain = await deployed_v1(h, "wswaittimeout")
        h.set_deploy(websocket_drain=WebSocketDrain.WAIT, drain_timeout=1.0)
        async with websocket(h, domain) as ws:
            assert await ws.get_message() == "v1"
            handle: DeployHandle = h.deployer.start_deploy(domain, h.image("app_v2"))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            reason = closed.value.reason
            assert reason is not None and reason.code == 1012
        deployed = await follow(handle)
        assert deployed.result.outcome is Outcome.OK, deployed.result.error
        drained = deployed.first("drained").data
        assert drained["timed_out"] is True and drained["tunnels_closed"] == 1
