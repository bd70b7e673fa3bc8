"""`hotswap serve --takeover` as real processes on loopback (external routes: no Docker).

The app behind the proxy runs in the test; the load is strict (takeover_helpers).
"""

from __future__ import annotations

import json
import signal
import urllib.error
import urllib.request
from pathlib import Path

import h11
import pytest
import trio
from takeover_helpers import (
    App,
    Load,
    Processes,
    Reply,
    free_port,
    get,
    request,
    served_by,
    websocket_message,
    write_config,
)
from trio_websocket import ConnectionClosed, wrap_client_stream

HOST = "app.test"
WS_HOST = "ws.test"
HANDED_OVER = "handed over to pid="
LISTENING = "listening for takeovers"


async def start_app(nursery: trio.Nursery) -> App:
    app = App()
    await nursery.start(app.run)
    return app


def config_for(tmp_path: Path, app: App, deploy: str = "", **kw: object) -> Path:
    return write_config(
        tmp_path / "hotswap.toml",
        proxy=int(kw.get("proxy", free_port())),  # type: ignore[call-overload]
        admin=int(kw.get("admin", free_port())),  # type: ignore[call-overload]
        external={HOST: app.port, WS_HOST: app.ws_port},
        deploy=deploy,
    )


def ports(config: Path) -> tuple[int, int]:
    text = config.read_text()
    found = [int(line.rstrip('"').rpartition(":")[2]) for line in text.splitlines()
             if line.startswith(("listen =", "admin_listen ="))]  # fmt: skip
    return found[0], found[1]


def admin_post(port: int, path: str) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method="POST", data=b"")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_takeovers_under_keep_alive_load_fail_no_request(
    tmp_path: Path, processes: Processes
) -> None:
    async with trio.open_nursery() as nursery:
        app = await start_app(nursery)
        config = config_for(tmp_path, app, 'drain_timeout = "20s"\nwebsocket_drain = "close"')
        proxy, _ = ports(config)
        with trio.fail_after(120):
            old = processes.serve(config, name="old")
            await old.wait_log(LISTENING)
            load = Load(proxy, HOST)
            nursery.start_soon(load.run)
            await load.grow(200)

            # Before the takeover, on the old process: a WebSocket and a slow request.
            stream = await trio.open_tcp_stream("127.0.0.1", proxy)
            ws = await wrap_client_stream(nursery, stream, WS_HOST, "/ws")
            assert await websocket_message(ws, "before") == "before"
            slow_stream = await trio.open_tcp_stream("127.0.0.1", proxy)
            slow_conn = h11.Connection(h11.CLIENT)
            slow: list[Reply] = []
            slow_done = trio.Event()

            async def slow_request() -> None:
                slow.append(await request(slow_stream, slow_conn, HOST, "/slow"))
                slow_done.set()

            nursery.start_soon(slow_request)
            await app.slow_started.wait()

            first = processes.serve(config, "--takeover", name="first")
            await old.wait_log(HANDED_OVER)
            # websocket_drain = "close": the old process closes it with 1012 at once.
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 1012
            await stream.aclose()
            # The slow request is still served by the old process, which then exits.
            app.release.set()
            await slow_done.wait()
            (reply,) = slow
            assert (reply.status, reply.body, reply.close) == (200, b"slow", True)
            await slow_stream.aclose()
            assert await old.wait_exit() == 0, old.log()

            await first.wait_log(LISTENING)
            await load.grow(300)
            second = processes.serve(config, "--takeover", name="second")
            await first.wait_log(HANDED_OVER)
            assert await first.wait_exit() == 0, first.log()
            await load.grow(300)
            load.stop.set()
            assert (await get(proxy, HOST)).status == 200
            second.signal(signal.SIGTERM)
            assert await second.wait_exit() == 0
        nursery.cancel_scope.cancel()

    assert load.failures == [], load.failures[:10]
    # Each process served part of the load; the old ones asked their clients to reconnect.
    for serve in (old, first, second):
        assert served_by(serve, HOST) > 0, serve.log()
    assert load.reconnects >= 2 * load.workers
    assert "takeover complete: pid=" in second.log()


