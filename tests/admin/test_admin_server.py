"""The admin API over real loopback sockets, driven by the CLI's client, with a fake deployer."""

from __future__ import annotations

import socket

import h11
import pytest
import trio
from admin_fakes import TOKEN, start

from hotswap.admin.client import AdminClient
from hotswap.config import Address
from hotswap.errors import AdminClientError, ConfigError


async def test_status_merges_config_routes_and_deployer_state() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            doc = await trio.to_thread.run_sync(h.client().status)
            nursery.cancel_scope.cancel()
    app, legacy = doc["routes"]
    assert app["domain"] == "app.example.com" and app["kind"] == "container"
    assert app["in_flight"] == 1 and app["requests"] == 0
    assert app["backend"]["address"] == "127.0.0.1:40001"
    assert app["deploy"] == {"state": "running", "health": "healthy"}
    assert legacy["kind"] == "external" and legacy["backend"] is None
    assert doc["other"] == {"unmanaged": []}


async def test_deploy_streams_every_phase_then_done() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            h.app.deployer.release.set()
            events = await trio.to_thread.run_sync(
                lambda: list(h.client().deploy("App.Example.com", "app:3", force=True))
            )
            nursery.cancel_scope.cancel()
    phases = [e["event"] for e in events]
    assert phases == ["pulling", "starting", "switched", "draining", "draining", "stopped", "done"]
    assert events[-1]["data"] == {"image": "app:3"}
    assert h.app.deployer.calls == [("app.example.com", "app:3", True, "manual")]


async def test_a_failing_deploy_ends_its_stream_with_failed() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            h.app.deployer.release.set()
            events = await trio.to_thread.run_sync(
                lambda: list(h.client().deploy("app.example.com", "app:bad"))
            )
            nursery.cancel_scope.cancel()
    assert events[-1]["event"] == "failed"
    assert events[-1]["data"]["error"] == "container exited with code 3"


async def test_a_client_that_leaves_mid_stream_does_not_cancel_the_deploy() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)

            def first_two() -> list[str]:
                stream = h.client().deploy("app.example.com")
                got = [next(stream)["event"], next(stream)["event"]]
                stream.close()  # closes the connection
                return got

            assert await trio.to_thread.run_sync(first_two) == ["pulling", "starting"]
            h.app.deployer.release.set()
            handle = h.app.deployer.handles[0]
            await handle.finished.wait()
            nursery.cancel_scope.cancel()
    assert handle.log[-1].phase == "done"


async def test_rollback_streams_like_a_deploy_and_409s_with_nothing_to_roll_back() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            with pytest.raises(AdminClientError, match="nothing to roll back to"):
                await trio.to_thread.run_sync(lambda: list(h.client().rollback("app.example.com")))
            h.app.deployer.release.set()
            await trio.to_thread.run_sync(lambda: list(h.client().deploy("app.example.com")))
            events = await trio.to_thread.run_sync(
                lambda: list(h.client().rollback("app.example.com"))
            )
            nursery.cancel_scope.cancel()
    assert events[-1] == {
        "event": "done",
        "domain": "app.example.com",
        "message": "",
        "data": {"image": "app:1"},
    }


async def test_an_unknown_domain_is_a_clear_error_and_no_deploy() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            with pytest.raises(AdminClientError, match=r"unknown domain nope\.example\.com"):
                await trio.to_thread.run_sync(lambda: list(h.client().deploy("nope.example.com")))
            with pytest.raises(AdminClientError, match="invalid domain"):
                await trio.to_thread.run_sync(lambda: list(h.client().deploy("bad_domain!")))
            nursery.cancel_scope.cancel()
    assert h.app.deployer.calls == []


async def test_reload_returns_the_changes_or_the_config_problems() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            assert await trio.to_thread.run_sync(h.client().reload) == ["route b.example.com added"]
            h.app.reload_result = ConfigError(["f.toml: deploy.drain_mode: bad", "f.toml: x: y"])
            with pytest.raises(AdminClientError) as caught:
                await trio.to_thread.run_sync(h.client().reload)
            nursery.cancel_scope.cancel()
    assert str(caught.value) == "f.toml: deploy.drain_mode: bad\nf.toml: x: y"


