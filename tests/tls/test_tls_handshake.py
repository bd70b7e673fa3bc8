"""Real TLS handshakes on loopback: SNI picks the certificate, unknown names get an alert."""

from __future__ import annotations

import ssl
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from tls_helpers import ThrowawayCA, TlsTestServer, handshake, served_names

from hotswap.tls.handshake import PLAIN_HTTP_RESPONSE, first_byte_kind
from hotswap.tls.live import LiveCertificates


@pytest.fixture
def ca(tmp_path: Path) -> ThrowawayCA:
    return ThrowawayCA(tmp_path)


@pytest.fixture
def live(ca: ThrowawayCA) -> LiveCertificates:
    live = LiveCertificates()
    live.publish(
        [
            ca.issue("app.example.com").certificate(),
            ca.issue("*.example.com").certificate(),
            ca.issue("other.org", "www.other.org").certificate(),
        ]
    )
    return live


@pytest.fixture
async def server(live: LiveCertificates) -> AsyncIterator[TlsTestServer]:
    server = TlsTestServer(live.context)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        yield server
        nursery.cancel_scope.cancel()


async def test_sni_picks_the_exact_name_before_the_wildcard(
    server: TlsTestServer, ca: ThrowawayCA
) -> None:
    client = ca.client_context()
    exact = await handshake(server.port, "app.example.com", client)
    wildcard = await handshake(server.port, "shop.example.com", client)
    other = await handshake(server.port, "WWW.Other.org", client)
    assert served_names(exact) == ["app.example.com"]
    assert served_names(wildcard) == ["*.example.com"]
    assert served_names(other) == ["other.org", "www.other.org"]
    assert await exact.receive_some(100) == b"hello app.example.com"
    for stream in (exact, wildcard, other):
        await stream.aclose()
    assert [await server.next_outcome() for _ in range(3)] == ["ok", "ok", "ok"]


@pytest.mark.parametrize(
    "server_name",
    [
        "unknown.org",
        "a.b.example.com",  # a wildcard stands for one label only
        "example.com",  # ... and not for the bare parent
    ],
)
async def test_an_unknown_name_fails_the_handshake_with_an_alert(
    server: TlsTestServer, ca: ThrowawayCA, server_name: str
) -> None:
    client = ca.client_context()
    client.check_hostname = False  # would any certificate be sent, the client would see it
    with pytest.raises(trio.BrokenResourceError) as caught:
        await handshake(server.port, server_name, client)
    assert isinstance(caught.value.__cause__, ssl.SSLError)
    assert "UNRECOGNIZED_NAME" in str(caught.value.__cause__)
    assert await server.next_outcome() == "unknown_name"


async def test_a_client_without_sni_gets_no_certificate(
    server: TlsTestServer, ca: ThrowawayCA
) -> None:
    client = ca.client_context()
    client.check_hostname = False
    with pytest.raises(trio.BrokenResourceError) as caught:
        await handshake(server.port, None, client)
    assert "UNRECOGNIZED_NAME" in str(caught.value.__cause__)
    assert await server.next_outcome() == "unknown_name"


async def test_a_name_switched_off_gets_no_certificate_even_under_a_wildcard(
    server: TlsTestServer, live: LiveCertificates, ca: ThrowawayCA
) -> None:
    live.publish(
        [entry.certificate for entry in live.current.entries], disabled=["plain.example.com"]
    )
    client = ca.client_context()
    with pytest.raises(trio.BrokenResourceError):
        await handshake(server.port, "plain.example.com", client)
    assert await server.next_outcome() == "unknown_name"
    ok = await handshake(server.port, "shop.example.com", client)
    await ok.aclose()
    assert await server.next_outcome() == "ok"


