"""Edge cases of timeouts, uploads, pipelining and retries (found by a review of the
proxy rewrite; each failed before its fix)."""

from __future__ import annotations

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


async def test_head_request_whose_upstream_times_out_gets_a_504() -> None:
    """_after_deadline clears self.outcome before _answer(): send_response() no longer
    knows the request was HEAD and writes the error body after a bodiless head."""

    async def slow(ex: Exchange) -> None:
        await trio.sleep_forever()

    async with harness() as h:
        backend = h.route("app.test", await h.upstream(slow))
        proxy = await h.proxy(upstream_response_timeout=0.3)
        raw = await raw_exchange(proxy.port, b"HEAD / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 504 "), raw
        await backend.inflight.wait_idle()
    assert any("status=504" in line for line in h.access_lines), h.access_lines


@pytest.mark.parametrize("reason", [b"O\x00K", b"O\x01K", b"O\x1bK", b"O\x7fK", b"O\x0bK"])
async def test_a_control_character_in_the_reason_phrase_is_502_and_never_relayed(
    reason: bytes,
) -> None:
    async def garbage(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 " + reason + b"\r\nContent-Length: 2\r\n\r\nok")

    async with harness() as h:
        h.route("app.test", await h.raw_upstream(garbage))
        proxy = await h.proxy()
        raw = await raw_exchange(
            proxy.port, b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
        )
        assert status_of(raw) == 502, raw
        assert reason not in raw


class _StuckListener:
    """A listener whose accept queue is full: connects to it hang (SYNs dropped)."""

    def __init__(self) -> None:
        from hotswap.config import Address

        self.full = socket.socket()
        self.full.bind(("127.0.0.1", 0))
        self.full.listen(0)
        port = self.full.getsockname()[1]
        self.address = Address("127.0.0.1", port)
        self.fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            self.fillers.append(filler)

    def close(self) -> None:
        for filler in self.fillers:
            filler.close()
        self.full.close()


async def test_a_request_sent_late_in_the_idle_wait_gets_its_502_not_a_silent_close() -> None:
    """The phase (and deadline) left by _read_request is stale IDLE while the exchange
    connects: the wheel cancels the connect and the connection closes unanswered."""
    stuck = _StuckListener()
    try:
        async with harness() as h:
            h.route("app.test", await h.upstream())
            backend = h.route("stuck.test", stuck, name="b2")  # type: ignore[arg-type]
            proxy = await h.proxy(idle_timeout=1.0, upstream_connect_timeout=0.6)
            async with Client.connect(proxy.port) as client:
                assert (await client.request("GET", "/", "app.test")).status == 200
                await trio.sleep(0.8)  # keep-alive wait, within idle_timeout
                resp = await client.request("GET", "/", "stuck.test")
                assert resp.status == 502
            assert backend.stats.connect_errors == 1
    finally:
        stuck.close()


async def test_a_first_request_sent_late_in_header_timeout_gets_its_502() -> None:
    stuck = _StuckListener()
    try:
        async with harness() as h:
            h.route("stuck.test", stuck)  # type: ignore[arg-type]
            proxy = await h.proxy(header_timeout=1.0, upstream_connect_timeout=0.6)
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            async with stream:
                await trio.sleep(0.8)
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: stuck.test\r\n\r\n")
                raw = b""
                while b"\r\n\r\n" not in raw and (chunk := await stream.receive_some(65536)):
                    raw += chunk
            assert raw.startswith(b"HTTP/1.1 502 "), raw
    finally:
        stuck.close()


async def test_a_slow_upload_to_an_app_that_reads_it_all_is_not_a_504() -> None:
    """The body task's blocked upstream write moves the connection's deadline
    (Phase.UPSTREAM, now + upstream_response_timeout), replacing the 'no deadline while
    the body is sent' the response side set: a live upload then times out as a 504."""
    big = 8 * 1024 * 1024
    trickle = [b"y" * 1024] * 10
    size = big + sum(map(len, trickle))

    async def reads_after_a_pause(stream: trio.SocketStream) -> None:
        await trio.sleep(0.3)  # e.g. an auth check before reading the body
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        got = len(data.partition(b"\r\n\r\n")[2])
        while got < size:
            chunk = await stream.receive_some(1 << 20)
            assert chunk
            got += len(chunk)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async with harness(limit=15) as h:
        h.route("app.test", await h.raw_upstream(reads_after_a_pause))
        proxy = await h.proxy(upstream_response_timeout=0.5, idle_timeout=5.0)
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        raw = b""
        async with stream, trio.open_nursery() as nursery:

            async def send_body() -> None:
                await stream.send_all(
                    b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n\r\n" % size
                )
                await stream.send_all(b"x" * big)
                for piece in trickle:  # a slow client: 1 KB every 0.15 s
                    await trio.sleep(0.15)
                    await stream.send_all(piece)

            nursery.start_soon(send_body)
            while b"\r\n\r\n" not in raw:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                raw += chunk
            nursery.cancel_scope.cancel()
        assert status_of(raw) == 200, raw[:200]


async def test_a_client_that_closes_while_its_post_waits_on_the_app_is_noticed() -> None:
    """watch_client is read once when _receive_upstream starts waiting; for a request
    with a body that wait starts while the body task still reads the client, so the
    watch is never begun for it: the exchange (and the in-flight count a drain waits
    for) lasts until upstream_response_timeout."""
    upstream_saw_close = trio.Event()

    async def reads_body_then_waits(stream: trio.SocketStream) -> None:
        data = b""
        while not data.endswith(b"hello"):
            data += await stream.receive_some(65536)
        while await stream.receive_some(65536):
            pass
        upstream_saw_close.set()

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(reads_body_then_waits))
        proxy = await h.proxy()  # upstream_response_timeout: 60 s
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        await stream.send_all(
            b"POST /gone HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello"
        )
        await wait_for_requests(backend, 1)
        await trio.sleep(0.2)
        await stream.aclose()
        with trio.fail_after(2):  # the GET equivalent takes 0.05 - 0.1 s
            await backend.inflight.wait_idle()
            await upstream_saw_close.wait()
        assert backend.stats.client_aborts == 1


