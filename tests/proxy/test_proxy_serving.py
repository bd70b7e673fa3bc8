"""Serving: keep-alive, HTTP/1.0, pipelining, 100-continue, bodiless responses, framing, Host."""

from __future__ import annotations

import pytest
import trio
from proxy_helpers import Client, Exchange, fetch, harness, raw_exchange, status_of


async def test_keep_alive_client_reuses_its_connection_and_the_upstream_connection() -> None:
    async with harness() as h:
        up = await h.upstream()
        backend = h.route("app.test", up)
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            for i in range(3):
                resp = await client.request("POST", f"/p{i}", "app.test", body=b"hello %d" % i)
                assert resp.status == 200
                assert resp.body == b"hello %d" % i
                assert resp.headers[b"x-path"] == b"/p%d" % i
        assert up.connections == 1
        assert backend.pool.connects == 1
        assert backend.stats.requests == 3
        await backend.inflight.wait_idle()


async def test_http10_with_and_without_keep_alive_gets_the_response_and_a_close() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy()
        raw = await raw_exchange(proxy.port, b"GET /x HTTP/1.0\r\nHost: app.test\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200")
        assert raw.lower().count(b"x-path: /x") == 1
        raw = await raw_exchange(
            proxy.port, b"GET /y HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n"
        )
        assert raw.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in raw.lower()
        # HTTP/1.0 without Host is allowed, but routes nowhere here.
        raw = await raw_exchange(proxy.port, b"GET / HTTP/1.0\r\n\r\n")
        assert status_of(raw) == 404


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy()
        data = b"".join(b"GET /%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % i for i in range(5))
        data += b"GET /last HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
        raw = await raw_exchange(proxy.port, data)
        paths = [line.split(b": ")[1] for line in raw.split(b"\r\n") if line.startswith(b"x-path")]
        assert paths == [b"/0", b"/1", b"/2", b"/3", b"/4", b"/last"]


async def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await h.proxy()
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(
                b"PUT /u HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            interim = await stream.receive_some(1000)
            assert interim.startswith(b"HTTP/1.1 100 ")
            await stream.send_all(b"hello")
            data = b""
            while b"hello" not in data:
                data += await stream.receive_some(1000)
            assert data.startswith(b"HTTP/1.1 200 ")
        assert b"expect" not in up.requests[0].headers


async def test_head_204_and_304_responses_have_no_body() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.read_body()
        path = ex.request.target
        if path == b"/204":
            await ex.send_head(204, [])
            await ex.end()
        elif path == b"/304":
            await ex.send_head(304, [(b"etag", b'"x"')])
            await ex.end()
        else:  # HEAD: the length a GET would have
            await ex.send_head(200, [(b"content-length", b"1234")])
            await ex.end()

    async with harness() as h:
        h.route("app.test", await h.upstream(handler))
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            head = await client.request("HEAD", "/", "app.test")
            assert (head.status, head.body, head.headers[b"content-length"]) == (200, b"", b"1234")
            no_content = await client.request("GET", "/204", "app.test")
            assert (no_content.status, no_content.body) == (204, b"")
            assert b"transfer-encoding" not in no_content.headers
            not_modified = await client.request("GET", "/304", "app.test")
            assert (not_modified.status, not_modified.body) == (304, b"")
            # Still usable: nothing was left on the connection.
            assert (await client.request("GET", "/204", "app.test")).status == 204


async def test_chunked_and_content_length_bodies_both_ways() -> None:
    async def handler(ex: Exchange) -> None:
        body = await ex.read_body()
        if ex.request.target == b"/chunked":
            await ex.send_head(200, [(b"transfer-encoding", b"chunked")])
            for i in range(0, len(body), 3):
                await ex.send_data(body[i : i + 3])
            await ex.end()
        else:
            await ex.respond(200, body)

    async with harness() as h:
        up = await h.upstream(handler)
        h.route("app.test", up)
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            chunked_req = [(b"transfer-encoding", b"chunked")]
            resp = await client.request("POST", "/chunked", "app.test", chunked_req, b"0123456789")
            assert resp.body == b"0123456789"
            assert resp.headers[b"transfer-encoding"] == b"chunked"
            resp = await client.request("POST", "/length", "app.test", body=b"abcdef")
            assert resp.body == b"abcdef"
            assert resp.headers[b"content-length"] == b"6"
        assert up.requests[0].headers[b"transfer-encoding"] == b"chunked"
        assert up.requests[1].headers[b"content-length"] == b"6"


async def test_routing_by_normalised_host_and_absolute_form() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy()
        for host in ("app.test", "APP.Test", "app.test:8080", "app.test."):
            assert (await fetch(proxy.port, "GET", "/", host)).status == 200
        unknown = await fetch(proxy.port, "GET", "/", "other.test")
        assert unknown.status == 404
        raw = await raw_exchange(
            proxy.port, b"GET http://app.test/abs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert status_of(raw) == 200
        assert b"x-path: /abs" in raw


async def test_missing_or_duplicate_host_is_400() -> None:
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await h.proxy()
        raw = await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\n\r\n")
        assert status_of(raw) == 400
        raw = await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: app.test\r\nHost: b\r\n\r\n")
        assert status_of(raw) == 400
        assert up.requests == []


async def test_hop_by_hop_headers_are_removed_and_x_forwarded_headers_set() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.respond(
            200,
            b"ok",
            [(b"connection", b"x-secret"), (b"x-secret", b"1"), (b"keep-alive", b"timeout=5")],
        )

    async with harness() as h:
        up = await h.upstream(handler)
        h.route("app.test", up)
        proxy = await h.proxy()
        resp = await fetch(
            proxy.port,
            "GET",
            "/",
            "app.test",
            [
                (b"connection", b"x-drop-me"),
                (b"x-drop-me", b"1"),
                (b"keep-alive", b"300"),
                (b"te", b"trailers"),
                (b"proxy-authorization", b"Basic eA=="),
                (b"proxy-connection", b"keep-alive"),
                (b"x-forwarded-for", b"203.0.113.7"),
                (b"x-end-to-end", b"kept"),
            ],
        )
        assert resp.status == 200
        seen = up.requests[0].headers
        for name in (b"x-drop-me", b"keep-alive", b"te", b"proxy-authorization"):
            assert name not in seen
        assert b"proxy-connection" not in seen
        assert seen[b"x-end-to-end"] == b"kept"
        # From a peer that is not a trusted proxy, X-Forwarded-* are set, not extended.
        assert seen[b"x-forwarded-for"] == b"127.0.0.1"
        assert seen[b"x-forwarded-proto"] == b"http"
        assert seen[b"x-forwarded-host"] == b"app.test"
        assert seen[b"host"] == b"app.test"
        assert b"x-secret" not in resp.headers
        assert b"keep-alive" not in resp.headers


async def test_x_forwarded_host_is_the_host_the_client_sent() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.respond(200, b"ok")

    async with harness() as h:
        up = await h.upstream(handler)
        h.route("app.test", up)
        proxy = await h.proxy()
        resp = await fetch(proxy.port, "GET", "/", "App.Test:8080")
        assert resp.status == 200
        seen = up.requests[0].headers
        assert seen[b"x-forwarded-host"] == b"App.Test:8080"
        assert seen[b"host"] == b"App.Test:8080"


async def test_an_absolute_form_target_sends_its_authority_as_host() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.respond(200, b"ok")

    async with harness() as h:
        up = await h.upstream(handler)
        h.route("app.test", up)
        proxy = await h.proxy()
        head = (
            b"GET http://App.test:8080/x HTTP/1.1\r\n"
            b"Host: evil.example\r\nConnection: close\r\n\r\n"
        )
        assert status_of(await raw_exchange(proxy.port, head)) == 200
        seen = up.requests[0].headers
        assert seen[b"host"] == b"App.test:8080"  # routed by it, so the app sees it
        assert seen[b"x-forwarded-host"] == b"App.test:8080"
        assert up.requests[0].request.target == b"/x"


async def test_only_websocket_upgrades_are_forwarded() -> None:
    async def handler(ex: Exchange) -> None:
        await ex.respond(200, b"plain")

    async with harness() as h:
        up = await h.upstream(handler)
        h.route("app.test", up)
        proxy = await h.proxy()
        resp = await fetch(
            proxy.port,
            "GET",
            "/",
            "app.test",
            [
                (b"connection", b"Upgrade, HTTP2-Settings"),
                (b"upgrade", b"h2c"),
                (b"http2-settings", b"AAMAAABkAARAAAAAAAIAAAAA"),
            ],
        )
        assert resp.status == 200 and resp.body == b"plain"
        seen = up.requests[0].headers
        assert b"upgrade" not in seen
        assert b"http2-settings" not in seen
        assert seen.get(b"connection", b"") != b"upgrade"


async def test_upstream_answering_before_reading_the_body_reaches_the_client() -> None:
    async def early(ex: Exchange) -> None:
        # Answers 413 without reading the upload (and h11 then closes).
        await ex.respond(413, b"too big for me", [(b"connection", b"close")])

    async with harness() as h:
        backend = h.route("app.test", await h.upstream(early))
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            resp = await client.request("POST", "/", "app.test", body=b"x" * 2_000_000)
        assert (resp.status, resp.body) == (413, b"too big for me")
        assert backend.stats.errors == 0


async def test_close_delimited_upstream_body_reaches_the_client_chunked() -> None:
    async def http10(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(http10))
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            resp = await client.request("GET", "/", "app.test")
            assert (resp.status, resp.body) == (200, b"until close")
            assert resp.headers[b"transfer-encoding"] == b"chunked"
            again = await client.request("GET", "/", "app.test")  # the client keeps its connection
            assert again.body == b"until close"
        assert backend.stats.errors == 0
        assert backend.pool.idle_count == 0


async def test_every_listening_socket_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    # listen = "localhost:8080" can resolve to 127.0.0.1 and ::1: two listeners. This
    # machine may lack ::1, so two loopback ports stand in for the two addresses.
    opened: list[trio.SocketListener] = []
    real_open = trio.open_tcp_listeners

    async def two_listeners(port: int, *, host: str | None = None) -> list[trio.SocketListener]:
        pair = [*await real_open(0, host="127.0.0.1"), *await real_open(0, host="127.0.0.1")]
        opened.extend(pair)
        return pair

    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        monkeypatch.setattr(trio, "open_tcp_listeners", two_listeners)
        await h.proxy()
        monkeypatch.undo()
        assert len(opened) == 2
        for listener in opened:
            port = listener.socket.getsockname()[1]
            resp = await fetch(port, "GET", "/", "app.test")
            assert resp.status == 200
