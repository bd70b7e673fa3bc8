"""HTTPS through the proxy: certificates by SNI, HSTS, X-Forwarded-Proto, redirects from
plain HTTP, ACME challenges, bad handshakes, WebSockets over TLS (real TLS, trustme)."""

from __future__ import annotations

import contextlib
import ssl
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import h11
import pytest
import trio
import trustme
from proxy_helpers import (
    HOST,
    Harness,
    Response,
    fetch,
    harness,
    make_config,
    raw_exchange,
    status_of,
    until,
)
from trio_websocket import ConnectionClosed, WebSocketRequest, wrap_client_stream
from trio_websocket import serve_websocket as ws_serve

from hotswap.config import Address, parse_config
from hotswap.proxy.accesslog import AccessLog
from hotswap.proxy.server import ProxyServer, serve_proxy
from hotswap.tls.manager import TlsManager


@dataclass
class Tls:
    ca: trustme.CA
    manager: TlsManager
    failures: list[str] = field(default_factory=list)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


def make_tls(folder: Path, *names: str, extra: str = "", handshake_timeout: str = "0.5s") -> Tls:
    ca = trustme.CA()
    leaf = ca.issue_cert(*names)
    cert, key = folder / "chain.pem", folder / "key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    text = f"""
        [tls]
        listen = "127.0.0.1:0"
        certificates = [{{ cert = "{cert}", key = "{key}" }}]
        hsts = "max-age=600"
        certs_dir = "{folder / "certs"}"
        handshake_timeout = "{handshake_timeout}"
        {extra}
    """
    return Tls(ca, TlsManager(parse_config(tomllib.loads(text), folder / "hotswap.toml")))


async def start(h: Harness, tls: Tls, **config: object) -> ProxyServer:
    cfg = make_config(**config)
    proxy: ProxyServer = await h.nursery.start(
        lambda task_status: serve_proxy(
            lambda: cfg,
            h.routes,
            access_log=AccessLog(h.access_lines.append),
            tls=tls.manager,
            on_handshake_failure=tls.failures.append,
            task_status=task_status,
        )
    )
    return proxy


@asynccontextmanager
async def tls_stream(
    port: int, server_name: str, context: ssl.SSLContext
) -> AsyncIterator[trio.SSLStream[trio.SocketStream]]:
    tcp = await trio.open_tcp_stream(HOST, port)
    stream = trio.SSLStream(tcp, context, server_hostname=server_name)
    try:
        await stream.do_handshake()
        yield stream
    finally:
        await tcp.aclose()


async def https_get(
    port: int, server_name: str, context: ssl.SSLContext, target: str = "/"
) -> Response:
    async with tls_stream(port, server_name, context) as stream:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(method="GET", target=target, headers=[("host", server_name)])
        await stream.send_all((conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b""))
        head: h11.Response | None = None
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
        assert head is not None
        headers = [(bytes(n), bytes(v)) for n, v in head.headers]
        return Response(head.status_code, dict(headers), headers, body)


async def test_https_serves_the_certificate_of_the_name_and_says_https_upstream(
    tmp_path: Path,
) -> None:
    tls = make_tls(tmp_path, "*.app.test")
    async with harness() as h:
        up = await h.upstream()
        h.route("www.app.test", up)
        proxy = await start(h, tls)
        assert proxy.tls_port is not None
        resp = await https_get(proxy.tls_port, "www.app.test", tls.client_context(), "/x?y=1")
        assert resp.status == 200
        assert resp.headers[b"strict-transport-security"] == b"max-age=600"
        seen = up.requests[0].headers
        assert seen[b"x-forwarded-proto"] == b"https"
        assert seen[b"host"] == b"www.app.test"
        assert up.requests[0].request.target == b"/x?y=1"


async def test_a_name_without_a_certificate_fails_the_handshake_and_is_counted(
    tmp_path: Path,
) -> None:
    tls = make_tls(tmp_path, "app.test")
    async with harness() as h:
        h.route("other.test", await h.upstream())
        proxy = await start(h, tls)
        assert proxy.tls_port is not None
        context = tls.client_context()
        context.check_hostname = False  # whatever certificate came, the handshake must fail
        with pytest.raises(trio.BrokenResourceError):
            async with tls_stream(proxy.tls_port, "other.test", context):
                pass
    assert tls.failures == ["unknown_name"]


async def test_plain_http_on_the_https_port_gets_a_plain_400(tmp_path: Path) -> None:
    tls = make_tls(tmp_path, "app.test")
    async with harness() as h:
        proxy = await start(h, tls)
        assert proxy.tls_port is not None
        raw = await raw_exchange(proxy.tls_port, b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        assert status_of(raw) == 400
    assert tls.failures == ["plain_http"]


async def test_a_stalled_handshake_is_closed_after_handshake_timeout(tmp_path: Path) -> None:
    tls = make_tls(tmp_path, "app.test")
    async with harness() as h:
        proxy = await start(h, tls)
        assert proxy.tls_port is not None
        stream = await trio.open_tcp_stream(HOST, proxy.tls_port)
        async with stream:
            assert await stream.receive_some(100) == b""  # closed by the proxy
        assert proxy.open_connections == 0
    assert tls.failures == ["timeout"]


async def test_a_stop_does_not_wait_handshake_timeout_for_a_silent_tls_client(
    tmp_path: Path,
) -> None:
    """A TLS connection whose handshake has not begun gets a stop's short grace for a
    first request, not all of handshake_timeout (the port is closed until the exit)."""
    tls = make_tls(tmp_path, "app.test", handshake_timeout="60s")
    async with harness(limit=30) as h:
        proxy = await start(h, tls)
        assert proxy.tls_port is not None
        stream = await trio.open_tcp_stream(HOST, proxy.tls_port)
        async with stream:
            await until(lambda: proxy.open_connections == 1)
            with trio.fail_after(20):  # far below handshake_timeout and the grace
                await proxy.shutdown(60.0)
            assert await stream.receive_some(100) == b""
        assert proxy.open_connections == 0


async def test_plain_http_for_a_domain_with_a_certificate_is_redirected_to_https(
    tmp_path: Path,
) -> None:
    tls = make_tls(tmp_path, "app.test")
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        h.route("plain.test", up)
        proxy = await start(h, tls)
        resp = await fetch(proxy.port, "POST", "/form?a=1", "app.test", body=b"x")
        assert resp.status == 308
        assert resp.headers[b"location"] == b"https://app.test:%d/form?a=1" % proxy.tls_port
        assert b"strict-transport-security" not in resp.headers  # never on plain HTTP
        # no certificate for this one: served over plain HTTP
        assert (await fetch(proxy.port, "GET", "/", "plain.test")).status == 200
        assert len(up.requests) == 1


async def test_no_redirect_when_a_trusted_proxy_says_the_client_used_https(
    tmp_path: Path,
) -> None:
    tls = make_tls(tmp_path, "app.test")
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await start(h, tls, trusted_proxies=("127.0.0.1/32",))
        headers = [(b"x-forwarded-proto", b"https"), (b"x-forwarded-for", b"203.0.113.9")]
        resp = await fetch(proxy.port, "GET", "/", "app.test", headers)
        assert resp.status == 200
        seen = up.requests[0].headers
        assert seen[b"x-forwarded-proto"] == b"https"  # kept from the trusted proxy
        assert seen[b"x-forwarded-for"] == b"203.0.113.9, 127.0.0.1"  # extended


async def test_an_untrusted_client_cannot_avoid_the_redirect_or_choose_its_scheme(
    tmp_path: Path,
) -> None:
    tls = make_tls(tmp_path, "app.test", "open.test", extra="redirect_http = false")
    async with harness() as h:
        up = await h.upstream()
        h.route("open.test", up)
        proxy = await start(h, tls)
        headers = [(b"x-forwarded-proto", b"https"), (b"x-forwarded-for", b"203.0.113.9")]
        assert (await fetch(proxy.port, "GET", "/", "open.test", headers)).status == 200
        seen = up.requests[0].headers
        assert (seen[b"x-forwarded-proto"], seen[b"x-forwarded-for"]) == (b"http", b"127.0.0.1")


async def test_a_pending_acme_challenge_is_answered_on_plain_http(tmp_path: Path) -> None:
    tls = make_tls(tmp_path, "app.test")
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await start(h, tls)
        tls.manager.pending.add("app.test", "tok-1", "tok-1.thumb")
        resp = await fetch(proxy.port, "GET", "/.well-known/acme-challenge/tok-1", "app.test")
        assert (resp.status, resp.body) == (200, b"tok-1.thumb")
        # an unknown token is not a challenge: redirected like any request
        resp = await fetch(proxy.port, "GET", "/.well-known/acme-challenge/other", "app.test")
        assert resp.status == 308


async def test_a_websocket_works_over_tls(tmp_path: Path) -> None:
    tls = make_tls(tmp_path, "ws.test")

    async def echo(request: WebSocketRequest) -> None:
        ws = await request.accept()
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send_message(await ws.get_message())

    async with harness(limit=20) as h:
        ws_server = await h.nursery.start(ws_serve, echo, HOST, 0, None)
        backend = h.route("ws.test", _At(Address(HOST, ws_server.port)))  # type: ignore[arg-type]
        proxy = await start(h, tls)
        assert proxy.tls_port is not None
        async with tls_stream(proxy.tls_port, "ws.test", tls.client_context()) as stream:
            ws = await wrap_client_stream(h.nursery, stream, "ws.test", "/chat")
            await ws.send_message("over tls")
            assert await ws.get_message() == "over tls"
            assert backend.inflight.tunnels == 1
            await ws.aclose()
        await backend.inflight.wait_idle()


@dataclass
class _At:
    address: Address


def test_the_https_redirect_port_follows_the_bound_port(tmp_path: Path) -> None:
    tls = make_tls(tmp_path, "app.test")
    tls.manager.https_port = 8443
    assert tls.manager.https_origin("app.test") == "https://app.test:8443"
    tls.manager.https_port = 443
    assert tls.manager.https_origin("app.test") == "https://app.test"
    config = replace(tls.manager.tls, redirect_http=False)
    tls.manager.tls = config
    assert tls.manager.https_origin("app.test") is None


async def test_a_slow_upload_with_expect_100_continue_over_tls_is_not_cut(tmp_path: Path) -> None:
    """StreamTransport.send_nowait() always returns 0, so every write to a TLS client
    moves the connection's deadline to Phase.SEND (now + idle_timeout). The body task's
    100 Continue does that while the response side waits with no deadline: an upload that
    lasts longer than idle_timeout (each piece well within it) is then cut as a client
    that 'read nothing' (499, connection closed)."""
    tls = make_tls(tmp_path, "app.test")
    pieces = [b"x" * 1000] * 10
    size = sum(map(len, pieces))

    async with harness(limit=15) as h:
        h.route("app.test", await h.upstream())  # echo
        proxy = await start(h, tls, idle_timeout=0.6)
        assert proxy.tls_port is not None
        async with tls_stream(proxy.tls_port, "app.test", tls.client_context()) as stream:
            await stream.send_all(
                b"PUT /u HTTP/1.1\r\nHost: app.test\r\nContent-Length: %d\r\n"
                b"Expect: 100-continue\r\n\r\n" % size
            )
            interim = await stream.receive_some(1000)
            assert interim.startswith(b"HTTP/1.1 100 ")
            for piece in pieces:  # 1.5 s in all, a piece every 0.15 s
                await trio.sleep(0.15)
                await stream.send_all(piece)
            raw = b""
            try:
                while b"\r\n\r\n" not in raw:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    raw += chunk
            except trio.BrokenResourceError:
                pass
        assert raw and status_of(raw) == 200, raw[:200]