async def test_the_retry_after_a_stale_pooled_connection_uses_a_fresh_one() -> None:
    """An app that drops every kept-alive connection as its next request arrives (a
    keep-alive timeout racing the request): the retry takes the next pooled connection,
    stale the same way, and the client gets a 502 for an idempotent GET."""
    both_in = trio.Event()
    arrived = 0

    async def one_request_per_connection(stream: trio.SocketStream) -> None:
        nonlocal arrived
        await stream.receive_some(65536)
        arrived += 1
        if arrived == 2:
            both_in.set()
        await both_in.wait()  # two connections busy at once: the pool gets two
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await stream.receive_some(65536)  # the next request: close without answering

    async with harness() as h:
        up = await h.raw_upstream(one_request_per_connection)
        backend = h.route("app.test", up)
        proxy = await h.proxy()
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(fetch, proxy.port, "GET", "/", "app.test")
        assert backend.pool.idle_count == 2
        resp = await fetch(proxy.port, "GET", "/", "app.test")
        assert resp.status == 200


async def test_control_a_slow_upload_with_expect_100_continue_over_plain_http_passes() -> None:
    """The plain-HTTP twin of test_review9_tls.py's failing test (passes)."""
    pieces = [b"x" * 1000] * 10
    size = sum(map(len, pieces))
    async with harness(limit=15) as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(idle_timeout=0.6)
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(
                b"PUT /u HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n"
                b"Expect: 100-continue\r\n\r\n" % size
            )
            assert (await stream.receive_some(1000)).startswith(b"HTTP/1.1 100 ")
            for piece in pieces:
                await trio.sleep(0.15)
                await stream.send_all(piece)
            raw = b""
            while b"\r\n\r\n" not in raw:
                raw += await stream.receive_some(65536)
        assert status_of(raw) == 200


