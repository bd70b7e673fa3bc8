"""Limits and errors: each answered with a small page, the connection handled as HTTP requires."""

from __future__ import annotations

import contextlib
import socket

import pytest
import trio
from proxy_helpers import (
    Client,
    Exchange,
    fetch,
    harness,
    raw_exchange,
    status_of,
    wait_for_requests,
)


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost app.test\r\n\r\n",
        b"NOT A REQUEST\r\n\r\n",
        # Content-Length malformed, or sent twice with different values
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: +3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3 4\r\n\r\nabc",
        # a transfer coding other than a final chunked
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: identity\r\n\r\n",
        # request-targets not of RFC 9112 3.2's forms for their method
        b"GET app.test/x HTTP/1.1\r\nHost: app.test\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: app.test\r\n\r\n",
        b"GET ftp://app.test/x HTTP/1.1\r\nHost: app.test\r\n\r\n",
        b"GET app.test:80 HTTP/1.1\r\nHost: app.test\r\n\r\n",
        # bare CR, NUL and other control characters; obs-fold
        b"GET / HTTP/1.1\r\nHost: app.test\rX-A: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\x01b\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\nHost: app.test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX-A: a\r\n b\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: app.test\r\n\r\n",
    ],
)
async def test_malformed_or_ambiguous_requests_are_refused_and_never_forwarded(head: bytes) -> None:
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await h.proxy()
        raw = await raw_exchange(proxy.port, head)  # returns once the proxy closed
        assert status_of(raw) in (400, 501)
        assert b"connection: close" in raw.lower()
        assert up.connections == 0


@pytest.mark.parametrize(
    "response",
    [
        # a response head over the limit (64 KiB) is never relayed
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n",
        # obs-fold, a NUL, a bare CR in a response head
        b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    ],
)
async def test_an_invalid_upstream_response_head_is_502_and_never_relayed(response: bytes) -> None:
    async def bad(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(response)

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(bad))
        proxy = await h.proxy()
        raw = await raw_exchange(
            proxy.port, b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
        )
        assert status_of(raw) == 502
        assert b"x-big" not in raw.lower() and b"x-a" not in raw.lower()
        assert backend.stats.errors == 1


async def test_an_upstream_body_that_stalls_closes_the_client_after_upstream_response_timeout() -> (
    None
):
    async def stalls(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await trio.sleep_forever()

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(stalls))
        proxy = await h.proxy(upstream_response_timeout=0.3)
        raw = await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        _, _, body = raw.partition(b"\r\n\r\n")
        assert status_of(raw) == 200 and body == b"abc"  # closed: never passed as complete
        await backend.inflight.wait_idle()
        assert backend.stats.errors == 1


async def test_head_to_an_unknown_host_is_404_with_its_length_and_no_body() -> None:
    async with harness() as h:
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            resp = await client.request("HEAD", "/", "nowhere.test")
            assert resp.status == 404 and resp.body == b""
            assert int(resp.headers[b"content-length"]) > 0
            # the connection is still in step: the next request is answered
            assert (await client.request("GET", "/", "nowhere.test")).status == 404


async def test_error_pages_have_a_status_line_with_a_reason() -> None:
    async with harness() as h:
        proxy = await h.proxy()
        head = b"GET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n"
        raw = await raw_exchange(proxy.port, head)
        assert raw.startswith(b"HTTP/1.1 404 Not Found\r\n")


async def test_request_head_over_the_limit_is_431() -> None:
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await h.proxy()
        head = b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
        assert status_of(await raw_exchange(proxy.port, head)) == 431
        # Under the read size: the whole head arrives at once, h11 does not limit it.
        head = b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n"
        raw = await raw_exchange(proxy.port, head)
        assert status_of(raw) == 431
        assert b"connection: close" in raw.lower()
        assert up.connections == 0


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/2.0\r\nHost: app.test\r\n\r\n", 505),
        (b"GET / HTTP/1.2\r\nHost: app.test\r\n\r\n", 505),
        (b"CONNECT app.test:443 HTTP/1.1\r\nHost: app.test:443\r\n\r\n", 405),
    ],
)
async def test_requests_hotswap_does_not_forward_are_refused_and_closed(
    head: bytes, status: int
) -> None:
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await h.proxy()
        raw = await raw_exchange(proxy.port, head)  # returns once the proxy closed
        assert status_of(raw) == status
        assert b"connection: close" in raw.lower()
        assert up.connections == 0


async def test_declared_body_over_max_body_size_is_413_at_once() -> None:
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await h.proxy(max_body_size=1000)
        # Only the head is sent: the answer must not wait for the body.
        raw = await raw_exchange(
            proxy.port, b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1001\r\n\r\n"
        )
        assert status_of(raw) == 413
        assert up.connections == 0
        ok = await fetch(proxy.port, "POST", "/", "app.test", body=b"x" * 1000)
        assert ok.status == 200