async def test_metrics_are_served_in_prometheus_text_format() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            h.app.metrics.observe_request("app.example.com", 200, 0.01)
            text = await trio.to_thread.run_sync(h.client().metrics)
            nursery.cancel_scope.cancel()
    assert 'hotswap_http_requests_total{domain="app.example.com",status_class="2xx"} 1.0' in text
    assert 'hotswap_requests_in_flight{domain="app.example.com"} 1.0' in text


async def test_a_wrong_or_missing_token_is_refused_with_a_hint() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            with pytest.raises(AdminClientError, match="refused the admin token"):
                await trio.to_thread.run_sync(h.client("wrong").status)
            with pytest.raises(AdminClientError, match="requires an admin token"):
                await trio.to_thread.run_sync(h.client("").status)
            with pytest.raises(AdminClientError, match="refused the admin token"):
                await trio.to_thread.run_sync(lambda: list(h.client("x").deploy("app.example.com")))
            nursery.cancel_scope.cancel()
    assert h.app.deployer.calls == []


async def test_no_token_configured_needs_none() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery, token="")
            doc = await trio.to_thread.run_sync(h.client("").status)
            nursery.cancel_scope.cancel()
    assert len(doc["routes"]) == 2


def test_a_server_that_is_not_running_is_named_with_its_address() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        client = AdminClient(Address("0.0.0.0", port))
        with pytest.raises(AdminClientError) as caught:
            client.status()
    assert str(caught.value) == (
        f"cannot reach hotswap at 127.0.0.1:{port}: connection refused — "
        "is `hotswap serve` running?"
    )


async def raw_exchange(port: int, request: h11.Request, body: bytes = b"") -> tuple[int, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        await stream.send_all(
            conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        )
        status, chunks = 0, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, b"".join(chunks)


def req(method: str, target: str, *extra: tuple[str, str]) -> h11.Request:
    headers = [("Host", "admin"), ("Authorization", f"Bearer {TOKEN}"), *extra]
    if method == "POST":
        headers.append(("Content-Length", "0"))
    return h11.Request(method=method, target=target, headers=headers)


async def test_errors_are_json_with_a_message() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            not_found = await raw_exchange(h.port, req("GET", "/v1/nothing"))
            wrong_method = await raw_exchange(h.port, req("GET", "/v1/reload"))
            bad_body = await raw_exchange(
                h.port,
                h11.Request(
                    method="POST",
                    target="/v1/deploy/app.example.com",
                    headers=[
                        ("Host", "a"),
                        ("Authorization", f"Bearer {TOKEN}"),
                        ("Content-Length", "1"),
                    ],
                ),
                b"[",
            )
            nursery.cancel_scope.cancel()
    assert not_found == (404, b'{"error":"no such endpoint: /v1/nothing"}\n')
    assert wrong_method[0] == 405 and b"use POST" in wrong_method[1]
    assert bad_body[0] == 400 and b"not valid JSON" in bad_body[1]


async def test_a_path_route_key_travels_url_encoded_and_reaches_the_deployer_normalised() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            h.app.deployer.domains.add("app.example.com/api")
            h.app.deployer.release.set()
            # The CLI's client encodes the "/" of the route key: one path segment.
            events = await trio.to_thread.run_sync(
                lambda: list(h.client().deploy("App.Example.com/api", "app:3"))
            )
            encoded = await raw_exchange(h.port, req("POST", "/v1/rollback/app.example.com%2Fapi"))
            unencoded = await raw_exchange(h.port, req("POST", "/v1/deploy/app.example.com/api"))
            with pytest.raises(AdminClientError, match=r'no trailing "/": write'):
                await trio.to_thread.run_sync(
                    lambda: list(h.client().deploy("app.example.com/api/"))
                )
            nursery.cancel_scope.cancel()
    assert events[-1]["event"] == "done"
    assert encoded[0] == 200 and b'"event":"done"' in encoded[1]
    assert unencoded[0] == 404
    assert [call[0] for call in h.app.deployer.calls] == ["app.example.com/api"] * 2