async def test_a_request_cut_at_the_end_of_the_shutdown_grace_is_logged() -> None:
    """The handler nursery's cancellation passes through the connection's scope, so
    _after_deadline (which logs and counts) never runs: the request leaves no trace."""

    async def slow(ex: Exchange) -> None:
        await trio.sleep_forever()

    async with harness() as h:
        backend = h.route("app.test", await h.upstream(slow))
        proxy = await h.proxy()
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        async with stream:
            await stream.send_all(b"GET /cut HTTP/1.1\r\nHost: app.test\r\n\r\n")
            await wait_for_requests(backend, 1)
            await proxy.shutdown(0.2)
        await backend.inflight.wait_idle()
    assert any("path=/cut" in line for line in h.access_lines), h.access_lines


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    ],
)
async def test_an_invalid_body_that_came_with_the_head_is_a_502_not_an_empty_reply(
    response: bytes,
) -> None:
    """The response head is serialised but not yet written when the body already in the
    buffer turns out invalid: UpstreamBroken closes the connection with nothing sent (the
    client sees an empty reply) and the access log says 200."""

    async def garbage(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(response)

    async with harness() as h:
        h.route("app.test", await h.raw_upstream(garbage))
        proxy = await h.proxy()
        raw = await raw_exchange(proxy.port, b"GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 502 "), raw
    assert any("status=502" in line for line in h.access_lines), h.access_lines


_FLOOD_CLIENT = """
import socket, sys, threading
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
count = int(sys.argv[2])
batch = b"GET / HTTP/1.1\\r\\nHost: nowhere.test\\r\\n\\r\\n" * 1000
def send():
    for _ in range(count // 1000):
        c.sendall(batch)
    c.shutdown(socket.SHUT_WR)
threading.Thread(target=send, daemon=True).start()
while c.recv(1 << 20):
    pass
"""


async def test_one_pipelining_client_does_not_starve_the_event_loop() -> None:
    """Requests the proxy answers itself on a pipelining connection come from the
    codec's buffer, no read waits: the connection must still yield now and then. Counted,
    not timed: another task must get its turns while the requests are answered."""
    import sys

    requests = 30_000
    async with harness(limit=120) as h:
        proxy = await h.proxy(access_log="off")
        turns = 0
        done = trio.Event()

        async def other_task() -> None:
            nonlocal turns
            while not done.is_set():
                await trio.lowlevel.checkpoint()
                turns += 1

        h.nursery.start_soon(other_task)
        await trio.run_process(
            [sys.executable, "-c", _FLOOD_CLIENT, str(proxy.port), str(requests)]
        )
        done.set()
    # A turn at least every 100 answers (FAIR_RUN is 16); without the yield it got
    # a handful in all.
    assert turns * 100 >= requests, turns


async def test_a_client_that_never_reads_a_small_response_is_a_client_abort() -> None:
    """The whole response is serialised (head, body, end) before the one write that
    blocks: codec.response_done is already True when the SEND deadline passes, so
    _after_deadline takes it for 'completed just in time' - logged 200, no abort counted,
    although the client got part of it and a close."""
    body = b"x" * 40_000

    async def small(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await trio.sleep_forever()

    async with harness() as h:
        backend = h.route("app.test", await h.raw_upstream(small))
        proxy = await h.proxy(idle_timeout=0.3)
        # Small socket buffers towards the client (accepted sockets inherit SO_SNDBUF):
        # 40 KB cannot be buffered on the way.
        proxy.listeners[0].socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock = trio.socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # reads nothing below
        await sock.connect(("127.0.0.1", proxy.port))
        with sock:
            await sock.send(b"GET /never-read HTTP/1.1\r\nHost: app.test\r\n\r\n")
            await wait_for_requests(backend, 1)
            await backend.inflight.wait_idle()
            await trio.sleep(0.1)
    line = next(line for line in h.access_lines if "/never-read" in line)
    assert "status=499" in line, line
    assert backend.stats.client_aborts == 1