async def test_chunked_body_is_413_as_soon_as_it_crosses_the_limit() -> None:
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await h.proxy(max_body_size=1000)
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(
                b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            await stream.send_all(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
            await stream.send_all(b"1\r\ny\r\n")  # crosses the limit; the body never ends
            data = b""
            while chunk := await stream.receive_some(65536):
                data += chunk
        assert status_of(data) == 413


async def test_max_connections_reached_is_503() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(max_connections=2)
        async with Client.connect(proxy.port) as c1, Client.connect(proxy.port) as c2:
            assert (await c1.request("GET", "/", "app.test")).status == 200
            assert (await c2.request("GET", "/", "app.test")).status == 200
            raw = await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
            assert status_of(raw) == 503
            assert proxy.rejected == 1


async def test_slow_request_head_is_408_and_closed() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(header_timeout=0.3)
        raw = await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: app")  # never finished
        assert status_of(raw) == 408


async def test_idle_keep_alive_connection_is_closed_after_idle_timeout() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(idle_timeout=0.3)
        async with Client.connect(proxy.port) as client:
            assert (await client.request("GET", "/", "app.test")).status == 200
            assert await client.stream.receive_some(100) == b""  # closed, without a 408
        assert proxy.open_connections == 0


async def test_refused_upstream_is_502_and_counted_as_a_connect_error() -> None:
    async with harness() as h:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now

        class Dead:
            address = __import__("hotswap.config", fromlist=["Address"]).Address("127.0.0.1", port)

        backend = h.route("app.test", Dead)  # type: ignore[arg-type]
        proxy = await h.proxy()
        resp = await fetch(proxy.port, "GET", "/", "app.test")
        assert resp.status == 502
        assert (backend.stats.errors, backend.stats.connect_errors) == (1, 1)
        await backend.inflight.wait_idle()


async def test_unreachable_upstream_is_502_after_upstream_connect_timeout() -> None:
    async with harness() as h:
        # A listener that never accepts, its accept queue full: further SYNs are dropped.
        full = socket.socket()
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        fillers = []
        port = full.getsockname()[1]

        class Stuck:
            address = __import__("hotswap.config", fromlist=["Address"]).Address("127.0.0.1", port)

        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            fillers.append(filler)
        try:
            backend = h.route("app.test", Stuck)  # type: ignore[arg-type]
            proxy = await h.proxy(upstream_connect_timeout=0.3)
            resp = await fetch(proxy.port, "GET", "/", "app.test")
            assert resp.status == 502
            assert backend.stats.connect_errors == 1
        finally:
            for filler in fillers:
                filler.close()
            full.close()


async def test_response_head_late_is_504() -> None:
    async def slow(ex: Exchange) -> None:
        await trio.sleep_forever()

    async with harness() as h:
        backend = h.route("app.test", await h.upstream(slow))
        proxy = await h.proxy(upstream_response_timeout=0.3)
        resp = await fetch(proxy.port, "GET", "/", "app.test")
        assert resp.status == 504
        assert backend.stats.errors == 1
        assert backend.stats.connect_errors == 0


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        # Both framings: h11 would let chunked win; a proxy must not relay it (RFC 9112 6.3).
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"8\r\nhello!!!\r\n0\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    ],
)
async def test_invalid_upstream_response_is_502(response: bytes) -> None:
    async def garbage(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(response)

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(garbage))
        proxy = await h.proxy()
        resp = await fetch(proxy.port, "GET", "/", "app.test")
        assert resp.status == 502
        assert backend.stats.errors == 1


async def test_upstream_closing_mid_body_closes_the_client_connection() -> None:
    async def short(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 40)

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(short))
        proxy = await h.proxy()
        raw = await raw_exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"content-length: 100" in head.lower()
        assert len(body) == 40  # closed: the short body cannot pass for a complete one
        assert backend.stats.errors == 1


async def test_a_request_body_that_stalls_is_408_after_idle_timeout_and_frees_the_backend() -> None:
    upstream_saw_close = trio.Event()

    async def reads_until_closed(stream: trio.SocketStream) -> None:
        while await stream.receive_some(65536):
            pass
        upstream_saw_close.set()

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(reads_until_closed))
        proxy = await h.proxy(idle_timeout=0.3)
        head = b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nabc"
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(head)  # 3 of 10 bytes, then nothing
            raw = b""
            while chunk := await stream.receive_some(65536):
                raw += chunk
        assert status_of(raw) == 408
        assert b"connection: close" in raw.lower()
        await backend.inflight.wait_idle()
        await upstream_saw_close.wait()  # the upstream exchange was given up too


async def test_a_client_that_stops_reading_is_closed_after_idle_timeout() -> None:
    async def endless(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        while True:  # until the proxy closes this connection
            await stream.send_all(chunk)

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(endless))
        proxy = await h.proxy(idle_timeout=0.3)
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
            await wait_for_requests(backend, 1)
            # Read nothing: the proxy's writes block, and after idle_timeout it gives up.
            await backend.inflight.wait_idle()
            assert backend.stats.client_aborts == 1
            # What was buffered drains, then EOF or a reset: the proxy closed the
            # connection (if it did not, this would hang until the harness's limit).
            try:
                while await stream.receive_some(1 << 20):
                    pass
            except trio.BrokenResourceError:
                pass