async def test_alpn_is_http_1_1_and_tls_is_1_2_or_newer(
    server: TlsTestServer, ca: ThrowawayCA
) -> None:
    client = ca.client_context()
    client.set_alpn_protocols(["h2", "http/1.1"])
    stream = await handshake(server.port, "app.example.com", client)
    assert stream.selected_alpn_protocol() == "http/1.1"
    assert stream.version() in ("TLSv1.2", "TLSv1.3")
    await stream.aclose()
    h2_only = ca.client_context()
    h2_only.set_alpn_protocols(["h2"])
    stream = await handshake(server.port, "app.example.com", h2_only)
    assert stream.selected_alpn_protocol() is None  # no h2: the client goes on without ALPN
    await stream.aclose()
    tls12 = ca.client_context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    stream = await handshake(server.port, "app.example.com", tls12)
    assert stream.version() == "TLSv1.2"
    await stream.aclose()
    assert [await server.next_outcome() for _ in range(3)] == ["ok", "ok", "ok"]


async def test_tls_1_1_is_refused(server: TlsTestServer, ca: ThrowawayCA) -> None:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.ca.configure_trust(client)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the client side is the old one
        client.minimum_version = ssl.TLSVersion.TLSv1_1
        client.maximum_version = ssl.TLSVersion.TLSv1_1
    client.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(trio.BrokenResourceError):
        await handshake(server.port, "app.example.com", client)
    assert await server.next_outcome() == "protocol"


async def test_plain_http_on_the_tls_port_gets_a_plain_text_400(server: TlsTestServer) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n")
    received = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(4096):
            received += chunk
    await stream.aclose()
    assert received == PLAIN_HTTP_RESPONSE
    assert received.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Content-Type: text/plain" in received
    assert await server.next_outcome() == "plain_http"


async def test_a_client_that_closes_before_the_handshake_is_counted_as_closed(
    server: TlsTestServer,
) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    await stream.aclose()
    assert await server.next_outcome() == "closed"


async def test_a_new_certificate_is_used_by_the_next_handshake(
    server: TlsTestServer, live: LiveCertificates, ca: ThrowawayCA
) -> None:
    client = ca.client_context()
    before = await handshake(server.port, "app.example.com", client)
    fingerprint = before.getpeercert(binary_form=True)
    renewed = ca.issue("app.example.com").certificate()
    others = [
        e.certificate for e in live.current.entries if "app.example.com" not in e.certificate.names
    ]
    live.publish([*others, renewed])
    after = await handshake(server.port, "app.example.com", client)
    assert after.getpeercert(binary_form=True) != fingerprint
    assert live.certificate_for("app.example.com") == renewed
    # The connection made before the swap still works with its certificate.
    assert await before.receive_some(100) == b"hello app.example.com"
    await before.aclose()
    await after.aclose()
    assert [await server.next_outcome() for _ in range(2)] == ["ok", "ok"]


async def test_a_stalled_handshake_ends_with_the_callers_cancel_scope(
    live: LiveCertificates,
) -> None:
    import os
    import socket

    from hotswap.tls.handshake import accept_tls_socket

    outcomes: list[str] = []

    async def handle(stream: trio.SocketStream) -> None:
        sock = socket.socket(fileno=os.dup(stream.socket.fileno()))
        sock.setblocking(False)
        await stream.aclose()
        with trio.move_on_after(0.2) as scope:  # the caller's handshake_timeout
            await accept_tls_socket(sock, live.context)
        outcomes.append("gave up" if scope.cancelled_caught else "finished")
        sock.close()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, handle, 0)
        port = listeners[0].socket.getsockname()[1]
        idle = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(10):
            assert await idle.receive_some(10) == b""  # closed by the server
        await idle.aclose()
        nursery.cancel_scope.cancel()
    assert outcomes == ["gave up"]


def test_the_first_byte_tells_tls_from_plain_http() -> None:
    assert first_byte_kind(0x16) == "tls"
    assert first_byte_kind(ord("G")) == "http"
    assert first_byte_kind(ord("P")) == "http"
    assert first_byte_kind(0x80) == "other"  # SSLv2-style hello: the handshake refuses it
    assert first_byte_kind(ord("g")) == "other"
