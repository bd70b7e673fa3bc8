"""The DESIGN.md invariants of the proxy, one test each, plus the upstream pool."""

from __future__ import annotations

import trio
from proxy_helpers import Client, Exchange, fetch, harness, until, wait_for_requests


async def test_keep_alive_client_moves_to_the_new_backend_at_its_next_request() -> None:
    async with harness() as h:
        old_up = await h.upstream()
        new_up = await h.upstream()
        old = h.route("app.test", old_up, name="old")
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            assert (await client.request("GET", "/1", "app.test")).status == 200
            new = h.route("app.test", new_up, name="new")
            old.close()
            assert (await client.request("GET", "/2", "app.test")).status == 200
        assert [ex.request.target for ex in old_up.requests] == [b"/1"]
        assert [ex.request.target for ex in new_up.requests] == [b"/2"]
        assert (old.stats.requests, new.stats.requests) == (1, 1)


async def test_request_in_flight_across_a_switch_is_counted_on_the_old_backend() -> None:
    release = trio.Event()

    async def held(ex: Exchange) -> None:
        await release.wait()
        await ex.respond(200, b"old")

    async with harness() as h:
        old = h.route("app.test", await h.upstream(held), name="old")
        new = h.route("app.test", await h.upstream(), name="new")
        h.routes.switch("app.test", old)
        proxy = await h.proxy()
        async with trio.open_nursery() as nursery:
            results: list[bytes] = []

            async def request() -> None:
                results.append((await fetch(proxy.port, "GET", "/", "app.test")).body)

            nursery.start_soon(request)
            await wait_for_requests(old, 1)
            assert old.inflight.requests == 1
            h.routes.switch("app.test", new)
            assert old.inflight.requests == 1  # still counted where it started
            assert new.inflight.requests == 0
            release.set()
        assert results == [b"old"]
        await old.inflight.wait_idle()
        assert (old.stats.requests, new.stats.requests) == (1, 0)


async def test_a_path_route_request_in_flight_across_a_switch_stays_on_the_old_backend() -> None:
    # acquire() resolves host + path and counts in one step: a deploy of the path route
    # switching right after leaves the request counted (and drained) where it started.
    release = trio.Event()

    async def held(ex: Exchange) -> None:
        await release.wait()
        await ex.respond(200, b"old api")

    async with harness() as h:
        site = h.route("example.com", await h.upstream(), name="site")
        old = h.route("example.com/api", await h.upstream(held), name="old")
        new = h.route("example.com/api", await h.upstream(), name="new")
        h.routes.switch("example.com/api", old)
        proxy = await h.proxy()
        async with trio.open_nursery() as nursery:
            results: list[bytes] = []

            async def request() -> None:
                response = await fetch(proxy.port, "GET", "/api/slow", "example.com")
                results.append(response.body)

            nursery.start_soon(request)
            await wait_for_requests(old, 1)
            h.routes.switch("example.com/api", new)
            assert (old.inflight.requests, new.inflight.requests) == (1, 0)
            assert (await fetch(proxy.port, "GET", "/api/x", "example.com")).status == 200
            release.set()
        assert results == [b"old api"]
        await old.inflight.wait_idle()
        assert (old.stats.requests, new.stats.requests, site.stats.requests) == (1, 1, 0)


async def test_wait_idle_returns_once_the_last_response_byte_is_written() -> None:
    release = trio.Event()
    body = b"z" * 300_000

    async def held(ex: Exchange) -> None:
        await ex.send_head(200, [(b"content-length", str(len(body)).encode())])
        await release.wait()
        await ex.send_data(body)
        await ex.end()

    async with harness() as h:
        backend = h.route("app.test", await h.upstream(held))
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            await client.send_request("GET", "/", "app.test")
            await wait_for_requests(backend, 1)
            order: list[str] = []

            async def drain() -> None:
                await backend.inflight.wait_idle()
                order.append("idle")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain)
                await trio.sleep(0.05)
                assert order == []  # the response is not written yet
                release.set()
                resp = await client.read_response()
                order.append("response read")
            assert resp.body == body
            assert "idle" in order
            assert backend.inflight.total == 0


async def test_pooled_connection_closed_by_the_upstream_causes_no_error() -> None:
    async def close_after_each(ex: Exchange) -> None:
        # Keep-alive in name (no Connection: close), but close right after answering.
        await ex.read_body()  # an app that answers before the body: see test_proxy_limits
        await ex.respond(200, b"ok")
        await ex.stream.aclose()

    async with harness() as h:
        up = await h.upstream(close_after_each)
        backend = h.route("app.test", up)
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            for _ in range(5):
                assert (await client.request("GET", "/", "app.test")).status == 200
                await trio.sleep(0.02)  # the close reaches the idle pooled connection
            for _ in range(5):  # a POST must not fail either
                resp = await client.request("POST", "/", "app.test", body=b"data")
                assert resp.status == 200
                await trio.sleep(0.02)
        assert backend.stats.errors == 0
        assert up.connections == 10


async def test_idempotent_request_is_retried_once_when_a_reused_connection_fails() -> None:
    requests_seen = 0

    async def second_request_dropped(stream: trio.SocketStream) -> None:
        nonlocal requests_seen
        # First request on a connection: answer; second: read it and close (the race
        # of an upstream keep-alive timeout the readability check cannot see).
        data = await stream.receive_some(65536)
        requests_seen += 1
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        if await stream.receive_some(65536):
            requests_seen += 1
        del data

    async with harness() as h:
        up = await h.raw_upstream(second_request_dropped)
        backend = h.route("app.test", up)
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            assert (await client.request("GET", "/", "app.test")).status == 200
            assert (await client.request("GET", "/", "app.test")).status == 200
            assert up.connections == 2
            # A POST that reached the upstream is never replayed: 502.
            resp = await client.request("POST", "/", "app.test", body=b"once")
            assert resp.status == 502
        assert up.connections == 2
        assert backend.stats.errors == 1


async def test_backend_close_closes_its_idle_connections_at_once() -> None:
    async with harness() as h:
        up = await h.upstream()
        backend = h.route("app.test", up)
        proxy = await h.proxy()
        assert (await fetch(proxy.port, "GET", "/", "app.test")).status == 200
        assert backend.pool.idle_count == 1
        backend.close()
        assert backend.pool.idle_count == 0
        await until(lambda: not up.open_streams)
        # A request still routed there opens a connection and closes it after use.
        assert (await fetch(proxy.port, "GET", "/", "app.test")).status == 200
        assert backend.pool.idle_count == 0
