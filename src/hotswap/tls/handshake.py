"""Accepting one TLS connection: sniff, handshake, and say why a handshake failed.

The TLS listener calls `accept_tls_socket` for each accepted socket, inside the
connection's cancel scope with its deadline set to `tls.handshake_timeout`
(these helpers take no timeout: the caller owns the policy). It hands back a
non-blocking ssl.SSLSocket (the proxy reads and writes it directly, see
proxy/sockio.py). It

- peeks at the first byte without consuming it: a TLS connection starts with a
  handshake record (0x16); one that starts with an upper-case letter is a
  plain HTTP request sent to the HTTPS port, answered with a plain-text 400
  as nginx does;
- runs the handshake on the socket itself, OpenSSL writing its own alerts
  (`unrecognized_name` when the SNI callback refused the server name);
- asks Linux to acknowledge at once (TCP_QUICKACK) before and after the
  handshake, so a client with Nagle's algorithm on (no TCP_NODELAY) does not wait
  a delayed ACK (40 ms) of its Finished before its request leaves (measured on
  loopback with trio.SSLStream, which held the session tickets back: 44 -> 550
  new TLS 1.3 connections a second for such clients).

A failure raises HandshakeFailed with a `reason` fit for a metrics label; bad
handshakes are part of life on a public port, so they are logged at debug.
"""

from __future__ import annotations

import enum
import logging
import socket
import ssl

import trio

from hotswap.tls.context import HandshakeNote, handshake_note

log = logging.getLogger(__name__)

TLS_HANDSHAKE_RECORD = 0x16
MAX_PLAIN_REQUEST_HEAD = 16 * 1024  # read (and drop) at most this much of a plain request
PLAIN_HTTP_MESSAGE = (
    b"400 Bad Request: this port speaks HTTPS; the plain HTTP request was sent to it\n"
)
PLAIN_HTTP_RESPONSE = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(PLAIN_HTTP_MESSAGE)).encode("ascii") + b"\r\n"
    b"Connection: close\r\n"
    b"\r\n" + PLAIN_HTTP_MESSAGE
)


class FailureReason(enum.StrEnum):
    """Why a handshake failed; bounded, for a metrics label."""

    CLOSED = "closed"  # the client closed (or reset) before or during the handshake
    PLAIN_HTTP = "plain_http"  # a plain HTTP request on the HTTPS port (answered 400)
    UNKNOWN_NAME = "unknown_name"  # no certificate for the server name (or no SNI)
    PROTOCOL = "protocol"  # anything else TLS refused: version, ciphers, garbage


class HandshakeFailed(Exception):
    """The connection never became a TLS stream; `reason` says why."""

    def __init__(self, reason: FailureReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


def first_byte_kind(first: int) -> str:
    """What the first byte of a connection says it is: "tls" for a TLS handshake record,
    "http" for what starts an HTTP request method (an upper-case letter), else "other"
    (left to the handshake to refuse)."""
    if first == TLS_HANDSHAKE_RECORD:
        return "tls"
    if 0x41 <= first <= 0x5A:
        return "http"
    return "other"


async def accept_tls_socket(
    sock: socket.socket, context: ssl.SSLContext
) -> tuple[ssl.SSLSocket, str]:
    """(the TLS socket, the client's SNI name) of an accepted non-blocking socket, after a
    complete handshake. `sock` is taken over (detached) on success and on failure alike:
    close the returned socket, or on HandshakeFailed nothing (it is closed here).

    OpenSSL writes its own alerts on this path (unrecognized_name included).
    Cancellation (the handshake deadline) passes through; the caller closes `sock`.
    """
    try:
        await trio.lowlevel.wait_readable(sock)
        first = sock.recv(1, socket.MSG_PEEK)
    except OSError as exc:
        raise _failed(FailureReason.CLOSED, str(exc)) from exc
    if not first:
        raise _failed(FailureReason.CLOSED, "closed before the handshake")
    if first_byte_kind(first[0]) == "http":
        await _refuse_plain_http(trio.SocketStream(trio.socket.from_stdlib_socket(sock)))
        raise _failed(FailureReason.PLAIN_HTTP, "plain HTTP request on the HTTPS port")
    _quick_ack_socket(sock)
    tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    note = HandshakeNote()
    token = handshake_note.set(note)
    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(tls)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(tls)
    except ssl.SSLError as exc:
        tls.close()
        if note.refused:
            name = note.server_name
            raise _failed(
                FailureReason.UNKNOWN_NAME,
                f"no certificate for server_name={name}" if name else "the client sent no SNI",
            ) from exc
        if isinstance(exc, ssl.SSLEOFError):
            raise _failed(FailureReason.CLOSED, str(exc)) from exc
        raise _failed(FailureReason.PROTOCOL, str(exc.reason or exc)) from exc
    except OSError as exc:
        tls.close()
        raise _failed(FailureReason.CLOSED, str(exc)) from exc
    except BaseException:
        tls.close()
        raise
    finally:
        handshake_note.reset(token)
    _quick_ack_socket(tls)
    return tls, (note.server_name or "").lower()


def _quick_ack_socket(sock: socket.socket) -> None:
    option = getattr(socket, "TCP_QUICKACK", None)  # Linux only
    if option is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)
        except OSError:
            pass  # the peer is gone: the handshake or the next read says so


def _failed(reason: FailureReason, detail: str) -> HandshakeFailed:
    log.debug("tls handshake failed reason=%s detail=%s", reason, detail)
    return HandshakeFailed(reason, detail)


async def _refuse_plain_http(stream: trio.SocketStream) -> None:
    """Answer 400 once the request head is in (closing on unread data would reset the
    connection and lose the answer), then close our side."""
    received = b""
    try:
        while b"\r\n\r\n" not in received and len(received) < MAX_PLAIN_REQUEST_HEAD:
            chunk = await stream.receive_some(MAX_PLAIN_REQUEST_HEAD)
            if not chunk:
                return
            received += chunk
        await stream.send_all(PLAIN_HTTP_RESPONSE)
        await stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
