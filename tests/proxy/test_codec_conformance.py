"""The codec contract (proxy/codec.py), proved once per codec (fast and h11).

The `http_parser` fixture of tests/proxy/conftest.py runs every test here once
per codec; `server` and `client` make that codec's two sides. Bytes a codec
writes are read back by h11, the reference. "Never reaches a backend" means the
codec raises ProtocolError on the head, or forward()'s checks (http/checks.py,
http/host.py) refuse it: codec_helpers.serve_trace applies both.
"""

from __future__ import annotations

from collections.abc import Callable

import h11
import pytest
from codec_helpers import (
    CLIENT_CODECS,
    SERVER_CODECS,
    fetch_trace,
    h11_requests,
    h11_responses,
    serve_trace,
)

from hotswap.config import HttpParser
from hotswap.http.serialize import InvalidField, check_field
from hotswap.proxy.codec import (
    CLOSED,
    END,
    MAX_REQUEST_HEAD_SIZE,
    MAX_RESPONSE_HEAD_SIZE,
    NEED_DATA,
    PAUSED,
    Body,
    ClientCodec,
    Event,
    ProtocolError,
    RequestHead,
    ResponseHead,
    ServerCodec,
)

ServerMaker = Callable[..., ServerCodec]
ClientMaker = Callable[..., ClientCodec]

GET = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n"
HOST = (b"host", b"a.example")
UPGRADE = [HOST, (b"connection", b"upgrade"), (b"upgrade", b"websocket")]


@pytest.fixture
def server(http_parser: HttpParser) -> ServerMaker:
    return SERVER_CODECS[http_parser.value]


@pytest.fixture
def client(http_parser: HttpParser) -> ClientMaker:
    return CLIENT_CODECS[http_parser.value]


def events(codec: ServerCodec | ClientCodec, data: bytes = b"") -> list[Event]:
    """Feed `data` (if any), then the events up to NEED_DATA, PAUSED or CLOSED included."""
    if data:
        codec.receive(data)
    out = []
    while True:
        event = codec.next_event()
        out.append(event)
        if event is NEED_DATA or event is PAUSED or event is CLOSED:
            return out


def body_of(found: list[Event]) -> bytes:
    return b"".join(event.data for event in found if isinstance(event, Body))


def head_of(found: list[Event]) -> RequestHead | ResponseHead:
    head = found[0]
    assert isinstance(head, RequestHead | ResponseHead)
    return head


def asked(
    client: ClientMaker, method: bytes = b"GET", headers: list | None = None, **kwargs: int
) -> ClientCodec:
    """A client codec that sent a body-less request and waits for the response."""
    codec = client(**kwargs)
    codec.request(method, b"/", list(headers or [HOST]))
    codec.end()
    return codec


def respond(codec: ServerCodec, status: int = 200, body: bytes = b"ok") -> bytes:
    headers = [(b"content-length", b"%d" % len(body))]
    return codec.response(status, headers, b"OK") + codec.body(body) + codec.end()


def rejected(data: bytes, server: ServerMaker, **kwargs: int) -> bool:
    """The request in `data` never reaches a backend (refused by the codec or by forward())."""
    return serve_trace(server(**kwargs), [data]) == [("rejected",)]


# -- bounded heads ----------------------------------------------------------------------


def request_of_size(size: int) -> bytes:
    """A valid request head of exactly `size` bytes."""
    base = b"GET / HTTP/1.1\r\nHost: a.example\r\nX-Pad: \r\n\r\n"
    return base.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (size - len(base)))


def test_request_head_over_the_limit_is_431(server: ServerMaker) -> None:
    codec = server(100)
    with pytest.raises(ProtocolError) as info:
        events(codec, request_of_size(101))
    assert info.value.status_hint == 431


def test_request_head_over_the_limit_in_pieces_is_431_before_it_ends(server: ServerMaker) -> None:
    codec = server(100)
    data = request_of_size(400)[:-4]  # the head never ends
    with pytest.raises(ProtocolError) as info:
        for start in range(0, len(data), 10):
            events(codec, data[start : start + 10])
    assert info.value.status_hint == 431


def test_request_head_of_exactly_the_limit_is_accepted(server: ServerMaker) -> None:
    head = head_of(events(server(100), request_of_size(100)))
    assert isinstance(head, RequestHead)
    assert head.head_size == 100


