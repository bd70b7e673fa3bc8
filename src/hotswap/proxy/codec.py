"""The HTTP/1.1 codec: the one small sans-I/O interface between the proxy and h11.

Forwarding code speaks only these events and methods, never h11 itself, so a
C-accelerated codec could be added later as an option without touching it.
Each side of an exchange has its own codec: `ServerCodec` for the client
connection, `ClientCodec` for an upstream connection. Framing headers given to
`response()` / `request()` are the caller's choice; the codec refuses ambiguous
framing it receives, and trusts the heads it sends to be made of what it parsed
(see the note on `_parsed=True` below).
"""

from __future__ import annotations

from typing import Final

import h11

Headers = list[tuple[bytes, bytes]]

# A request head beyond this is answered 431 (nginx: 4 x 8 KiB).
MAX_REQUEST_HEAD_SIZE: Final = 32 * 1024
# An upstream response head beyond this is an invalid response (502).
MAX_RESPONSE_HEAD_SIZE: Final = 64 * 1024


# Every head we send is built from fields h11 itself parsed and validated (the
# peer's headers, method, target, reason) plus values we produce (IP addresses,
# decimal lengths, constants). Re-validating them on send was a third of h11's
# cost per proxied request (profiled: 270 -> 185 us of codec time per request on
# the benchmark machine), so heads are sent with h11's `_parsed=True`, which skips
# the regexes h11 already ran on receive (lower-casing and the Content-Length /
# Transfer-Encoding checks still run). The flag is private to h11 (present since
# 0.8); tests/proxy would fail at once if an h11 release dropped it.
class ProtocolError(Exception):
    """The peer sent something that is not valid HTTP/1.1; `status_hint` is the answer."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NEED_DATA: Final = _Marker("NEED_DATA")  # call receive() with more bytes (b"" = EOF)
PAUSED: Final = _Marker("PAUSED")  # stop reading until this exchange ends (or switches)
END: Final = _Marker("END")  # the message body is complete (trailers are dropped)
CLOSED: Final = _Marker("CLOSED")  # the peer closed the connection cleanly


class RequestHead:
    __slots__ = ("headers", "http_version", "method", "target")

    def __init__(self, method: bytes, target: bytes, headers: Headers, http_version: bytes):
        self.method = method
        self.target = target
        self.headers = headers  # lower-cased names, in order
        self.http_version = http_version


class ResponseHead:
    """A response head; 1xx (informational) responses included, 101 among them."""

    __slots__ = ("headers", "http_version", "reason", "status")

    def __init__(self, status: int, headers: Headers, reason: bytes, http_version: bytes):
        self.status = status
        self.headers = headers
        self.reason = reason
        self.http_version = http_version


class Body:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


Event = RequestHead | ResponseHead | Body | _Marker


class _Codec:
    __slots__ = ("_h11",)
    _h11: h11.Connection

    def receive(self, data: bytes) -> None:
        """Feed bytes read from the peer; b"" means the peer closed (EOF)."""
        try:
            self._h11.receive_data(data)
        except RuntimeError as exc:  # data after EOF: a bug of ours, not the peer's
            raise ProtocolError(str(exc)) from exc

    def next_event(self) -> Event:
        """The next event parsed from the bytes received so far; raises ProtocolError."""
        try:
            event = self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(str(exc), exc.error_status_hint) from exc
        kind = type(event)
        if kind is h11.Data:
            return Body(event.data)  # type: ignore[union-attr]
        if kind is h11.EndOfMessage:
            return END
        if event is h11.NEED_DATA:
            return NEED_DATA
        # Headers become a plain list once: h11's Headers is a Sequence whose
        # iteration goes through __getitem__, and every consumer walks them.
        if kind is h11.Request:
            return RequestHead(
                event.method,  # type: ignore[union-attr]
                event.target,  # type: ignore[union-attr]
                list(event.headers),  # type: ignore[union-attr]
                event.http_version,  # type: ignore[union-attr]
            )
        if kind is h11.Response or kind is h11.InformationalResponse:
            return ResponseHead(
                event.status_code,  # type: ignore[union-attr]
                list(event.headers),  # type: ignore[union-attr]
                event.reason,  # type: ignore[union-attr]
                event.http_version,  # type: ignore[union-attr]
            )
        if event is h11.PAUSED:
            return PAUSED
        return CLOSED

    def body(self, data: bytes) -> bytes:
        return self._h11.send(h11.Data(data=data)) or b""

    def end(self) -> bytes:
        return self._h11.send(h11.EndOfMessage()) or b""

    def send_failed(self) -> None:
        """A write to the peer raised: nothing more may be sent on this connection."""
        self._h11.send_failed()

    @property
    def cycle_done(self) -> bool:
        """Both sides finished the exchange: the connection may carry another one."""
        return self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE

    def start_next_cycle(self) -> None:
        self._h11.start_next_cycle()

    @property
    def switched(self) -> bool:
        """The exchange switched protocols (101): the connection is now a byte tunnel."""
        return self._h11.our_state is h11.SWITCHED_PROTOCOL

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the last event (the start of a tunnel after a switch)."""
        data, _closed = self._h11.trailing_data
        return bytes(data)

    @property
    def peer_done(self) -> bool:
        """The peer's message is complete (or it closed)."""
        return self._h11.their_state in _PEER_FINISHED

    @property
    def has_buffered_data(self) -> bool:
        return bool(self._h11.trailing_data[0])


