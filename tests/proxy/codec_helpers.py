"""Drive a codec the way the proxy does and record what it makes of the bytes.

serve_trace   a ServerCodec reading requests as proxy/connection.py, forward.py and
              exchange.py use it: a head, the checks forward() applies, 100-continue
              when the body is needed, the body, a response, the next cycle
fetch_trace   a ClientCodec sending requests and reading responses as exchange.py and
              the upstream pool use it
h11_responses / h11_requests   what h11, as the peer, reads from bytes a codec wrote

A trace is a list of tuples, equal for two codecs that agree. A message refused
before it could reach a backend (a ProtocolError on its head, or forward()'s
checks) is ("rejected",) without its head; a ProtocolError once the head was
accepted is ("body error",). Partial body bytes before an error are not kept.
`marks`, when given, gets (index in the trace, offset in the input) where each
head starts, to find the bytes of a message the codecs disagree on.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import h11

from hotswap.http.checks import refusal
from hotswap.http.headers import is_upgrade_request
from hotswap.http.host import BadHost, request_host
from hotswap.proxy.codec import (
    CLOSED,
    END,
    NEED_DATA,
    Body,
    ClientCodec,
    Event,
    Headers,
    ProtocolError,
    RequestHead,
    ResponseHead,
    ServerCodec,
)
from hotswap.proxy.codec_fast import FastClientCodec, FastServerCodec
from hotswap.proxy.codec_h11 import H11ClientCodec, H11ServerCodec

Trace = list[tuple[object, ...]]
Marks = list[tuple[int, int]]
ServerFactory = Callable[[int], ServerCodec]
ClientFactory = Callable[[int], ClientCodec]

SERVER_CODECS: dict[str, ServerFactory] = {"h11": H11ServerCodec, "fast": FastServerCodec}
CLIENT_CODECS: dict[str, ClientFactory] = {"h11": H11ClientCodec, "fast": FastClientCodec}

RESPONSE_BODY = b"ok"
OK_HEADERS: Headers = [(b"content-length", b"2")]


class Stuck(Exception):
    """The codec asked for data after it was told the peer closed (it would spin)."""


class Feed:
    """Hands `pieces` to a codec one per NEED_DATA, then EOF (b"") once."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = [piece for piece in pieces if piece]
        self._next = 0
        self.fed = 0  # bytes handed over so far
        self.eof = False

    def more(self, codec: ServerCodec | ClientCodec) -> None:
        if self._next < len(self._pieces):
            piece = self._pieces[self._next]
            codec.receive(piece)
            self._next += 1
            self.fed += len(piece)
        elif not self.eof:
            self.eof = True
            codec.receive(b"")
        else:
            raise Stuck


