"""The proxy's side of a takeover: the drain keeps keep-alive connections for their next
request (answered with Connection: close) instead of closing them under the client; the
listening socket stays open for the process that holds it too."""

from __future__ import annotations

import socket

import trio
import trio.testing
from proxy_helpers import Client, Exchange, harness, wait_for_requests


async def test_an_idle_keep_alive_connection_gets_its_next_request_answered_with_close() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as idle, trio.open_nursery() as nursery:
            assert (await idle.request("GET", "/", "app.test")).status == 200
            nursery.start_soon(lambda: proxy.shutdown(10.0, keep_idle=True))
            await trio.testing.wait_all_tasks_blocked()
            assert proxy.open_connections == 1  # not closed under the client
            resp = await idle.request("GET", "/again", "app.test")
            assert (resp.status, resp.headers[b"connection"]) == (200, b"close")
            assert await idle.stream.receive_some(100) == b""
        assert proxy.open_connections == 0


async def test_a_response_sent_before_the_drain_leaves_the_connection_for_one_more() -> None:
    release = trio.Event()

    async def streamed(ex: Exchange) -> None:
        await ex.read_body()
        if ex.request.target == b"/stream":
            await ex.send_head(200, [(b"content-length", b"4")])
            await ex.send_data(b"he")
            await release.wait()
            await ex.send_data(b"ll")
            await ex.end()
        else:
            await ex.respond(200, b"ok")

    async with harness() as h:
        backend = h.route("app.test", await h.upstream(streamed))
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client, trio.open_nursery() as nursery:
            await client.send_request("GET", "/stream", "app.test")
            await wait_for_requests(backend, 1)
            head = b""
            while b"\r\n\r\n" not in head:  # the head has reached the client
                head += await client.stream.receive_some(4096)
            client.conn.receive_data(head)
            nursery.start_soon(lambda: proxy.shutdown(10.0, keep_idle=True))
            await trio.testing.wait_all_tasks_blocked()
            release.set()
            first = await client.read_response()
            assert first.body == b"hell" and b"connection" not in first.headers
            # The client may reuse it: it is answered, then closed.
            second = await client.request("GET", "/", "app.test")
            assert (second.status, second.headers[b"connection"]) == (200, b"close")
            assert await client.stream.receive_some(100) == b""


async def test_stop_accepting_leaves_the_listening_socket_open_for_another_holder() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy()
        other = proxy.listeners[0].socket.dup()  # what the successor of a takeover holds
        try:
            proxy.stop_accepting()
            await trio.testing.wait_all_tasks_blocked()
            # A connection now waits in the shared backlog, for whoever accepts it.
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5):
                conn, _ = await other.accept()
                conn.close()
            await proxy.shutdown(1.0)
        finally:
            other.close()
