"""Path routes through the proxy (issue 12): each prefix reaches its own backend on segment
boundaries, the longest prefix wins, strip_prefix rewrites what the app sees, and a path
that would route differently once normalised is refused."""

from __future__ import annotations

from functools import partial

import trio
from proxy_helpers import (
    Client,
    Exchange,
    Harness,
    fetch,
    harness,
    make_config,
    raw_exchange,
    until,
)

from hotswap.proxy.controls import Control, Maintenance, RouteControls
from hotswap.proxy.routes import Backend
from hotswap.proxy.server import ProxyServer, serve_proxy


async def site_with_api(h: Harness, *, strip: bool = False) -> tuple[Backend, Backend]:
    site = h.route("example.com", await h.upstream(), name="site")
    api = h.route("example.com/api", await h.upstream(), name="api")
    h.routes.set_names({"example.com": ["www.example.com"], "example.com/api": []}, {})
    h.routes.set_strip_prefixes(["example.com/api"] if strip else [])
    return site, api


async def test_a_request_under_the_prefix_reaches_the_path_route_and_the_rest_the_site() -> None:
    async with harness() as h:
        site, api = await site_with_api(h)
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            for target, expected in [
                ("/api", api),
                ("/api/", api),
                ("/api/users?page=2", api),
                ("/apix", site),
                ("/", site),
                ("/API/users", site),  # paths are case-sensitive
                ("/shop/api", site),
            ]:
                before = expected.stats.requests
                response = await client.request("GET", target, "example.com")
                assert response.status == 200, target
                assert expected.stats.requests == before + 1, target
                # Without strip_prefix the app sees the path exactly as sent.
                assert response.headers[b"x-path"] == target.encode(), target
        assert (site.stats.requests, api.stats.requests) == (4, 3)


async def test_the_longest_prefix_wins() -> None:
    async with harness() as h:
        site, api = await site_with_api(h)
        v2 = h.route("example.com/api/v2", await h.upstream(), name="v2")
        proxy = await h.proxy()
        for target in ("/api/v2", "/api/v2/orders"):
            assert (await fetch(proxy.port, "GET", target, "example.com")).status == 200
        assert (await fetch(proxy.port, "GET", "/api/v2x", "example.com")).status == 200
        assert (v2.stats.requests, api.stats.requests, site.stats.requests) == (2, 1, 0)


async def test_strip_prefix_sends_the_path_without_the_prefix_and_keeps_the_query() -> None:
    async with harness() as h:
        _, api = await site_with_api(h, strip=True)
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            for target, seen in [
                ("/api/users", b"/users"),
                ("/api/users?page=2&next=/api/x", b"/users?page=2&next=/api/x"),
                ("/api", b"/"),
                ("/api/", b"/"),
                ("/api?page=2", b"/?page=2"),
            ]:
                response = await client.request("GET", target, "www.example.com")
                assert response.headers[b"x-path"] == seen, target
        assert api.stats.requests == 5


async def test_a_stripped_request_tells_the_app_its_prefix() -> None:
    seen: list[dict[bytes, bytes]] = []

    async def headers(ex: Exchange) -> None:
        seen.append(ex.headers)
        await ex.respond(200, b"ok")

    async with harness() as h:
        h.route("example.com/api", await h.upstream(headers), name="api")
        h.routes.set_strip_prefixes(["example.com/api"])
        proxy = await h.proxy()
        forged = [(b"x-forwarded-prefix", b"/admin")]
        assert (await fetch(proxy.port, "GET", "/api/x", "example.com", forged)).status == 200
    assert seen[0][b"x-forwarded-prefix"] == b"/api"