def split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at the given offsets (out-of-range and repeated ones ignored)."""
    points = sorted({cut for cut in cuts if 0 < cut < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _event(codec: ServerCodec | ClientCodec, feed: Feed) -> Event:
    """The next event that is not NEED_DATA, feeding the codec as it asks."""
    while True:
        event = codec.next_event()
        if event is not NEED_DATA:
            return event
        feed.more(codec)


def _fields(headers: Headers) -> list[tuple[bytes, bytes]]:
    # h11 lower-cases Transfer-Encoding values. Framing fields are never forwarded
    # (each side is framed by its codec): what they mean is `length` and `chunked`.
    return [
        (bytes(name), bytes(value).lower() if name == b"transfer-encoding" else bytes(value))
        for name, value in headers
    ]


def request_summary(head: RequestHead) -> tuple[object, ...]:
    return (
        "request",
        bytes(head.method),
        bytes(head.target),
        bytes(head.http_version),
        _fields(head.headers),
        head.length,
        head.chunked,
        head.expect_continue,
    )


def response_summary(head: ResponseHead) -> tuple[object, ...]:
    return (
        "response",
        head.status,
        bytes(head.reason),
        bytes(head.http_version),
        _fields(head.headers),
        head.length,
        head.chunked,
    )


def forward_verdict(head: RequestHead) -> tuple[int, str] | None:
    """What forward() answers instead of forwarding `head` (None: it reaches a backend)."""
    refused = refusal(head.method, head.target, head.http_version)
    if refused is not None:
        return refused
    try:
        request_host(head.target, head.headers, head.http_version)
    except BadHost as exc:
        return 400, str(exc)
    return None


def _read_body(codec: ServerCodec | ClientCodec, feed: Feed, trace: Trace, server: bool) -> bytes:
    """The body up to END; a 100 Continue is sent when the body is needed, as exchange.py does."""
    body = bytearray()
    while True:
        event = codec.next_event()
        if event is NEED_DATA:
            if server and codec.waiting_for_continue:  # type: ignore[union-attr]
                codec.continue_100()  # type: ignore[union-attr]
                trace.append(("continue",))
            feed.more(codec)
        elif type(event) is Body:
            assert isinstance(event, Body)
            body += event.data
        elif event is END:
            return bytes(body)
        else:
            raise AssertionError(f"unexpected {event!r} in a body")


def serve_trace(
    codec: ServerCodec,
    pieces: Iterable[bytes],
    *,
    out: list[bytes] | None = None,
    marks: Marks | None = None,
) -> Trace:
    """Requests as the proxy reads them from `pieces` (then EOF), each answered 200 with
    a 2-byte body (none for HEAD), or 101 for a WebSocket upgrade; what the codec
    writes is appended to `out`."""
    trace: Trace = []
    feed = Feed(pieces)
    written = out if out is not None else []
    marks = marks if marks is not None else []
    in_head = True
    try:
        while True:
            in_head = True
            marks.append((len(trace), feed.fed - len(codec.trailing_data)))
            event = _event(codec, feed)
            if event is CLOSED:
                trace.append(("closed",))
                return trace
            assert type(event) is RequestHead, event
            head = event
            if forward_verdict(head) is not None:
                trace.append(("rejected",))
                return trace
            trace.append(request_summary(head))
            in_head = False
            trace.append(("body", _read_body(codec, feed, trace, server=True)))
            trace.append(("end", codec.peer_done))
            if is_upgrade_request(head.headers) == b"websocket":
                upgrade = [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
                written.append(codec.response(101, upgrade, b"Switching Protocols"))
                trace.append(("switched", codec.switched, codec.trailing_data))
                return trace
            written.append(codec.response(200, list(OK_HEADERS), b"OK"))
            body = b"" if head.method == b"HEAD" else RESPONSE_BODY
            written.append(codec.body(body) + codec.end())
            state = (codec.response_done, codec.cycle_done, codec.has_buffered_data)
            trace.append(("sent", *state, codec.trailing_data))
            if not codec.cycle_done:
                return trace
            codec.start_next_cycle()
    except ProtocolError:
        trace.append(("rejected",) if in_head else ("body error",))
    except Stuck:
        trace.append(("stuck",))
    return trace


def fetch_trace(
    codec: ClientCodec,
    requests: Sequence[tuple[bytes, Headers]],
    pieces: Iterable[bytes],
    *,
    marks: Marks | None = None,
) -> Trace:
    """Send each request (no body) and read its response from `pieces` (then EOF), as the
    proxy does: 1xx heads other than 101 are skipped, a cycle ends the connection unless
    it is done with nothing buffered (the pool's rule)."""
    trace: Trace = []
    feed = Feed(pieces)
    marks = marks if marks is not None else []
    in_head = True
    try:
        for method, headers in requests:
            codec.request(method, b"/", headers)
            codec.end()
            in_head = True
            while True:
                marks.append((len(trace), feed.fed - len(codec.trailing_data)))
                event = _event(codec, feed)
                if type(event) is not ResponseHead:
                    trace.append(("unexpected", repr(event)))
                    return trace
                assert isinstance(event, ResponseHead)
                trace.append(response_summary(event))
                if event.status >= 200 or event.status == 101:
                    break
            if event.status == 101:
                trace.append(("switched", codec.switched, codec.trailing_data))
                return trace
            in_head = False
            trace.append(("body", _read_body(codec, feed, trace, server=False)))
            trace.append(("end", codec.peer_done, codec.cycle_done, codec.has_buffered_data))
            if not codec.cycle_done or codec.has_buffered_data:
                return trace
            codec.start_next_cycle()
    except ProtocolError:
        trace.append(("rejected",) if in_head else ("body error",))
    except Stuck:
        trace.append(("stuck",))
    return trace


# -- what h11 reads back from bytes a codec wrote ---------------------------------------


def _h11_messages(conn: h11.Connection, data: bytes) -> list[tuple[object, ...]]:
    conn.receive_data(data)
    conn.receive_data(b"")
    messages: list[tuple[object, ...]] = []
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED or type(event) is h11.ConnectionClosed:
            return messages
        if isinstance(event, h11.Request):
            messages.append(("request", event.method, event.target, _sorted(event.headers)))
        elif isinstance(event, h11.InformationalResponse | h11.Response):
            messages.append(("response", event.status_code, _sorted(event.headers)))
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            messages.append(("body", bytes(body)))
            body.clear()
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()


def _sorted(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return sorted((bytes(name).lower(), bytes(value)) for name, value in headers)


def h11_responses(request: h11.Request, data: bytes) -> list[tuple[object, ...]]:
    """The responses h11, as the client that sent `request`, reads from `data` (then EOF)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(request)
    conn.send(h11.EndOfMessage())
    return _h11_messages(conn, data)


def h11_requests(data: bytes) -> list[tuple[object, ...]]:
    """The requests h11, as a server, reads from `data` (then EOF)."""
    return _h11_messages(h11.Connection(h11.SERVER), data)