def test_request_head_limit_counts_the_bytes_received_not_the_parsed_fields(
    server: ServerMaker,
) -> None:
    # 101 bytes received; fewer than 100 once the whitespace around the values is stripped.
    data = b"GET / HTTP/1.1\r\nHost:    a.example    \r\nX-Pad:  " + b"p" * 47 + b"  \r\n\r\n"
    assert len(data) == 101
    with pytest.raises(ProtocolError):
        events(server(100), data)


def test_default_request_head_limit_is_the_documented_one(server: ServerMaker) -> None:
    assert isinstance(
        head_of(events(server(), request_of_size(MAX_REQUEST_HEAD_SIZE))), RequestHead
    )
    with pytest.raises(ProtocolError):
        events(server(), request_of_size(MAX_REQUEST_HEAD_SIZE + 1))


def response_of_size(size: int) -> bytes:
    base = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: \r\n\r\n"
    return base.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (size - len(base)))


def test_response_head_over_the_limit_is_refused(client: ClientMaker) -> None:
    codec = asked(client, max_head_size=100)
    with pytest.raises(ProtocolError):
        events(codec, response_of_size(101))


def test_response_head_over_the_limit_in_pieces_is_refused_before_it_ends(
    client: ClientMaker,
) -> None:
    codec = asked(client, max_head_size=100)
    data = response_of_size(400)[:-4]
    with pytest.raises(ProtocolError):
        for start in range(0, len(data), 10):
            events(codec, data[start : start + 10])


def test_response_head_of_exactly_the_limit_is_accepted(client: ClientMaker) -> None:
    codec = asked(client, max_head_size=100)
    assert events(codec, response_of_size(100))[-2:] == [END, NEED_DATA]


def test_each_head_after_an_informational_response_has_its_own_limit(client: ClientMaker) -> None:
    codec = asked(client, max_head_size=100)
    found = events(codec, b"HTTP/1.1 100 Continue\r\n\r\n" + response_of_size(100))
    assert [type(event) for event in found[:2]] == [ResponseHead, ResponseHead]
    codec = asked(client, max_head_size=100)
    with pytest.raises(ProtocolError):
        events(codec, b"HTTP/1.1 100 Continue\r\n\r\n" + response_of_size(101))


def test_default_response_head_limit_is_the_documented_one(client: ClientMaker) -> None:
    codec = asked(client)
    assert events(codec, response_of_size(MAX_RESPONSE_HEAD_SIZE))[-2:] == [END, NEED_DATA]
    with pytest.raises(ProtocolError):
        events(asked(client), response_of_size(MAX_RESPONSE_HEAD_SIZE + 1))


# -- Host ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        b"GET http://a.example/ HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    ],
    ids=["missing", "twice-equal", "twice-different", "absolute-form-without-host", "http10-twice"],
)
def test_host_missing_on_http11_or_not_unique_never_reaches_a_backend(
    server: ServerMaker, data: bytes
) -> None:
    assert rejected(data, server)


def test_http10_request_without_host_is_accepted(server: ServerMaker) -> None:
    head = head_of(events(server(), b"GET / HTTP/1.0\r\n\r\n"))
    assert isinstance(head, RequestHead)
    assert head.http_version == b"1.0"
    assert head.headers == []


# -- Transfer-Encoding and framing -----------------------------------------------------


@pytest.mark.parametrize(
    "te",
    [b"gzip", b"gzip, chunked", b"chunked, gzip", b"identity", b"chunked, chunked", b"chunked;q=1"],
)
def test_request_transfer_encoding_other_than_chunked_is_refused(
    server: ServerMaker, te: bytes
) -> None:
    data = b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n"
    assert rejected(data, server)


def test_request_transfer_encoding_twice_is_refused(server: ServerMaker) -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert rejected(data, server)