async def test_client_going_away_is_499_a_client_abort_and_cancels_the_upstream_exchange() -> None:
    upstream_saw_close = trio.Event()

    async def waits(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        while await stream.receive_some(65536):
            pass
        upstream_saw_close.set()

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(waits))
        proxy = await h.proxy()
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        await stream.send_all(b"GET /gone HTTP/1.1\r\nHost: app.test\r\n\r\n")
        await wait_for_requests(backend, 1)
        await stream.aclose()
        await upstream_saw_close.wait()
        await backend.inflight.wait_idle()
        assert backend.stats.client_aborts == 1
        assert backend.stats.errors == 0
    assert any("status=499" in line and "path=/gone" in line for line in h.access_lines)


async def test_streamed_response_reaches_the_client_chunk_by_chunk() -> None:
    seen = [trio.Event() for _ in range(5)]

    async def events(ex: Exchange) -> None:
        await ex.send_head(200, [(b"content-type", b"text/event-stream")])
        for i in range(5):
            await ex.send_data(b"data: %d\n\n" % i)
            # The next event is sent only after the client saw this one: a proxy
            # that buffered would deadlock here (and hit the test's deadline).
            with trio.move_on_after(5):
                await seen[i].wait()
            await trio.sleep(0.1)
        await ex.end()

    async with harness() as h:
        h.route("app.test", await h.upstream(events))
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            await client.send_request("GET", "/events", "app.test")
            received = b""
            i = 0
            while i < 5:
                event = await client._next()
                data = bytes(getattr(event, "data", b""))
                received += data
                while i < 5 and b"data: %d\n\n" % i in received:
                    seen[i].set()
                    i += 1
        assert all(event.is_set() for event in seen)


async def test_access_log_has_one_line_per_request() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy()
        await fetch(proxy.port, "POST", "/logged?q=1", "app.test", body=b"12345")
    lines = h.access_lines
    assert len(lines) == 1
    for part in (
        "host=app.test",
        "method=POST",
        "path=/logged?q=1",
        "status=200",
        "bytes=5",
        "backend=b1",
        "client=127.0.0.1",
        "duration_ms=",
    ):
        assert part in lines[0]


async def test_slow_head_on_a_keep_alive_connection_is_408_after_header_timeout() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(header_timeout=0.3, idle_timeout=30)
        async with Client.connect(proxy.port) as client:
            assert (await client.request("GET", "/", "app.test")).status == 200
            await client.stream.send_all(b"GET / HTTP/1.1\r\n")  # and no more
            data = b""
            while chunk := await client.stream.receive_some(65536):
                data += chunk
        assert status_of(data) == 408


def test_h11_is_recent_enough_to_refuse_request_smuggling() -> None:
    # h11 0.15 and older let a smuggled request through (GHSA-vqfr-h8mv-ghfj).
    import h11

    major, minor = (int(part) for part in h11.__version__.split(".")[:2])
    assert (major, minor) >= (0, 16)


async def test_bytes_after_a_bodiless_response_never_reach_another_request() -> None:
    # An app that sends a body with its answer to HEAD: the extra bytes look like a
    # response; a pooled connection holding them would answer the next request.
    fake = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nPWNED!"

    async def sloppy(stream: trio.SocketStream) -> None:
        while data := await stream.receive_some(65536):
            if data.startswith(b"HEAD"):
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(fake) + fake
                )
            else:
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")

    async with harness() as h:
        up = await h.raw_upstream(sloppy)
        h.route("app.test", up)
        proxy = await h.proxy()
        assert (await fetch(proxy.port, "HEAD", "/", "app.test")).status == 200
        other = await fetch(proxy.port, "GET", "/private", "app.test")  # another client
        assert (other.status, other.body) == (200, b"real")
        assert up.connections == 2  # the first upstream connection was not reused


async def test_an_upstream_that_reads_no_body_is_504_after_upstream_response_timeout() -> None:
    async def reads_nothing(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(reads_nothing))
        proxy = await h.proxy(upstream_response_timeout=0.5)
        size = 32 * 1024 * 1024  # more than every socket buffer on the way
        head = b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % size
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        raw = b""
        async with stream, trio.open_nursery() as nursery:

            async def send_body() -> None:
                await stream.send_all(head)
                chunk = b"x" * (1 << 20)
                with contextlib.suppress(trio.BrokenResourceError):
                    for _ in range(size // len(chunk)):
                        await stream.send_all(chunk)
                await trio.sleep_forever()

            nursery.start_soon(send_body)
            while b"\r\n\r\n" not in raw:
                chunk = await stream.receive_some(65536)
                assert chunk, raw
                raw += chunk
            nursery.cancel_scope.cancel()
        assert status_of(raw) == 504
        await backend.inflight.wait_idle()


async def test_an_unrouted_request_with_a_body_says_connection_close() -> None:
    async with harness() as h:
        proxy = await h.proxy()
        head = b"POST / HTTP/1.1\r\nHost: nowhere.test\r\nContent-Length: 5\r\n\r\nhello"
        raw = await raw_exchange(proxy.port, head)  # returns once the proxy closed
        assert status_of(raw) == 404
        assert b"connection: close" in raw.lower()
