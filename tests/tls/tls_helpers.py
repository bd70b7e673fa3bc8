"""Test certificates from a throwaway CA (trustme), written to files like a user's."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import h11
import trio
import trustme

from hotswap.proxy.sockio import TlsTransport
from hotswap.tls.certificate import Certificate, parse_pair
from hotswap.tls.handshake import HandshakeFailed, accept_tls_socket


@dataclass(frozen=True)
class Issued:
    cert: Path  # the chain file: the server's certificate, then the intermediates
    key: Path
    chain_pem: bytes
    key_pem: bytes

    def certificate(self) -> Certificate:
        return parse_pair(self.chain_pem, self.key_pem, cert_name=str(self.cert))


class ThrowawayCA:
    """A CA that writes the certificates it issues into `folder`."""

    def __init__(self, folder: Path) -> None:
        self.ca = trustme.CA()
        self.folder = folder
        self._count = 0

    def issue(self, *names: str, not_after: datetime | None = None) -> Issued:
        leaf = self.ca.issue_cert(*names, not_after=not_after)
        self._count += 1
        cert = self.folder / f"cert{self._count}.pem"
        key = self.folder / f"key{self._count}.pem"
        chain_pem = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        key_pem = leaf.private_key_pem.bytes()
        cert.write_bytes(chain_pem)
        key.write_bytes(key_pem)
        return Issued(cert, key, chain_pem, key_pem)

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA (and checks host names)."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


class TlsTestServer:
    """A loopback TLS server that accepts with accept_tls and records each outcome.

    After a handshake it answers "hello <server name>" and closes; every outcome
    ("ok" or a failure reason) is appended to `outcomes` and announced on `done`.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.outcomes: list[str] = []
        self.port = 0
        self._send, self.done = trio.open_memory_channel[str](100)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        sock = socket.socket(fileno=os.dup(stream.socket.fileno()))  # the proxy's kind
        sock.setblocking(False)
        await stream.aclose()
        try:
            tls, server_name = await accept_tls_socket(sock, self.context)
        except HandshakeFailed as exc:
            outcome = str(exc.reason)
            sock.close()
        else:
            outcome = "ok"
            transport = TlsTransport(tls)
            await transport.send(f"hello {server_name}".encode())
            transport.close()
        self.outcomes.append(outcome)
        await self._send.send(outcome)

    async def next_outcome(self) -> str:
        with trio.fail_after(10):
            return await self.done.receive()


async def handshake(
    port: int, server_name: str | None, context: ssl.SSLContext
) -> trio.SSLStream[trio.SocketStream]:
    """A client TLS connection to 127.0.0.1:`port` with SNI `server_name`."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    tls = trio.SSLStream(stream, context, server_hostname=server_name)
    try:
        await tls.do_handshake()
    except BaseException:
        await stream.aclose()
        raise
    return tls


def served_names(tls: trio.SSLStream[trio.SocketStream]) -> list[str]:
    """The DNS names of the certificate the server answered with."""
    peer = tls.getpeercert()
    assert peer is not None
    return [value for kind, value in peer.get("subjectAltName", ()) if kind == "DNS"]


class ChallengeResponder:
    """The plain-HTTP side of HTTP-01 before the proxy has it: a tiny h11 server on
    127.0.0.1:`port` that answers with the same function the proxy will call
    (TlsManager.challenge_response); 404 for anything else, or for everything while
    `refuse` is set. `served` counts the tokens it answered."""

    def __init__(self, answer: Callable[[str, str, str], bytes | None], port: int) -> None:
        self.answer = answer
        self.port = port
        self.refuse = False
        self.served = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        try:
            with trio.fail_after(10):
                while True:
                    event = connection.next_event()
                    if event is h11.NEED_DATA:
                        connection.receive_data(await stream.receive_some(4096))
                        continue
                    break
                if not isinstance(event, h11.Request):
                    return
                host = dict(event.headers).get(b"host", b"").decode("latin-1")
                body = None
                if not self.refuse:
                    body = self.answer(event.method.decode(), host, event.target.decode("latin-1"))
                status, content = (200, body) if body is not None else (404, b"not found")
                self.served += body is not None
                headers = [("content-length", str(len(content))), ("connection", "close")]
                await stream.send_all(
                    connection.send(h11.Response(status_code=status, headers=headers))
                )
                await stream.send_all(connection.send(h11.Data(data=content)))
                await stream.send_all(connection.send(h11.EndOfMessage()))
        except (trio.BrokenResourceError, trio.TooSlowError, h11.RemoteProtocolError):
            pass
        finally:
            await stream.aclose()


class FakeClock:
    """A wall clock that moves only when told: for renewal and back-off schedules."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