@pytest.mark.parametrize("te", [b"gzip", b"gzip, chunked", b"chunked, gzip", b"identity"])
def test_response_transfer_encoding_other_than_chunked_is_refused(
    client: ClientMaker, te: bytes
) -> None:
    with pytest.raises(ProtocolError):
        events(asked(client), b"HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te + b"\r\n\r\n")


@pytest.mark.parametrize("te", [b"chunked", b"Chunked", b"CHUNKED"])
def test_transfer_encoding_chunked_in_any_case_frames_a_chunked_body(
    server: ServerMaker, te: bytes
) -> None:
    data = b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: " + te + b"\r\n\r\n"
    found = events(server(), data + b"3;ext=1\r\nabc\r\n0\r\n\r\n")
    head = head_of(found)
    assert head.chunked and head.length is None
    assert body_of(found) == b"abc"
    assert found[-2:] == [END, NEED_DATA]


def test_content_length_frames_the_body_and_the_rest_waits(server: ServerMaker) -> None:
    found = events(
        server(), b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabcGET"
    )
    head = head_of(found)
    assert (head.length, head.chunked, head.has_body) == (3, False, True)  # type: ignore[union-attr]
    assert body_of(found) == b"abc"
    assert found[-2:] == [END, PAUSED]


# -- pipelining ------------------------------------------------------------------------


def test_pipelined_requests_are_handed_over_one_at_a_time(server: ServerMaker) -> None:
    codec = server()
    second = b"GET /2 HTTP/1.1\r\nHost: a.example\r\n\r\n"
    found = events(codec, GET + second)
    assert [type(e) for e in found[:1]] == [RequestHead] and found[1:] == [END, PAUSED]
    assert codec.has_buffered_data
    assert codec.trailing_data == second
    assert codec.next_event() is PAUSED  # until the exchange ends
    assert not codec.cycle_done
    respond(codec)
    assert codec.cycle_done
    codec.start_next_cycle()
    found = events(codec)
    assert head_of(found).target == b"/2"  # type: ignore[union-attr]
    assert found[1:] == [END, NEED_DATA]
    assert not codec.has_buffered_data


def test_a_pipelined_request_after_a_body_waits_for_the_next_cycle(server: ServerMaker) -> None:
    codec = server()
    first = b"POST /1 HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n"
    found = events(codec, first + b"2\r\nab\r\n0\r\n\r\n" + GET)
    assert body_of(found) == b"ab"
    assert found[-2:] == [END, PAUSED]
    respond(codec)
    codec.start_next_cycle()
    assert head_of(events(codec)).target == b"/"  # type: ignore[union-attr]


def test_a_connection_close_request_ends_the_cycles(server: ServerMaker) -> None:
    codec = server()
    codec.receive(b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n" + GET)
    assert isinstance(codec.next_event(), RequestHead)
    assert codec.next_event() is END
    respond(codec)
    assert codec.response_done
    assert not codec.cycle_done


# -- responses without a body -----------------------------------------------------------


@pytest.mark.parametrize(
    "framing",
    [b"Content-Length: 5\r\n", b"Transfer-Encoding: chunked\r\n", b""],
    ids=["content-length", "chunked", "none"],
)
def test_a_response_to_head_has_no_body_whatever_its_framing(
    client: ClientMaker, framing: bytes
) -> None:
    codec = asked(client, b"HEAD")
    found = events(codec, b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n")
    assert isinstance(found[0], ResponseHead)
    assert found[1:] == [END, NEED_DATA]
    assert codec.cycle_done


@pytest.mark.parametrize("status", [204, 304])
def test_204_and_304_responses_have_no_body(client: ClientMaker, status: int) -> None:
    codec = asked(client)
    found = events(codec, b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n" % status)
    head = head_of(found)
    assert head.length == 5  # kept: a 304's Content-Length reaches the client
    assert found[1:] == [END, NEED_DATA]
    assert codec.cycle_done


def test_bytes_after_a_bodiless_response_stay_buffered(client: ClientMaker) -> None:
    codec = asked(client, b"HEAD")
    found = events(codec, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert found[1:] == [END, PAUSED]
    assert codec.has_buffered_data  # so the pool never reuses the connection


def test_informational_responses_come_before_the_final_one_without_a_body(
    client: ClientMaker,
) -> None:
    codec = asked(client)
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\nContent-Length: 9\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    found = events(codec, data)
    statuses = [e.status for e in found if isinstance(e, ResponseHead)]
    assert statuses == [100, 103, 200]
    assert body_of(found) == b"ok"
    assert found[-2:] == [END, NEED_DATA]


@pytest.mark.parametrize(
    "interim",
    [b"HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n", b"HTTP/1.0 100 Continue\r\n\r\n"],
    ids=["connection-close", "http10"],
)
def test_an_informational_response_that_says_close_ends_the_cycles(
    client: ClientMaker, interim: bytes
) -> None:
    codec = asked(client)
    found = events(codec, interim + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert found[-2:] == [END, NEED_DATA]
    assert not codec.cycle_done  # the upstream said it closes: never reused


def test_a_response_head_for_head_keeps_its_length_and_sends_no_body(server: ServerMaker) -> None:
    codec = server()
    events(codec, b"HEAD / HTTP/1.1\r\nHost: a.example\r\n\r\n")
    out = codec.response(200, [(b"content-length", b"5")], b"OK") + codec.body(b"") + codec.end()
    assert codec.cycle_done
    request = h11.Request(method="HEAD", target="/", headers=[HOST])
    assert h11_responses(request, out) == [
        ("response", 200, [(b"content-length", b"5")]),
        ("body", b""),
    ]


@pytest.mark.parametrize("status", [204, 304])
def test_a_204_or_304_response_is_written_without_a_body(server: ServerMaker, status: int) -> None:
    codec = server()
    events(codec, GET)
    out = codec.response(status, [], b"X") + codec.end()
    assert codec.cycle_done
    assert b"transfer-encoding" not in out.lower()
    request = h11.Request(method="GET", target="/", headers=[HOST])
    assert h11_responses(request, out) == [("response", status, []), ("body", b"")]


# -- Upgrade and 101 -------------------------------------------------------------------


def test_an_upgrade_request_switches_after_101_and_keeps_the_tunnel_bytes(
    server: ServerMaker,
) -> None:
    codec = server()
    head = (
        b"GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    found = events(codec, head + b"\x81\x00frame")
    assert found[1:] == [END, PAUSED]  # nothing more is read as HTTP
    out = codec.response(101, [(b"connection", b"upgrade"), (b"upgrade", b"websocket")], b"SP")
    assert codec.switched
    assert codec.trailing_data == b"\x81\x00frame"
    assert out.startswith(b"HTTP/1.1 101 ")
    assert not codec.cycle_done


def test_a_declined_upgrade_goes_on_as_http(server: ServerMaker) -> None:
    codec = server()
    head = (
        b"GET /ws HTTP/1.1\r\nHost: a.example\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    events(codec, head + GET)
    respond(codec)
    assert not codec.switched
    assert codec.cycle_done
    codec.start_next_cycle()
    assert isinstance(head_of(events(codec)), RequestHead)


@pytest.mark.parametrize("value", [b"", b",", b" , "])
def test_an_empty_upgrade_header_proposes_no_switch(server: ServerMaker, value: bytes) -> None:
    codec = server()
    found = events(codec, b"GET / HTTP/1.1\r\nHost: a.example\r\nUpgrade: " + value + b"\r\n\r\n")
    assert found[1:] == [END, NEED_DATA]
    assert codec.peer_done  # a response need not say close


def test_a_101_response_switches_and_keeps_the_tunnel_bytes(client: ClientMaker) -> None:
    codec = asked(client, headers=UPGRADE)
    data = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    codec.receive(data + b"\x81\x00")
    head = codec.next_event()
    assert isinstance(head, ResponseHead) and head.status == 101
    assert codec.switched
    assert codec.trailing_data == b"\x81\x00"


def test_a_101_response_to_a_request_without_upgrade_is_refused(client: ClientMaker) -> None:
    codec = asked(client)
    with pytest.raises(ProtocolError):
        events(codec, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")


@pytest.mark.parametrize(
    "fields",
    [
        b"",
        b"Connection: upgrade\r\n",
        b"Upgrade: websocket\r\n",
        b"Connection: close\r\nUpgrade: websocket\r\n",
    ],
    ids=["neither", "no-upgrade", "no-connection-option", "connection-close"],
)
def test_a_101_response_without_upgrade_and_its_connection_option_is_refused(
    client: ClientMaker, fields: bytes
) -> None:
    # RFC 9110 §15.2.2 and §7.8: a 101 names the protocol in Upgrade, and Upgrade is
    # a connection option (RFC 6455 §4.2.2 asks both of a WebSocket handshake).
    codec = asked(client, headers=UPGRADE)
    with pytest.raises(ProtocolError):
        events(codec, b"HTTP/1.1 101 Switching Protocols\r\n" + fields + b"\r\n")


# -- 100-continue ----------------------------------------------------------------------

EXPECT = b"POST / HTTP/1.1\r\nHost: a.example\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"


def test_a_client_expecting_100_continue_waits_until_it_is_sent(server: ServerMaker) -> None:
    codec = server()
    found = events(codec, EXPECT)
    assert head_of(found).expect_continue  # type: ignore[union-attr]
    assert found[1:] == [NEED_DATA]
    assert codec.waiting_for_continue
    out = codec.continue_100()
    assert not codec.waiting_for_continue
    assert out.startswith(b"HTTP/1.1 100 ") and out.endswith(b"\r\n\r\n")
    assert body_of(events(codec, b"abc")) == b"abc"
    assert codec.can_respond  # a 100 is not the response


def test_waiting_for_continue_ends_when_the_body_starts_arriving(server: ServerMaker) -> None:
    # The client did not wait: a 100 Continue now would only come after its body.
    codec = server()
    found = events(codec, EXPECT + b"a")
    assert body_of(found) == b"a"
    assert not codec.waiting_for_continue


def test_waiting_for_continue_ends_with_the_response(server: ServerMaker) -> None:
    codec = server()
    events(codec, EXPECT)
    codec.response(417, [(b"content-length", b"0")], b"Expectation Failed")
    assert not codec.waiting_for_continue


def test_expect_100_continue_on_http10_is_ignored(server: ServerMaker) -> None:
    codec = server()
    found = events(codec, EXPECT.replace(b"HTTP/1.1", b"HTTP/1.0"))
    assert not head_of(found).expect_continue  # type: ignore[union-attr]
    assert not codec.waiting_for_continue


# -- trailers --------------------------------------------------------------------------

CHUNKED = b"POST / HTTP/1.1\r\nHost: a.example\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_trailers_are_validated_and_dropped(server: ServerMaker) -> None:
    found = events(server(), CHUNKED + b"2\r\nab\r\n0\r\nX-Checksum: 1\r\nX-Other:\r\n\r\n")
    assert body_of(found) == b"ab"
    assert found[-2:] == [END, NEED_DATA]
    assert all(not isinstance(e, ResponseHead | RequestHead) for e in found[1:])


@pytest.mark.parametrize(
    "trailer", [b"no colon", b"X: a\x00b", b"X : 1", b" folded", b"X: 1\rY: 2"]
)
def test_a_malformed_trailer_is_refused(server: ServerMaker, trailer: bytes) -> None:
    codec = server()
    with pytest.raises(ProtocolError):
        events(codec, CHUNKED + b"2\r\nab\r\n0\r\n" + trailer + b"\r\n\r\n")


def test_response_trailers_are_validated_and_dropped(client: ClientMaker) -> None:
    codec = asked(client)
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"
    found = events(codec, data)
    assert body_of(found) == b"ok"
    assert found[-2:] == [END, NEED_DATA]


# -- EOF in every state ----------------------------------------------------------------


def test_eof_before_a_request_is_a_clean_close(server: ServerMaker) -> None:
    codec = server()
    codec.receive(b"")
    assert codec.next_event() is CLOSED
    assert codec.peer_done


def test_eof_between_requests_is_a_clean_close(server: ServerMaker) -> None:
    codec = server()
    events(codec, GET)
    respond(codec)
    codec.start_next_cycle()
    codec.receive(b"")
    assert codec.next_event() is CLOSED


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTT",
        b"GET / HTTP/1.1\r\nHost: a.example\r\n",
        b"POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nab",
        CHUNKED + b"5\r\nab",
        CHUNKED + b"5\r\nabcde\r\n",
        CHUNKED + b"0\r\nX-T: 1\r\n",
    ],
    ids=["request-line", "fields", "length-body", "chunk-data", "chunk-size", "trailers"],
)
def test_eof_inside_a_request_is_refused(server: ServerMaker, data: bytes) -> None:
    codec = server()
    with pytest.raises(ProtocolError):
        events(codec, data)
        codec.receive(b"")
        events(codec)


def test_eof_after_a_complete_request_lets_the_response_be_sent(server: ServerMaker) -> None:
    codec = server()
    found = events(codec, GET)
    codec.receive(b"")
    assert found[1:] == [END, NEED_DATA]
    assert codec.peer_done and codec.can_respond
    respond(codec)
    assert codec.response_done


def test_eof_before_a_response_on_an_idle_connection_is_a_clean_close(client: ClientMaker) -> None:
    codec = client()
    codec.receive(b"")
    assert codec.next_event() is CLOSED


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"HTTP/1.1 200",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ],
    ids=["nothing", "status-line", "fields", "length-body", "chunked-body"],
)
def test_eof_inside_a_response_is_refused(client: ClientMaker, data: bytes) -> None:
    codec = asked(client)
    with pytest.raises(ProtocolError):
        events(codec, data)
        codec.receive(b"")
        events(codec)


def test_eof_ends_a_close_delimited_response(client: ClientMaker) -> None:
    codec = asked(client)
    found = events(codec, b"HTTP/1.1 200 OK\r\n\r\nsome")
    assert body_of(found) == b"some" and found[-1] is NEED_DATA
    codec.receive(b"")
    assert events(codec)[0] is END
    assert codec.peer_done
    assert not codec.cycle_done


def test_a_close_delimited_response_ended_in_the_same_read_is_not_reused(
    client: ClientMaker,
) -> None:
    codec = asked(client)
    codec.receive(b"HTTP/1.1 200 OK\r\n\r\n")
    codec.receive(b"")
    assert isinstance(codec.next_event(), ResponseHead)
    assert codec.next_event() is END
    assert not codec.cycle_done  # the pool closes it


# -- send_failed -----------------------------------------------------------------------


def test_send_failed_ends_the_connection_for_the_server(server: ServerMaker) -> None:
    codec = server()
    events(codec, GET)
    codec.response(200, [(b"content-length", b"2")], b"OK")
    codec.send_failed()
    assert not codec.cycle_done
    assert not codec.response_done


def test_send_failed_ends_the_connection_for_the_client(client: ClientMaker) -> None:
    codec = client()
    codec.request(b"POST", b"/", [HOST, (b"content-length", b"2")])
    codec.send_failed()
    codec.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert events(codec)[1] is END
    assert not codec.cycle_done


# -- what never reaches a backend -------------------------------------------------------

REQUESTS_NEVER_FORWARDED = {
    # ambiguous framing
    "cl+te": b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "te+cl": b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    "two-lengths": b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "length-list": b"Content-Length: 3, 4\r\n\r\nabcd",
    "length-sign": b"Content-Length: +3\r\n\r\nabc",
    "length-negative": b"Content-Length: -1\r\n\r\n",
    "length-hex": b"Content-Length: 0x3\r\n\r\nabc",
    "length-empty": b"Content-Length: \r\n\r\n",
    "length-junk": b"Content-Length: 3 3\r\n\r\nabc",
    "length-huge": b"Content-Length: 999999999999999999999\r\n\r\n",
    "te-gzip": b"Transfer-Encoding: gzip\r\n\r\n",
    "te-chunked-not-final": b"Transfer-Encoding: chunked, gzip\r\n\r\n",
    "te-gzip-chunked": b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    # control characters, bare CR, NUL, obs-fold
    "bare-cr-value": b"X-A: a\rb\r\n\r\n",
    "bare-cr-line": b"X-A: a\r\rX-B: b\r\n\r\n",
    "nul-value": b"X-A: a\x00b\r\n\r\n",
    "soh-value": b"X-A: a\x01b\r\n\r\n",
    "esc-value": b"X-A: \x1b[31m\r\n\r\n",
    "del-value": b"X-A: a\x7f\r\n\r\n",
    "vt-value": b"X-A: a\x0bb\r\n\r\n",
    "ctl-name": b"X\x01A: a\r\n\r\n",
    "nul-name": b"X\x00A: a\r\n\r\n",
    "space-before-colon": b"X-A : a\r\n\r\n",
    "obs-fold": b"X-A: a\r\n b\r\n\r\n",
    "obs-fold-tab": b"X-A: a\r\n\tb\r\n\r\n",
    "no-colon": b"X-A a\r\n\r\n",
}


@pytest.mark.parametrize(
    "fields", list(REQUESTS_NEVER_FORWARDED.values()), ids=list(REQUESTS_NEVER_FORWARDED)
)
def test_a_malformed_request_head_never_reaches_a_backend(
    server: ServerMaker, fields: bytes
) -> None:
    data = b"POST / HTTP/1.1\r\nHost: a.example\r\n" + fields
    assert rejected(data, server)


@pytest.mark.parametrize(
    "line",
    [
        b"GET a/b HTTP/1.1",
        b"GET ?x HTTP/1.1",
        b"GET * HTTP/1.1",
        b"GET ftp://a.example/ HTTP/1.1",
        b"GET a.example:443 HTTP/1.1",
        b"CONNECT a.example:443 HTTP/1.1",
        b"CONNECT / HTTP/1.1",
        b"OPTIONS a.example HTTP/1.1",
        b"GET /a\x00 HTTP/1.1",
        b"GET /a\x7f HTTP/1.1",
        b"GET /a\rb HTTP/1.1",
        b"GET /a b HTTP/1.1",
        b"GET  / HTTP/1.1",
        b"GET / HTTP/1.1 ",
        b"GET / HTTP/2.0",
        b"GET / HTTP/1.2",
        b"GET / HTTP/0.9",
        b"GET /",
        b"G\x00T / HTTP/1.1",
        b"(GET) / HTTP/1.1",
    ],
)
def test_a_request_line_not_of_rfc9112_forms_never_reaches_a_backend(
    server: ServerMaker, line: bytes
) -> None:
    assert rejected(line + b"\r\nHost: a.example\r\n\r\n", server)


@pytest.mark.parametrize("prefix", [b"\r\n", b"\n", b" ", b"\x00"])
def test_bytes_before_the_request_line_never_reach_a_backend(
    server: ServerMaker, prefix: bytes
) -> None:
    assert rejected(prefix + GET, server)


@pytest.mark.parametrize(
    ("line", "target"),
    [
        (b"GET /a/b?c=d HTTP/1.1", b"/a/b?c=d"),
        (b"OPTIONS * HTTP/1.1", b"*"),
        (b"GET http://a.example/x HTTP/1.1", b"http://a.example/x"),
        (b"GET HTTPS://A.example:8443?q HTTP/1.1", b"HTTPS://A.example:8443?q"),
    ],
)
def test_request_targets_of_rfc9112_forms_are_forwarded(
    server: ServerMaker, line: bytes, target: bytes
) -> None:
    trace = serve_trace(server(), [line + b"\r\nHost: a.example\r\n\r\n"])
    assert trace[0][0] == "request" and trace[0][2] == target


def test_a_head_over_the_limit_never_reaches_a_backend(server: ServerMaker) -> None:
    assert rejected(request_of_size(101), server, max_head_size=100)


RESPONSES_NEVER_RELAYED = {
    "cl+te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
    "length-junk": b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nab",
    "te-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    "bare-cr": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n",
    "nul-value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
    "ctl-value": b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n",
    "del-value": b"HTTP/1.1 200 OK\r\nX-A: a\x7f\r\nContent-Length: 0\r\n\r\n",
    "nul-reason": b"HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n",
    "ctl-reason": b"HTTP/1.1 200 O\x1bK\r\nContent-Length: 0\r\n\r\n",
    "bare-cr-reason": b"HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    "status-2-digits": b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
    "status-4-digits": b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    "status-000": b"HTTP/1.1 000 OK\r\nContent-Length: 0\r\n\r\n",
    "status-099": b"HTTP/1.1 099 OK\r\nContent-Length: 0\r\n\r\n",
    "version-0.9": b"HTTP/0.9 200 OK\r\nContent-Length: 0\r\n\r\n",
    "version-1.2": b"HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
    "version-2.0": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    "version-lower": b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "leading-empty-line": b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize(
    "data", list(RESPONSES_NEVER_RELAYED.values()), ids=list(RESPONSES_NEVER_RELAYED)
)
def test_a_malformed_response_head_is_never_relayed(client: ClientMaker, data: bytes) -> None:
    assert fetch_trace(client(), [(b"GET", [HOST])], [data]) == [("rejected",)]


# -- writing: what h11 reads back ------------------------------------------------------


def answered(server: ServerMaker, request: bytes, status: int, headers: list, body: bytes) -> tuple:
    codec = server()
    events(codec, request)
    out = codec.response(status, headers, b"R") + codec.body(body) + codec.end()
    return codec, out


H11_GET = h11.Request(method="GET", target="/", headers=[HOST])


def test_a_response_with_content_length_keeps_it(server: ServerMaker) -> None:
    codec, out = answered(server, GET, 200, [(b"content-length", b"4")], b"body")
    assert h11_responses(H11_GET, out) == [
        ("response", 200, [(b"content-length", b"4")]),
        ("body", b"body"),
    ]
    assert codec.cycle_done


def test_a_response_without_length_is_chunked_on_http11(server: ServerMaker) -> None:
    codec, out = answered(server, GET, 200, [(b"x-a", b"1")], b"body")
    assert h11_responses(H11_GET, out) == [
        ("response", 200, [(b"transfer-encoding", b"chunked"), (b"x-a", b"1")]),
        ("body", b"body"),
    ]
    assert codec.cycle_done


def test_a_response_without_length_is_close_delimited_on_http10(server: ServerMaker) -> None:
    codec, out = answered(server, b"GET / HTTP/1.0\r\n\r\n", 200, [(b"x-a", b"1")], b"body")
    assert h11_responses(H11_GET, out) == [
        ("response", 200, [(b"connection", b"close"), (b"x-a", b"1")]),
        ("body", b"body"),
    ]
    assert not codec.cycle_done


def test_connection_close_is_added_when_the_client_asked_to_close(server: ServerMaker) -> None:
    request = b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"
    codec, out = answered(server, request, 200, [(b"content-length", b"0")], b"")
    assert (b"connection", b"close") in h11_responses(H11_GET, out)[0][2]  # type: ignore[operator]
    assert not codec.cycle_done


def test_a_response_that_says_close_ends_the_cycles(server: ServerMaker) -> None:
    headers = [(b"content-length", b"0"), (b"connection", b"close")]
    codec, out = answered(server, GET, 200, headers, b"")
    assert out.lower().count(b"connection: close") == 1
    assert not codec.cycle_done


@pytest.mark.parametrize(
    ("headers", "body", "framing"),
    [
        ([(b"content-length", b"4")], b"body", [(b"content-length", b"4")]),
        ([(b"transfer-encoding", b"chunked")], b"body", [(b"transfer-encoding", b"chunked")]),
        ([], b"", []),
    ],
    ids=["content-length", "chunked", "none"],
)
def test_a_request_is_written_with_the_framing_its_headers_say(
    client: ClientMaker, headers: list, body: bytes, framing: list
) -> None:
    codec = client()
    out = codec.request(b"POST", b"/x", [HOST, *headers]) + codec.body(body) + codec.end()
    assert h11_requests(out) == [
        ("request", b"POST", b"/x", sorted([HOST, *framing])),
        ("body", body),
    ]
    assert not codec.idle


# -- the serializer's validation helper ------------------------------------------------


class TestCheckField:
    """http/serialize.check_field: what may be written as a field line (RFC 9110 §5)."""

    @pytest.fixture(autouse=True)
    def http_parser(self) -> None:
        """Not a codec test: runs once."""

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            (b"x-a", b"v"),
            (b"X-Mixed_Case.1~", b"a b\tc"),
            (b"x", b""),
            (b"x", b"\x80\xff obs-text"),
            (b"!#$%&'*+-.^_`|~", b"!"),
        ],
    )
    def test_check_field_accepts_valid_field_lines(self, name: bytes, value: bytes) -> None:
        check_field(name, value)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            (b"x", b"a\r\nInjected: 1"),
            (b"x", b"a\rb"),
            (b"x", b"a\nb"),
            (b"x", b"a\x00b"),
            (b"x", b"a\x01b"),
            (b"x", b"a\x7fb"),
            (b"x", b" leading"),
            (b"x", b"trailing\t"),
            (b"", b"v"),
            (b"a b", b"v"),
            (b"a:b", b"v"),
            (b"a\r\nb", b"v"),
            (b"\xe9", b"v"),
        ],
    )
    def test_check_field_refuses_what_could_split_or_corrupt_a_head(
        self, name: bytes, value: bytes
    ) -> None:
        with pytest.raises(InvalidField):
            check_field(name, value)
