"""Graceful shutdown: stop accepting, close idle connections, let requests finish (bounded)."""

from __future__ import annotations

import contextlib
import os
import socket

import trio
import trio.lowlevel
import trio.testing
from proxy_helpers import Client, Exchange, harness, until, wait_for_requests

from hotswap.proxy.connection import FIRST_REQUEST_GRACE


async def test_shutdown_finishes_requests_in_flight_and_closes_idle_connections() -> None:
    release = trio.Event()

    async def held(ex: Exchange) -> None:
        if ex.request.target == b"/slow":
            await release.wait()
        await ex.respond(200, b"done")

    async with harness() as h:
        backend = h.route("app.test", await h.upstream(held))
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as idle, Client.connect(proxy.port) as busy:
            assert (await idle.request("GET", "/", "app.test")).status == 200
            await busy.send_request("GET", "/slow", "app.test")
            await wait_for_requests(backend, 1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(proxy.shutdown, 10.0)
                assert await idle.stream.receive_some(100) == b""  # closed at once
                try:
                    refused = await trio.open_tcp_stream("127.0.0.1", proxy.port)
                except OSError:
                    pass
                else:  # accepted by the kernel before the listener closed: never served
                    async with refused:
                        assert await refused.receive_some(100) == b""
                release.set()
                resp = await busy.read_response()
                assert (resp.status, resp.body) == (200, b"done")
                assert resp.headers[b"connection"] == b"close"
        assert proxy.open_connections == 0
        assert backend.inflight.total == 0


async def test_shutdown_grace_bounds_the_wait_for_requests_in_flight() -> None:
    async def never(ex: Exchange) -> None:
        await trio.sleep_forever()

    async with harness() as h:
        backend = h.route("app.test", await h.upstream(never))
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as busy:
            await busy.send_request("GET", "/", "app.test")
            await wait_for_requests(backend, 1)
            await proxy.shutdown(0.2)
            assert await busy.stream.receive_some(100) == b""
        assert proxy.open_connections == 0
        assert backend.inflight.total == 0


NEXT = b"GET /next HTTP/1.1\r\nHost: app.test\r\n\r\n"


async def read_until_closed(stream: trio.SocketStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


async def test_a_request_racing_the_drain_of_its_idle_connection_is_served_or_never_sent() -> None:
    """The drain closes an idle keep-alive connection by cancelling it; when the next
    request's bytes arrive in the same scheduler tick, the connection may already be
    running with that cancel pending. That request must not reach the app and then be
    cut (a 504 or a reset after it ran): it is served, or the connection closes with
    nothing sent, the keep-alive race every client retries an idempotent request on."""
    seen: list[bytes] = []

    async def slowish(ex: Exchange) -> None:
        seen.append(ex.request.target)
        await trio.sleep(0.01)  # a checkpoint while the request waits on the app
        # No pooled connection left: the next request opens one (more checkpoints).
        await ex.respond(200, b"ok", [(b"connection", b"close")])

    outcomes: dict[str, int] = {}
    for _ in range(24):
        seen.clear()
        async with harness() as h:
            h.route("app.test", await h.upstream(slowish))
            proxy = await h.proxy()
            async with Client.connect(proxy.port) as client:
                assert (await client.request("GET", "/first", "app.test")).status == 200
                await trio.testing.wait_all_tasks_blocked()  # idle, waiting for a request
                async with trio.open_nursery() as nursery:
                    # Written without a checkpoint, the drain started in the same tick:
                    # the next I/O poll wakes the connection, and the drain runs before
                    # it in about half of the scheduler's batches.
                    os.write(client.stream.socket.fileno(), NEXT)
                    nursery.start_soon(proxy.shutdown, 10.0)
                    raw = await read_until_closed(client.stream)
        if raw:
            assert raw.startswith(b"HTTP/1.1 200 "), raw[:80]
            assert raw.endswith(b"ok")
            outcomes["served"] = outcomes.get("served", 0) + 1
        else:
            assert seen == [b"/first"], "the request reached the app but got no answer"
            # Nothing of it was forwarded: no exchange was started, none logged.
            assert [line for line in h.access_lines if "/next" in line] == []
            outcomes["closed"] = outcomes.get("closed", 0) + 1
    assert outcomes.get("closed", 0) > 0, f"the race never happened: {outcomes}"
    assert sum(outcomes.values()) == 24


async def test_a_connection_accepted_before_the_drain_is_served_when_its_request_comes() -> None:
    """The client of a connection the proxy accepted is sending its first request: the
    drain does not close it under the client (a reset), it waits for the request
    (header_timeout at most) and answers it with Connection: close."""
    async with harness() as h:
        backend = h.route("app.test", await h.upstream())
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as fresh:
            await until(lambda: proxy.open_connections == 1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(proxy.shutdown, 10.0)
                await trio.testing.wait_all_tasks_blocked()
                assert proxy.open_connections == 1
                resp = await fresh.request("GET", "/", "app.test")
                assert (resp.status, resp.headers[b"connection"]) == (200, b"close")
                assert await fresh.stream.receive_some(100) == b""
        assert proxy.open_connections == 0
        assert backend.inflight.total == 0


async def test_a_silent_new_connection_does_not_hold_a_stop_for_header_timeout() -> None:
    """A connection that sends nothing (a browser's preconnect) gets FIRST_REQUEST_GRACE
    to start its request once the stop begins, not all of header_timeout: a stopping
    process keeps its port closed until it exits."""
    async with harness(limit=30) as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(header_timeout=60.0)
        async with Client.connect(proxy.port) as silent:
            await until(lambda: proxy.open_connections == 1)
            with trio.fail_after(20):  # far below header_timeout and the grace
                await proxy.shutdown(60.0)
            assert await silent.stream.receive_some(100) == b""
        assert proxy.open_connections == 0


async def test_a_first_request_begun_in_the_grace_gets_header_timeout_to_finish() -> None:
    """FIRST_REQUEST_GRACE bounds the wait for a request to begin; one that began in it
    is a request on the wire: its head has header_timeout from its first byte."""
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(header_timeout=30.0)
        async with Client.connect(proxy.port) as slow, trio.open_nursery() as nursery:
            await until(lambda: proxy.open_connections == 1)
            nursery.start_soon(proxy.shutdown, 30.0)
            await trio.testing.wait_all_tasks_blocked()
            await slow.stream.send_all(b"GET / HTTP/1.1\r\n")
            await trio.sleep(FIRST_REQUEST_GRACE + 0.5)
            await slow.stream.send_all(b"Host: app.test\r\n\r\n")
            raw = await read_until_closed(slow.stream)
            assert raw.startswith(b"HTTP/1.1 200 "), raw[:80]
        assert proxy.open_connections == 0


async def test_a_takeover_serves_a_first_request_whenever_it_comes() -> None:
    """The takeover's drain (keep_idle) gives a silent connection no shorter deadline: the
    new process serves the reconnects, nothing is gained by closing it."""
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(header_timeout=30.0)
        async with Client.connect(proxy.port) as late, trio.open_nursery() as nursery:
            await until(lambda: proxy.open_connections == 1)
            nursery.start_soon(lambda: proxy.shutdown(30.0, keep_idle=True))
            await trio.sleep(FIRST_REQUEST_GRACE + 0.5)
            resp = await late.request("GET", "/", "app.test")
            assert (resp.status, resp.headers[b"connection"]) == (200, b"close")
        assert proxy.open_connections == 0


async def test_nothing_is_accepted_once_accepting_stopped_even_in_the_same_tick() -> None:
    """stop_accepting() can run while the accept task is woken by a new connection but
    has not run yet (its cancel still pending). It must not accept then: a shutdown
    that found no connection would cut it before its request was read, and a
    takeover's successor (or systemd) is the one to take it from the backlog."""
    accepted_after_stop = 0
    for _ in range(24):
        async with harness() as h:
            h.route("app.test", await h.upstream())
            proxy = await h.proxy()
            client = socket.socket()
            client.setblocking(False)
            try:
                with contextlib.suppress(BlockingIOError):
                    client.connect(("127.0.0.1", proxy.port))
                await trio.lowlevel.checkpoint()  # the next I/O poll wakes the accept task
                before = proxy.open_connections  # it may have run already, at random
                proxy.stop_accepting()
                await trio.testing.wait_all_tasks_blocked()
                accepted_after_stop += proxy.open_connections - before
            finally:
                client.close()
    assert accepted_after_stop == 0