_PEER_FINISHED = frozenset({h11.DONE, h11.MUST_CLOSE, h11.CLOSED})


class ServerCodec(_Codec):
    """The client connection's side: parses requests, serialises responses."""

    __slots__ = ()

    def __init__(self, max_head_size: int = MAX_REQUEST_HEAD_SIZE) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_size)

    @property
    def waiting_for_continue(self) -> bool:
        """The client sent `Expect: 100-continue` and waits before sending its body."""
        return self._h11.they_are_waiting_for_100_continue

    @property
    def can_respond(self) -> bool:
        """No response head has been sent for the current request (an error page fits)."""
        return self._h11.our_state in _CAN_RESPOND

    @property
    def response_done(self) -> bool:
        """A complete response was sent for the current request."""
        return self._h11.our_state in _RESPONSE_SENT

    @property
    def client_http_version(self) -> bytes:
        return self._h11.their_http_version or b"1.1"

    @property
    def keep_alive(self) -> bool:
        return self._h11.our_state is not h11.MUST_CLOSE and self._h11.our_state is not h11.CLOSED

    def continue_100(self) -> bytes:
        return self._h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b""

    def response(self, status: int, headers: Headers, reason: bytes = b"") -> bytes:
        """Serialise a response head (1xx included); h11 adds `Connection: close` if needed."""
        if status < 200:
            event: h11.Response | h11.InformationalResponse = h11.InformationalResponse(
                status_code=status, headers=headers, reason=reason, _parsed=True
            )
        else:
            event = h11.Response(status_code=status, headers=headers, reason=reason, _parsed=True)
        return self._h11.send(event) or b""


_CAN_RESPOND = frozenset({h11.IDLE, h11.SEND_RESPONSE})
_RESPONSE_SENT = frozenset({h11.DONE, h11.MUST_CLOSE})


class ClientCodec(_Codec):
    """An upstream connection's side: serialises requests, parses responses."""

    __slots__ = ()

    def __init__(self, max_head_size: int = MAX_RESPONSE_HEAD_SIZE) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head_size)

    def request(self, method: bytes, target: bytes, headers: Headers) -> bytes:
        event = h11.Request(method=method, target=target, headers=headers, _parsed=True)
        return self._h11.send(event) or b""

    @property
    def idle(self) -> bool:
        """Ready for a new request (nothing sent on this connection since its last cycle)."""
        return self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE

    @property
    def response_started(self) -> bool:
        return self._h11.their_state is not h11.IDLE