async def test_an_absolute_form_target_is_routed_and_stripped_by_its_path() -> None:
    async with harness() as h:
        site, api = await site_with_api(h, strip=True)
        proxy = await h.proxy()
        raw = await raw_exchange(
            proxy.port,
            b"GET http://example.com/api/users?x=1 HTTP/1.1\r\nHost: example.com\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert b"x-path: /users?x=1\r\n" in raw.lower()
        raw = await raw_exchange(
            proxy.port,
            b"GET http://example.com?next=/api HTTP/1.1\r\nHost: example.com\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert (site.stats.requests, api.stats.requests) == (1, 1)


async def test_a_domain_with_path_routes_only_answers_404_elsewhere() -> None:
    async with harness() as h:
        api = h.route("example.com/api", await h.upstream(), name="api")
        h.routes.set_names({"example.com/api": []}, {})
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            assert (await client.request("GET", "/other", "example.com")).status == 404
            assert (await client.request("GET", "/", "example.com")).status == 404
            assert (await client.request("GET", "/api/x", "example.com")).status == 200
        assert api.stats.requests == 1


async def test_head_and_post_go_through_a_path_route() -> None:
    async with harness() as h:
        h.route("example.com", await h.upstream(), name="site")
        api_up = await h.upstream()
        h.route("example.com/api", api_up, name="api")
        h.routes.set_strip_prefixes(["example.com/api"])
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            posted = await client.request("POST", "/api/echo", "example.com", body=b"payload")
            assert (posted.status, posted.body) == (200, b"payload")
            assert posted.headers[b"x-path"] == b"/echo"
            headed = await client.request("HEAD", "/api/echo", "example.com")
            assert headed.status == 200 and headed.body == b""
        assert [ex.request.method for ex in api_up.requests] == [b"POST", b"HEAD"]


async def test_an_ambiguous_path_is_refused_with_400() -> None:
    async with harness() as h:
        site, api = await site_with_api(h)
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            for target in ("/%61pi/x", "/static/../api/x", "/api/%2e%2e/admin"):
                response = await client.request("GET", target, "example.com")
                assert response.status == 400, target
                assert b"ambiguous request path" in response.body
            # The connection goes on: a request without a body was read to its end.
            assert (await client.request("GET", "/api/a%2Fb", "example.com")).status == 200
        assert (site.stats.requests, api.stats.requests) == (0, 1)


async def test_requests_of_a_path_route_are_counted_under_its_route_key() -> None:
    seen: list[str | None] = []

    def observe(route: str | None, status: int, duration: float, error: bool) -> None:
        seen.append(route)

    async with harness() as h:
        await site_with_api(h)
        config = make_config()
        proxy: ProxyServer = await h.nursery.start(
            partial(serve_proxy, observe=observe), lambda: config, h.routes
        )
        for target in ("/api/x", "/x"):
            await fetch(proxy.port, "GET", target, "www.example.com")
    assert seen == ["example.com/api", "example.com"]


async def test_pause_and_maintenance_of_a_path_route_apply_to_its_paths_only() -> None:
    controls = RouteControls()
    async with harness() as h:
        site, api = await site_with_api(h)
        config = make_config()
        proxy: ProxyServer = await h.nursery.start(
            partial(serve_proxy, controls=controls), lambda: config, h.routes
        )
        controls.set_maintenance("example.com/api", Maintenance("api migration", 60))
        assert (await fetch(proxy.port, "GET", "/api/x", "www.example.com")).status == 503
        assert (await fetch(proxy.port, "GET", "/x", "example.com")).status == 200
        controls.set_maintenance("example.com/api", None)
        controls.pause("example.com/api", timeout=30)
        statuses: list[int] = []

        async def get_api() -> None:
            statuses.append((await fetch(proxy.port, "GET", "/api/x", "example.com")).status)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(get_api)
            await until(lambda: (controls.get("example.com/api") or Control()).waiting == 1)
            # The site goes on while /api waits, and the held request is not counted yet.
            assert (await fetch(proxy.port, "GET", "/", "example.com")).status == 200
            assert api.inflight.requests == 0
            controls.resume("example.com/api")
        assert statuses == [200]
        assert (site.stats.requests, api.stats.requests) == (2, 1)
