"""Pause, resume and maintenance of a route, and the operator's own error pages."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from proxy_helpers import (
    Exchange,
    Harness,
    fetch,
    harness,
    make_config,
    raw_exchange,
    status_of,
    until,
)

from hotswap.config import parse_config
from hotswap.proxy.accesslog import AccessLog
from hotswap.proxy.controls import Maintenance, RouteControls
from hotswap.proxy.server import ProxyServer, serve_proxy


async def start(h: Harness, controls: RouteControls, **config: object) -> ProxyServer:
    cfg = make_config(**config)
    proxy: ProxyServer = await h.nursery.start(
        lambda task_status: serve_proxy(
            lambda: cfg,
            h.routes,
            access_log=AccessLog(h.access_lines.append),
            controls=controls,
            task_status=task_status,
        )
    )
    return proxy


def waiting(controls: RouteControls) -> int:
    control = controls.get("app.test")
    return control.waiting if control is not None else 0


async def test_a_paused_route_holds_requests_uncounted_until_resume() -> None:
    seen: list[bytes] = []

    async def record(ex: Exchange) -> None:
        seen.append(ex.request.target)
        await ex.read_body()
        await ex.respond(200, b"ok")

    controls = RouteControls()
    async with harness() as h:
        backend = h.route("app.test", await h.upstream(record))
        proxy = await start(h, controls)
        controls.pause("app.test", timeout=30)
        statuses: list[int] = []

        async def get(path: str) -> None:
            statuses.append((await fetch(proxy.port, "GET", path, "app.test")).status)

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(get, f"/{i}")
                # each request is held before the next is sent: that is its arrival order
                await until(lambda i=i: waiting(controls) == i + 1)
            assert seen == [] and backend.inflight.requests == 0  # held, not counted
            controls.resume("app.test")
        assert statuses == [200] * 8
        # (the order they are released in is tested in tests/proxy/test_controls.py: here
        # each goes on its own upstream connection, read in any order by the app)
        assert sorted(seen) == sorted(f"/{i}".encode() for i in range(8))
        assert controls.get("app.test") is None and not controls.active


async def test_a_held_request_past_the_pause_timeout_gets_503_with_retry_after() -> None:
    controls = RouteControls()
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await start(h, controls)
        controls.pause("app.test", timeout=0.2)
        resp = await fetch(proxy.port, "GET", "/", "app.test")
        assert resp.status == 503
        assert resp.headers[b"retry-after"] == b"1"
        assert up.requests == []
        # other routes are not paused
        h.route("other.test", up)
        assert (await fetch(proxy.port, "GET", "/", "other.test")).status == 200


async def test_a_deploy_during_a_pause_drains_because_held_requests_are_not_in_flight() -> None:
    controls = RouteControls()
    async with harness() as h:
        old = h.route("app.test", await h.upstream(), name="old")
        proxy = await start(h, controls)
        controls.pause("app.test", timeout=30)
        async with trio.open_nursery() as nursery:
            results: list[int] = []

            async def get() -> None:
                results.append((await fetch(proxy.port, "GET", "/", "app.test")).status)

            nursery.start_soon(get)
            await until(lambda: waiting(controls) == 1)
            new = h.route("app.test", await h.upstream(), name="new")  # the switch
            with trio.fail_after(5):
                await old.inflight.wait_idle()  # the drain does not wait for held requests
            controls.resume("app.test")
        assert results == [200]
        assert (old.stats.requests, new.stats.requests) == (0, 1)


async def test_maintenance_answers_503_with_the_message_as_html_or_json() -> None:
    controls = RouteControls()
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await start(h, controls)
        controls.set_maintenance("app.test", Maintenance("Back at <5pm>", 300))
        page = await fetch(proxy.port, "GET", "/", "app.test", [(b"accept", b"text/html")])
        assert page.status == 503 and page.headers[b"retry-after"] == b"300"
        assert b"Back at &lt;5pm&gt;" in page.body
        assert page.headers[b"content-type"].startswith(b"text/html")
        api = await fetch(proxy.port, "GET", "/", "app.test", [(b"accept", b"application/json")])
        assert api.status == 503
        assert json.loads(api.body) == {
            "error": "maintenance",
            "message": "Back at <5pm>",
            "retry_after": 300,
        }
        assert up.requests == []
        controls.set_maintenance("app.test", None)
        assert (await fetch(proxy.port, "GET", "/", "app.test")).status == 200
        assert not controls.active


async def test_the_operators_error_pages_replace_the_built_in_ones(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "502.html").write_text("<p>our 502</p>")
    (pages / "maintenance.html").write_text("<p>maintenance: {message}</p>")
    config = parse_config({"server": {"error_pages": "pages"}}, tmp_path / "hotswap.toml")
    controls = RouteControls()
    async with harness() as h:
        proxy = await start(
            h, controls, error_pages="pages", error_page_files=config.server.error_page_files
        )
        # nothing listens behind this route: 502, with our page
        h.route("down.test", await h.raw_upstream(lambda stream: stream.aclose()))
        resp = await fetch(proxy.port, "GET", "/", "down.test")
        assert (resp.status, resp.body) == (502, b"<p>our 502</p>")
        h.route("app.test", await h.upstream())
        controls.set_maintenance("app.test", Maintenance("soon & later", 60))
        resp = await fetch(proxy.port, "GET", "/", "app.test")
        assert (resp.status, resp.body) == (503, b"<p>maintenance: soon &amp; later</p>")
        # no 404.html: the built-in page
        raw = await raw_exchange(
            proxy.port, b"GET / HTTP/1.1\r\nHost: none.test\r\nConnection: close\r\n\r\n"
        )
        assert status_of(raw) == 404 and b"hotswap" in raw