async def test_a_websocket_stays_open_through_a_takeover_with_websocket_drain_wait(
    tmp_path: Path, processes: Processes
) -> None:
    async with trio.open_nursery() as nursery:
        app = await start_app(nursery)
        config = config_for(tmp_path, app, 'drain_timeout = "2s"\nwebsocket_drain = "wait"')
        proxy, _ = ports(config)
        with trio.fail_after(60):
            old = processes.serve(config, name="old")
            await old.wait_log(LISTENING)
            stream = await trio.open_tcp_stream("127.0.0.1", proxy)
            ws = await wrap_client_stream(nursery, stream, WS_HOST, "/ws")
            new = processes.serve(config, "--takeover", name="new")
            await old.wait_log(HANDED_OVER)
            # Kept by the old process until it closes or drain_timeout passes ...
            assert await websocket_message(ws, "during") == "during"
            # ... then closed the same way, with 1012.
            with pytest.raises(ConnectionClosed) as closed:
                await ws.get_message()
            assert closed.value.reason.code == 1012
            await stream.aclose()
            assert await old.wait_exit() == 0, old.log()
            assert (await get(proxy, HOST)).status == 200
            new.signal()
            assert await new.wait_exit() == 0
        nursery.cancel_scope.cancel()


async def test_a_takeover_with_no_running_serve_fails_with_a_clear_error(
    tmp_path: Path, processes: Processes
) -> None:
    async with trio.open_nursery() as nursery:
        app = await start_app(nursery)
        config = config_for(tmp_path, app)
        with trio.fail_after(30):
            lonely = processes.serve(config, "--takeover", name="lonely")
            assert await lonely.wait_exit() == 1
        nursery.cancel_scope.cancel()
    assert "nothing to take over: no running `hotswap serve` with this config" in lonely.log()
    assert "start it without --takeover" in lonely.log()


async def test_the_old_process_keeps_serving_when_the_new_one_dies_before_it_is_ready(
    tmp_path: Path, processes: Processes
) -> None:
    async with trio.open_nursery() as nursery:
        app = await start_app(nursery)
        config = config_for(tmp_path, app)
        proxy, admin = ports(config)
        original = config.read_text()
        with trio.fail_after(90):
            old = processes.serve(config, name="old")
            await old.wait_log(LISTENING)
            load = Load(proxy, HOST)
            nursery.start_soon(load.run)
            await load.grow(100)
            # A managed route (and no Docker): the new process gets the sockets, then waits
            # for Docker to adopt containers before it accepts; it never gets ready.
            config.write_text(original.replace("[routes]", '[routes]\n"m.test" = "app:1"'))
            doomed = processes.serve(config, "--takeover", name="doomed")
            await doomed.wait_log("received the listening sockets")
            await doomed.wait_log("docker events stream: connect failed")
            # Meanwhile the old process serves, and starts no deploy (nor a reload).
            status, body = await trio.to_thread.run_sync(admin_post, admin, "/v1/reload")
            assert status == 409 and "being taken over" in str(body["error"]), body
            await load.grow(100)
            doomed.signal(signal.SIGKILL)
            await old.wait_log("went away before it was ready")
            await load.grow(100)
            status, body = await trio.to_thread.run_sync(admin_post, admin, "/v1/reload")
            assert status == 200, body
            # It can still be taken over.
            config.write_text(original)
            new = processes.serve(config, "--takeover", name="new")
            await old.wait_log(HANDED_OVER)
            assert await old.wait_exit() == 0, old.log()
            await load.grow(100)
            load.stop.set()
            new.signal()
            assert await new.wait_exit() == 0
        nursery.cancel_scope.cancel()
    assert load.failures == [], load.failures[:10]


async def test_a_takeover_is_refused_when_the_listen_addresses_differ(
    tmp_path: Path, processes: Processes
) -> None:
    async with trio.open_nursery() as nursery:
        app = await start_app(nursery)
        config = config_for(tmp_path, app)
        proxy, admin = ports(config)
        with trio.fail_after(60):
            old = processes.serve(config, name="old")
            await old.wait_log(LISTENING)
            moved = free_port()
            config.write_text(config.read_text().replace(f":{admin}", f":{moved}"))
            refused = processes.serve(config, "--takeover", name="refused")
            assert await refused.wait_exit() == 1
            await old.wait_log("takeover aborted by pid=")
            assert (await get(proxy, HOST)).status == 200
            old.signal()
            assert await old.wait_exit() == 0
        nursery.cancel_scope.cancel()
    message = refused.log()
    assert "cannot take over: the listen addresses differ" in message
    assert f"server.admin_listen: the running process listens on 127.0.0.1:{admin}" in message
    assert "restart it instead" in message
