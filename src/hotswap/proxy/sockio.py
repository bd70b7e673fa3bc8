"""The proxy's socket I/O: transports with stream-style errors, and upstream connects.

trio's socket methods end every call that did not have to wait with a yield to
the scheduler (a checkpoint, for fairness). A proxied request makes four socket
calls, two of which (the writes) almost never wait, so those yields were a large
share of the CPU per request. `SocketTransport` calls the non-blocking socket
first and waits for readiness only when it would block; fairness is kept by a
yield after a run of calls that never waited. Timeouts are not set here: the
caller's cancel scope (one per client connection, its deadline moved per phase)
bounds every wait. `TlsTransport` does the same over a non-blocking `ssl.SSLSocket` (OpenSSL reads
and writes the socket itself; trio.SSLStream's Python-level record shuffling was
two thirds of the cost of TLS per request, measured).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import ssl
from typing import Any, Final, Protocol

import trio

# Calls that did not wait before a transport yields to the scheduler once.
FAIR_RUN: Final = 16
_CLOSED_ERRNOS: Final = frozenset({errno.EBADF, errno.ENOTSOCK})


def _error(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    if isinstance(exc, ssl.SSLError):  # its errno is OpenSSL's, not the socket's
        return trio.BrokenResourceError(f"TLS: {exc}")
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("the socket was closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


class Transport(Protocol):
    """A connection's byte stream; `socket` is the TCP socket underneath."""

    socket: socket.socket

    def receive_nowait(self, max_bytes: int) -> bytes | None:
        """What is readable now (b"" at EOF), None if a read would wait."""

    async def receive(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` (b"" at EOF), waiting if nothing is readable yet."""

    async def receive_after_wait(self, max_bytes: int) -> bytes:
        """receive(), when receive_nowait() just found nothing: waits first."""

    def send_nowait(self, data: bytes) -> int:
        """Write what fits now; how many bytes were written."""

    async def send(self, data: bytes) -> None:
        """Write all of `data`, waiting while the peer does not read."""

    def close(self) -> None:
        """Close at once (a task waiting on the socket gets ClosedResourceError)."""


class _Fair:
    """What both transports share: the yield after FAIR_RUN calls that did not wait,
    and the close."""

    __slots__ = ("_run", "socket")

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self._run = 0  # calls in a row that did not wait

    async def _fair(self) -> None:
        self._run += 1
        if self._run >= FAIR_RUN:
            self._run = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    def close(self) -> None:
        sock = self.socket
        if sock.fileno() >= 0:
            trio.lowlevel.notify_closing(sock)
            sock.close()


class SocketTransport(_Fair):
    """A plain TCP socket (non-blocking), on the hot path."""

    __slots__ = ()

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        super().__init__(sock)

    def receive_nowait(self, max_bytes: int) -> bytes | None:
        try:
            return self.socket.recv(max_bytes)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise _error(exc) from exc

    async def receive(self, max_bytes: int) -> bytes:
        sock = self.socket
        try:
            data = sock.recv(max_bytes)
        except BlockingIOError:
            pass
        except OSError as exc:
            raise _error(exc) from exc
        else:
            await self._fair()
            return data
        return await self.receive_after_wait(max_bytes)

    async def receive_after_wait(self, max_bytes: int) -> bytes:
        sock = self.socket
        self._run = 0
        while True:
            await trio.lowlevel.wait_readable(sock)
            try:
                return sock.recv(max_bytes)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise _error(exc) from exc

    def send_nowait(self, data: bytes) -> int:
        try:
            return self.socket.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise _error(exc) from exc

    async def send(self, data: bytes) -> None:
        sock = self.socket
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise _error(exc) from exc
        if sent == len(data):
            await self._fair()
            return
        self._run = 0
        view = memoryview(data)
        while sent < len(view):
            await trio.lowlevel.wait_writable(sock)
            try:
                sent += sock.send(view[sent:])
            except BlockingIOError:
                continue
            except OSError as exc:
                raise _error(exc) from exc


class TlsTransport(_Fair):
    """A non-blocking ssl.SSLSocket after its handshake (the client side of HTTPS).

    OpenSSL needs a write that could not finish to be retried with the same bytes:
    send_nowait() writes all of `data` or nothing (0), and the caller's send() of the
    same `data` retries it."""

    __slots__ = ()

    def receive_nowait(self, max_bytes: int) -> bytes | None:
        try:
            return self.socket.recv(max_bytes)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except OSError as exc:
            raise _error(exc) from exc

    async def receive(self, max_bytes: int) -> bytes:
        data = self.receive_nowait(max_bytes)
        if data is not None:
            await self._fair()
            return data
        return await self.receive_after_wait(max_bytes)

    async def receive_after_wait(self, max_bytes: int) -> bytes:
        sock = self.socket
        self._run = 0
        while True:
            try:
                return sock.recv(max_bytes)
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(sock)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(sock)
            except OSError as exc:
                raise _error(exc) from exc

    def send_nowait(self, data: bytes) -> int:
        try:
            self.socket.send(data)  # all of it (no partial writes), or an SSLWant*Error
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0
        except OSError as exc:
            raise _error(exc) from exc
        return len(data)

    async def send(self, data: bytes) -> None:
        sock = self.socket
        try:
            sock.send(data)
        except ssl.SSLWantWriteError:
            wait = trio.lowlevel.wait_writable
        except ssl.SSLWantReadError:
            wait = trio.lowlevel.wait_readable
        except OSError as exc:
            raise _error(exc) from exc
        else:
            await self._fair()
            return
        self._run = 0
        while True:
            await wait(sock)
            try:
                sock.send(data)
                return
            except ssl.SSLWantWriteError:
                wait = trio.lowlevel.wait_writable
            except ssl.SSLWantReadError:
                wait = trio.lowlevel.wait_readable
            except OSError as exc:
                raise _error(exc) from exc


def peek_closed(sock: socket.socket) -> bool | None:
    """True if the peer closed (EOF or error), False if it sent data, None if nothing yet.

    Looks at the TCP socket under TLS too (an SSLSocket refuses MSG_PEEK): TLS
    records count as data."""
    try:
        return socket.socket.recv(sock, 1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return None
    except OSError:
        return True


async def connect_tcp(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket (TCP_NODELAY) to host:port.

    Each address of a name is tried in turn; the caller's cancel scope bounds it all.
    """
    targets: list[tuple[int, Any]]
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        targets = [(int(info[0]), info[4]) for info in infos]
    else:
        targets = [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, (host, port))]
    error: OSError = OSError(f"no address for {host}")
    for family, address in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await trio.socket.from_stdlib_socket(sock).connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error
