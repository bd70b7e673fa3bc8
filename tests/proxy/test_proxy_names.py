"""Issue 11 in the proxy: extra names and wildcards reach the app, redirects answer 308 with
the path and query, and a route whose container is down answers 502 at once."""

from __future__ import annotations

from functools import partial

import trio
from proxy_helpers import Client, fetch, harness, make_config, raw_exchange, status_of

from hotswap.proxy.server import ProxyServer, serve_proxy


async def test_a_name_in_hosts_and_a_wildcard_are_routed_to_the_app() -> None:
    async with harness() as h:
        backend = h.route("app.test", await h.upstream())
        h.routes.set_names({"app.test": ["www.app.test", "*.app.test"]}, {})
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            for host in ("app.test", "www.app.test", "eu.app.test"):
                response = await client.request("GET", "/p", host)
                assert response.status == 200, host
        assert backend.stats.requests == 3
        assert (await fetch(proxy.port, "GET", "/", "a.b.app.test")).status == 404


async def test_requests_are_counted_under_the_route_key_not_the_host() -> None:
    seen: list[str | None] = []

    def observe(domain: str | None, status: int, duration: float, error: bool) -> None:
        seen.append(domain)

    async with harness() as h:
        h.route("app.test", await h.upstream())
        h.routes.set_names({"app.test": ["*.app.test"]}, {})
        config = make_config()
        proxy: ProxyServer = await h.nursery.start(
            partial(serve_proxy, observe=observe), lambda: config, h.routes
        )
        for host in ("one.app.test", "two.app.test", "nothing.test"):
            await fetch(proxy.port, "GET", "/", host)
    assert seen == ["app.test", "app.test", None]


async def test_a_redirect_answers_308_keeping_the_path_and_query() -> None:
    async with harness() as h:
        h.routes.set_names({}, {"old.test": "https://app.example.com"})
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            response = await client.request("GET", "/a/b?c=1&d=2", "old.test")
            assert response.status == 308
            assert response.headers[b"location"] == b"https://app.example.com/a/b?c=1&d=2"
            # Keep-alive goes on after a redirect without a body.
            again = await client.request("HEAD", "/", "old.test")
            assert again.status == 308
        # A body it does not read: the connection closes after the answer, and says so.
        raw = await raw_exchange(
            proxy.port,
            b"POST /form?x=1 HTTP/1.1\r\nHost: old.test\r\nContent-Length: 3\r\n\r\nabc",
        )
        assert status_of(raw) == 308
        assert b"location: https://app.example.com/form?x=1\r\n" in raw.lower()
        assert b"connection: close" in raw.lower()


async def test_a_down_container_gets_502_at_once_without_a_connection_attempt() -> None:
    async with harness() as h:
        up = await h.upstream()
        backend = h.route("app.test", up)
        h.routes.mark_down(backend, "the app's container exited with code 137; restarting")
        # Were it tried, a connect to this address would only fail after the timeout.
        proxy = await h.proxy(upstream_connect_timeout=3600.0)
        with trio.fail_after(5):
            response = await fetch(proxy.port, "GET", "/", "app.test")
        assert response.status == 502
        assert b"the app is not running right now" in response.body
        assert b"137" not in response.body  # the cause is for status and the log
        assert backend.pool.connects == 0 and up.connections == 0
        assert backend.inflight.requests == 0
        h.routes.mark_up(backend)
        assert (await fetch(proxy.port, "GET", "/", "app.test")).status == 200
