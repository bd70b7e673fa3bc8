"""Graceful shutdown: stop accepting, close idle connections, let requests finish (bounded)."""

from __future__ import annotations

import trio
from proxy_helpers import Client, Exchange, harness, wait_for_requests


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
