"""The sans-I/O HTTP/1.1 codec interface, with two implementations behind it.

Forwarding code speaks only these events and methods. `ServerCodec` is the
client connection's side (parses requests, writes responses), `ClientCodec` an
upstream connection's side (writes requests, parses responses). Two
implementations keep the same contract:

- `fast` (codec_fast.py, the default): heads parsed by llhttp (httptools) in
  strict mode, framing, chunked bodies, keep-alive and pipelining by our own
  code, heads written by our own serializer;
- `h11` (codec_h11.py): the reference implementation, on h11.

What one accepts, the other accepts with the same meaning, or both reject;
tests/proxy/test_codec_differential.py holds them together and
docs/architecture.md lists the few deliberate differences. Both parse each head
in full and give its framing (`length`, `chunked`) already checked: framing
that is ambiguous never leaves a codec.
"""

from __future__ import annotations

from typing import Final, Protocol

Headers = list[tuple[bytes, bytes]]

# A request head beyond this is answered 431 (nginx: 4 x 8 KiB).
MAX_REQUEST_HEAD_SIZE: Final = 32 * 1024
# An upstream response head beyond this is an invalid response (502).
MAX_RESPONSE_HEAD_SIZE: Final = 64 * 1024


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
PAUSED: Final = _Marker("PAUSED")  # the message is complete; more bytes wait for the next cycle
END: Final = _Marker("END")  # the message body is complete (trailers are dropped)
CLOSED: Final = _Marker("CLOSED")  # the peer closed the connection cleanly


class RequestHead:
    """A parsed request head with its framing already checked."""

    __slots__ = (
        "chunked",
        "expect_continue",
        "head_size",
        "headers",
        "http_version",
        "length",
        "method",
        "target",
        "upgrade",
    )

    def __init__(
        self,
        method: bytes,
        target: bytes,
        headers: Headers,
        http_version: bytes,
        *,
        length: int | None,
        chunked: bool,
        expect_continue: bool,
        head_size: int,
        upgrade: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers  # lower-cased names, in order
        self.http_version = http_version
        self.length = length  # Content-Length, None without one
        self.chunked = chunked  # Transfer-Encoding: chunked
        self.expect_continue = expect_continue  # Expect: 100-continue (HTTP/1.1)
        self.head_size = head_size  # bytes of the request line and fields as received
        self.upgrade = upgrade  # it has an Upgrade header (a switch may be asked for)

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)


class ResponseHead:
    """A parsed response head; 1xx (informational) responses included, 101 among them."""

    __slots__ = ("chunked", "headers", "http_version", "length", "reason", "status")

    def __init__(
        self,
        status: int,
        headers: Headers,
        reason: bytes,
        http_version: bytes,
        *,
        length: int | None,
        chunked: bool,
    ) -> None:
        self.status = status
        self.headers = headers
        self.reason = reason
        self.http_version = http_version
        # The declared Content-Length (kept for HEAD and 304 answers, whose
        # body is empty whatever the header says), None without one.
        self.length = length
        self.chunked = chunked


class Body:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


Event = RequestHead | ResponseHead | Body | _Marker


class _Codec(Protocol):
    """What both sides of both implementations have."""

    def receive(self, data: bytes) -> None:
        """Feed bytes read from the peer; b"" means the peer closed (EOF)."""

    def next_event(self) -> Event:
        """The next event from the bytes received so far; raises ProtocolError."""

    def body(self, data: bytes) -> bytes:
        """Bytes to write for `data` of the message being sent (framed as its head said)."""

    def end(self) -> bytes:
        """Bytes that end the message being sent."""

    def send_failed(self) -> None:
        """A write to the peer raised: nothing more may be sent on this connection."""

    @property
    def cycle_done(self) -> bool:
        """Both sides finished the exchange: the connection may carry another one."""

    def start_next_cycle(self) -> None: ...

    @property
    def switched(self) -> bool:
        """The exchange switched protocols (101): the connection is now a byte tunnel."""

    @property
    def trailing_data(self) -> bytes:
        """Bytes received after the last event (the start of a tunnel after a switch)."""

    @property
    def peer_done(self) -> bool:
        """The peer's message is complete (or it closed)."""

    @property
    def has_buffered_data(self) -> bool: ...


class ServerCodec(_Codec, Protocol):
    """The client connection's side: parses requests, writes responses."""

    @property
    def waiting_for_continue(self) -> bool:
        """The client sent `Expect: 100-continue` and waits before sending its body."""

    @property
    def can_respond(self) -> bool:
        """No response head has been sent for the current request (an error page fits)."""

    @property
    def response_done(self) -> bool:
        """A complete response was sent for the current request."""

    def continue_100(self) -> bytes: ...

    def response(self, status: int, headers: Headers, reason: bytes) -> bytes:
        """A response head (1xx included). Framing comes from `headers` (content-length
        when the length is known, else chunked or close-delimited) and the request
        (HEAD, 204, 304: no body); `Connection: close` is added when the connection
        will close. `headers` must not hold transfer-encoding."""


class ClientCodec(_Codec, Protocol):
    """An upstream connection's side: writes requests, parses responses."""

    def request(self, method: bytes, target: bytes, headers: Headers) -> bytes:
        """A request head; its framing is what `headers` say (content-length or
        transfer-encoding: chunked, else no body)."""

    @property
    def idle(self) -> bool:
        """Ready for a new request (nothing sent on this connection since its last cycle)."""
