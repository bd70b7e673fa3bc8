"""`hotswap serve` gets a certificate from ACME (Pebble) by itself and serves HTTPS with it:
the CA's HTTP-01 validation is answered by hotswap's own plain listener, then an HTTPS
request for the domain reaches the app, which is told the scheme was https."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h11
import pytest
import trio
from pebble_server import Pebble, free_port

WAIT = 90  # seconds for the whole issuance; Pebble answers in about one
TICK = 0.2  # probing another process is the one place we tick


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def start_serve(config: Path) -> subprocess.Popen[bytes]:
    log = (config.parent / "serve.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "hotswap", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    return process


async def app(stream: trio.SocketStream) -> None:
    """The app behind hotswap: answers the X-Forwarded-Proto it was sent."""
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    return
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                proto = dict(event.headers).get(b"x-forwarded-proto", b"-")
                head = h11.Response(status_code=200, headers=[("content-length", str(len(proto)))])
                await stream.send_all(
                    (conn.send(head) or b"")
                    + (conn.send(h11.Data(data=proto)) or b"")
                    + (conn.send(h11.EndOfMessage()) or b"")
                )
            elif isinstance(event, h11.EndOfMessage):
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
            else:
                return


async def https_get(port: int, name: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    stream = trio.SSLStream(tcp, context, server_hostname=name, https_compatible=True)
    async with stream:
        await stream.do_handshake()
        request = b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % name.encode()
        await stream.send_all(request)
        raw = b""
        while chunk := await stream.receive_some(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def test_serve_gets_an_acme_certificate_through_its_own_listener_and_serves_https(
    pebble: Pebble, tmp_path: Path, serve: list[subprocess.Popen[bytes]]
) -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    app_port = listeners[0].socket.getsockname()[1]
    https_port = free_port()
    config = tmp_path / "hotswap.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:{pebble.http_port}"
admin_listen = "127.0.0.1:{free_port()}"
[docker]
host = "unix://{tmp_path}/no-docker.sock"
[tls]
listen = "127.0.0.1:{https_port}"
certs_dir = "{tmp_path / "certs"}"
[tls.acme]
email = "ops@example.com"
directory = "{pebble.directory}"
ca_bundle = "{pebble.ca_bundle}"
[external_routes]
"app.example.com" = "127.0.0.1:{app_port}"
"""
    )
    serve.append(start_serve(config))
    context = ssl.create_default_context(cadata=pebble.root_pem().decode())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, app, listeners)
        with trio.fail_after(WAIT):
            while True:
                assert serve[0].poll() is None, (tmp_path / "serve.log").read_text()
                try:
                    status, body = await https_get(https_port, "app.example.com", context)
                except (OSError, trio.BrokenResourceError):
                    await trio.sleep(TICK)  # not listening yet, or no certificate yet
                    continue
                break
        assert (status, body) == (200, b"https")
        nursery.cancel_scope.cancel()
