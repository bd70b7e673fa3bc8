"""The differential test: the fast codec and h11, the reference, read the same bytes alike.

Random requests and responses, valid and broken (codec_strategies.py), are cut at
random points and fed to both codecs as the proxy feeds them (codec_helpers.py):
requests to the server side, responses to the client side after it sent the
matching request. The traces (heads, body bytes, END, the state after each
exchange, what is left over) must be equal, or both codecs must refuse the
message before it can reach a backend. A sweep does the same, deterministically,
for every odd form of the catalogue once. What both write is read back by h11
into the same messages, framed as the codec contract says.

A disagreement is allowed only when one of DELIBERATE explains it: a named
predicate on the message the codecs disagree on, with the side that refuses it.
docs/architecture.md ("The two codecs") lists them with their reasons; keep both short.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from datetime import timedelta

import h11
import pytest
from codec_helpers import (
    CLIENT_CODECS,
    SERVER_CODECS,
    Marks,
    Trace,
    fetch_trace,
    h11_requests,
    h11_responses,
    serve_trace,
    split,
)
from codec_strategies import (
    INFORMATIONAL,
    REQUEST_PARTS,
    RESPONSE_PARTS,
    SWITCHES,
    FixedParts,
    Request,
    exchanges,
    odd_forms,
    request,
    request_streams,
    response,
    upstream_request,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotswap.proxy.codec import (
    END,
    MAX_REQUEST_HEAD_SIZE,
    MAX_RESPONSE_HEAD_SIZE,
    NEED_DATA,
    Event,
    ServerCodec,
)

# CODEC_DIFF_EXAMPLES=20000 for a longer hunt than CI's.
EXAMPLES = int(os.environ.get("CODEC_DIFF_EXAMPLES", "400"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    # Generous per example (a few ms each): it trips on a codec that hangs or goes
    # quadratic, never on a slow CI machine.
    deadline=timedelta(seconds=2),
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
# Where the input is cut into reads: at random offsets, near the end of each head (a body's
# first bytes with its head, or a head's last bytes apart), or byte by byte.
Cuts = list[int] | tuple[int, ...] | str
CUTS = st.one_of(
    st.lists(st.integers(0, 600), max_size=6),
    st.lists(st.integers(-3, 4), min_size=1, max_size=3).map(tuple),
    st.just("bytes"),
)
# The default limits, and small ones that heads cross.
REQUEST_LIMITS = st.sampled_from([MAX_REQUEST_HEAD_SIZE, MAX_REQUEST_HEAD_SIZE, 60, 90, 120])
RESPONSE_LIMITS = st.sampled_from([MAX_RESPONSE_HEAD_SIZE, MAX_RESPONSE_HEAD_SIZE, 50, 80, 120])


@pytest.fixture(autouse=True)
def http_parser() -> None:
    """Overrides tests/proxy/conftest.py's: these tests run both codecs themselves."""


# -- where the codecs disagree ---------------------------------------------------------

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_REFUSALS = ("rejected", "body error")


def pieces(data: bytes, cuts: Cuts) -> list[bytes]:
    """The reads `data` arrives in: at the offsets in a list, at these distances from
    each head's end in a tuple, byte by byte (up to 1 KiB) for "bytes"."""
    if cuts == "bytes" and len(data) <= 1024:
        return [data[i : i + 1] for i in range(len(data))]
    if not isinstance(cuts, list):
        ends = [m.end() for m in _HEAD_END.finditer(data)]
        cuts = [end + d for end in ends for d in (cuts if isinstance(cuts, tuple) else (0,))]
    return split(data, cuts)


@dataclasses.dataclass(frozen=True)
class Divergence:
    """The first place two traces differ, and the input from the head of that message on."""

    message: bytes
    at_head: bool  # on the message's head (else: in its body)
    h11: tuple[object, ...] | None
    fast: tuple[object, ...] | None

    @property
    def head(self) -> bytes:
        match = _HEAD_END.search(self.message)
        return self.message if match is None else self.message[: match.end()]

    @property
    def body(self) -> bytes:
        return self.message[len(self.head) :]

    def refused_by(self, side: str) -> bool:
        item = self.h11 if side == "h11" else self.fast
        return item is not None and item[0] in _REFUSALS


def divergence(reference: Trace, fast: Trace, marks: Marks, data: bytes) -> Divergence | None:
    if reference == fast:
        return None
    index = next(
        (i for i, (a, b) in enumerate(zip(reference, fast, strict=False)) if a != b),
        min(len(reference), len(fast)),
    )
    start_index, offset = max(mark for mark in marks if mark[0] <= index)
    return Divergence(
        message=data[offset:],
        at_head=start_index == index,
        h11=reference[index] if index < len(reference) else None,
        fast=fast[index] if index < len(fast) else None,
    )


@dataclasses.dataclass(frozen=True)
class Deliberate:
    """A documented difference: `stricter` refuses what the other codec accepts."""

    name: str
    stricter: str  # "fast" or "h11"
    reason: str
    applies: Callable[[Divergence], bool]

    def explains(self, diff: Divergence) -> bool:
        other = "h11" if self.stricter == "fast" else "fast"
        return diff.refused_by(self.stricter) and not diff.refused_by(other) and self.applies(diff)


# llhttp's HTTP methods (llhttp/src/llhttp/constants.ts: METHODS_HTTP, PRI only as the
# HTTP/2 preface). h11 takes any token.
LLHTTP_METHODS = frozenset(
    b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE PROPFIND PROPPATCH "
    b"SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY "
    b"SUBSCRIBE UNSUBSCRIBE PATCH PURGE MKCALENDAR LINK UNLINK SOURCE QUERY".split()
)
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD = re.compile(rb"^([^:\r\n]*):([^\r\n]*)", re.M)


def _fields(head: bytes, name: bytes) -> list[bytes]:
    return [m.group(2) for m in _FIELD.finditer(head) if m.group(1).lower() == name]


def unregistered_method(diff: Divergence) -> bool:
    method = diff.message.split(b" ", 1)[0]
    return diff.at_head and _TOKEN.fullmatch(method) is not None and method not in LLHTTP_METHODS


def equal_content_lengths(diff: Divergence) -> bool:
    lengths = _fields(diff.head, b"content-length")
    values = {v.strip(b" \t") for value in lengths for v in value.split(b",")}
    return diff.at_head and (len(lengths) > 1 or b"," in b"".join(lengths)) and len(values) == 1


def bare_lf_in_head(diff: Divergence) -> bool:
    return diff.at_head and re.search(rb"(?<!\r)\n", diff.head) is not None


def transfer_encoding_ends_with_htab(diff: Divergence) -> bool:
    return diff.at_head and any(
        v.rstrip(b" ").endswith(b"\t") for v in _fields(diff.head, b"transfer-encoding")
    )


def _chunk_lines(body: bytes) -> tuple[list[bytes], bytes | None]:
    """The size lines of a chunked body, walked leniently, and the trailer section
    (None if the last chunk was not reached)."""
    lines = []
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return lines, None
        line = body[pos:end]
        lines.append(line)
        digits = re.match(rb"[0-9A-Fa-f]+", line)
        if digits is None:
            return lines, None
        size = int(digits.group(), 16)
        pos = end + 2
        if not size:
            return lines, body[pos:]
        pos += size + 2


def chunk_extension_or_trailer(diff: Divergence) -> bool:
    lines, trailers = _chunk_lines(diff.body)
    extended = any(re.match(rb"[0-9A-Fa-f]+[ \t;]", line) for line in lines)
    return not diff.at_head and (extended or bool(trailers and trailers[:2] != b"\r\n"))


DELIBERATE = [
    Deliberate(
        "unregistered method",
        "fast",
        "llhttp knows the registered methods (WebDAV's among them), not any token: a method"
        " it does not know is 501, where h11 forwards it",
        unregistered_method,
    ),
    Deliberate(
        "equal Content-Length values",
        "fast",
        "h11 collapses 'Content-Length: 5, 5' and repeated equal fields into one (RFC 9110"
        " §8.6 allows either); http/framing.py refuses every repeated Content-Length",
        equal_content_lengths,
    ),
    Deliberate(
        "bare LF line end in a head",
        "fast",
        "h11 takes a bare LF as a line end (RFC 9112 §2.2 MAY); llhttp in strict mode refuses it",
        bare_lf_in_head,
    ),
    Deliberate(
        "Transfer-Encoding ending in HTAB",
        "fast",
        "llhttp in strict mode does not strip a trailing HTAB from a request's Transfer-Encoding"
        " ('chunked\\t' is not chunked to it) and only a leniency flag would change that",
        transfer_encoding_ends_with_htab,
    ),
    Deliberate(
        "chunk extensions and trailers (fast)",
        "fast",
        "http/chunked.py holds size lines and trailers to RFC 9112 §7.1's grammar (no space"
        " after the size, token extensions, trailer fields without control characters or"
        " obs-fold, lines up to 4 KiB); h11 takes anything after ';' and unfolds trailers",
        chunk_extension_or_trailer,
    ),
    Deliberate(
        "chunk extensions and trailers (h11)",
        "h11",
        "h11 refuses BWS before ';' (RFC 9112 §7.1.1 allows it) and applies Content-Length /"
        " Transfer-Encoding rules to trailer fields; both codecs drop extensions and trailers",
        chunk_extension_or_trailer,
    ),
]


def assert_alike(reference: Trace, fast: Trace, marks: Marks, data: bytes) -> None:
    diff = divergence(reference, fast, marks, data)
    if diff is None:
        return
    explained = [d.name for d in DELIBERATE if d.explains(diff)]
    assert explained, (
        f"codecs disagree on {diff.message[:300]!r}\n h11: {diff.h11}\nfast: {diff.fast}"
    )


# -- parsing ------------------------------------------------------------------------------


@SETTINGS
@given(request_streams(), CUTS, REQUEST_LIMITS)
def test_both_codecs_read_requests_alike(data: bytes, cuts: Cuts, limit: int) -> None:
    reads = pieces(data, cuts)
    marks: Marks = []
    reference = serve_trace(SERVER_CODECS["h11"](limit), reads, marks=marks)
    fast = serve_trace(SERVER_CODECS["fast"](limit), reads)
    assert_alike(reference, fast, marks, data)


@SETTINGS
@given(exchanges(), CUTS, RESPONSE_LIMITS)
def test_both_codecs_read_responses_alike(
    exchange: tuple[list[Request], bytes], cuts: Cuts, limit: int
) -> None:
    sent, data = exchange
    reads = pieces(data, cuts)
    marks: Marks = []
    reference = fetch_trace(CLIENT_CODECS["h11"](limit), sent, reads, marks=marks)
    fast = fetch_trace(CLIENT_CODECS["fast"](limit), sent, reads)
    assert_alike(reference, fast, marks, data)


PLAIN_REQUEST = b"GET /next HTTP/1.1\r\nHost: a.example\r\n\r\n"
PLAIN_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# Whole, byte by byte, and a body's first byte with its head.
SWEEP_CUTS: list[Cuts] = [[], "bytes", (1,)]


def _form_id(value: object) -> str:
    return repr(value)[:24] if isinstance(value, bytes) else str(value)


@pytest.mark.parametrize(("part", "form"), odd_forms(REQUEST_PARTS), ids=_form_id)
def test_both_codecs_read_every_odd_request_form_alike(part: str, form: bytes) -> None:
    """Each odd form once, in an otherwise plain request followed by a plain one: the
    hypothesis test picks forms at random, this sweep makes sure none is left out."""
    data = request(FixedParts(part, form)) + PLAIN_REQUEST
    for cuts in SWEEP_CUTS:
        reads = pieces(data, cuts)
        marks: Marks = []
        reference = serve_trace(SERVER_CODECS["h11"](MAX_REQUEST_HEAD_SIZE), reads, marks=marks)
        fast = serve_trace(SERVER_CODECS["fast"](MAX_REQUEST_HEAD_SIZE), reads)
        assert_alike(reference, fast, marks, data)


@pytest.mark.parametrize(("part", "form"), odd_forms(RESPONSE_PARTS), ids=_form_id)
def test_both_codecs_read_every_odd_response_form_alike(part: str, form: bytes) -> None:
    data = response(FixedParts(part, form)) + PLAIN_RESPONSE
    sent = [upstream_request("GET"), upstream_request("GET")]
    for cuts in SWEEP_CUTS:
        reads = pieces(data, cuts)
        marks: Marks = []
        h11_codec = CLIENT_CODECS["h11"](MAX_RESPONSE_HEAD_SIZE)
        reference = fetch_trace(h11_codec, sent, reads, marks=marks)
        fast = fetch_trace(CLIENT_CODECS["fast"](MAX_RESPONSE_HEAD_SIZE), sent, reads)
        assert_alike(reference, fast, marks, data)


@pytest.mark.parametrize("interim", INFORMATIONAL + SWITCHES, ids=_form_id)
@pytest.mark.parametrize("kind", ["GET", "upgrade"])
def test_both_codecs_read_every_interim_response_alike(kind: str, interim: bytes) -> None:
    data = interim + PLAIN_RESPONSE + b"\x81\x00"
    sent = [upstream_request(kind), upstream_request("GET")]
    for cuts in SWEEP_CUTS:
        reads = pieces(data, cuts)
        marks: Marks = []
        h11_codec = CLIENT_CODECS["h11"](MAX_RESPONSE_HEAD_SIZE)
        reference = fetch_trace(h11_codec, sent, reads, marks=marks)
        fast = fetch_trace(CLIENT_CODECS["fast"](MAX_RESPONSE_HEAD_SIZE), sent, reads)
        assert_alike(reference, fast, marks, data)


# -- writing --------------------------------------------------------------------------

Fields = list[tuple[bytes, bytes]]
HOST = (b"host", b"a.example")


@dataclasses.dataclass(frozen=True)
class ResponseCase:
    """A request as received, and the response the proxy writes for it."""

    method: bytes
    version: bytes
    request_fields: list[bytes]
    status: int
    headers: Fields
    chunks: list[bytes]
    informational: bool  # 100 Continue (the request expects it) and 103 first

    @property
    def request(self) -> bytes:
        fields = b"".join(f + b"\r\n" for f in self.request_fields)
        return b"%s / HTTP/%s\r\n%s\r\n" % (self.method, self.version, fields)


@st.composite
def responses_to_write(draw: st.DrawFn) -> ResponseCase:
    """Valid requests (HEAD, HTTP/1.0, close, 100-continue) and what the proxy answers:
    with or without a length, 204 / 304, Connection: close."""
    method = draw(st.sampled_from([b"GET", b"HEAD", b"POST", b"DELETE"]))
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    fields = [] if version == b"1.0" and draw(st.booleans()) else [b"Host: a.example"]
    connection = draw(st.sampled_from([None, b"close", b"keep-alive"]))
    if connection is not None:
        fields.append(b"Connection: " + connection)
    informational = version == b"1.1" and draw(st.booleans())
    if informational:
        fields += [b"Expect: 100-continue", b"Content-Length: 3"]
    status = draw(st.sampled_from([200, 200, 201, 204, 206, 304, 404, 500]))
    chunks = draw(st.lists(st.binary(min_size=1, max_size=6), max_size=3))
    if method == b"HEAD" or status in (204, 304):
        chunks = []
    headers = [(b"x-a", b"1")]
    if draw(st.booleans()):
        headers.append((b"content-length", b"%d" % len(b"".join(chunks))))
    if draw(st.integers(0, 4)) == 0:
        headers.append((b"connection", b"close"))
    headers = draw(st.permutations(headers))
    return ResponseCase(method, version, fields, status, headers, chunks, informational)


def write_response(name: str, case: ResponseCase) -> tuple[bytes, bool]:
    """What the codec `name` writes for `case`, and whether another cycle may follow."""
    codec = SERVER_CODECS[name](MAX_REQUEST_HEAD_SIZE)
    codec.receive(case.request)
    assert serve_events(codec)[-1] is (NEED_DATA if case.informational else END)
    out = []
    if case.informational:
        assert codec.waiting_for_continue
        out.append(codec.continue_100())
        codec.receive(b"abc")
        assert serve_events(codec)[-1] is END
        out.append(codec.response(103, [(b"link", b"</s.css>")], b"Early Hints"))
    out.append(codec.response(case.status, list(case.headers), b"Status"))
    out += [codec.body(chunk) for chunk in case.chunks]
    out.append(codec.end())
    assert codec.response_done
    return b"".join(out), codec.cycle_done


def serve_events(codec: ServerCodec) -> list[Event]:
    """The events up to END or NEED_DATA."""
    events = []
    while True:
        event = codec.next_event()
        events.append(event)
        if event is NEED_DATA or event is END:
            return events


@settings(SETTINGS, max_examples=EXAMPLES // 2)
@given(responses_to_write())
def test_both_codecs_write_responses_that_h11_reads_alike(case: ResponseCase) -> None:
    written = {name: write_response(name, case) for name in SERVER_CODECS}
    request = h11.Request(method=case.method, target="/", headers=[HOST])
    read = {name: (h11_responses(request, out), done) for name, (out, done) in written.items()}
    assert read["fast"] == read["h11"]
    messages, cycle_done = read["h11"]
    if case.informational:
        assert [m[1] for m in messages[:2]] == [100, 103]
    _, status, fields = messages[-2]
    assert status == case.status
    assert messages[-1] == ("body", b"".join(case.chunks))
    names = [name for name, _ in fields]
    length = dict(case.headers).get(b"content-length")
    will_close = (
        case.version == b"1.0"
        or b"Connection: close" in case.request_fields
        or (b"connection", b"close") in case.headers
    )
    # Framing chosen the same way: the length kept, else chunked on HTTP/1.1 (a HEAD
    # answer framed as the GET answer would be), else close-delimited.
    if length is not None:
        assert (b"content-length", length) in fields and b"transfer-encoding" not in names
    elif case.version == b"1.1" and case.status not in (204, 304):
        assert (b"transfer-encoding", b"chunked") in fields
    else:
        assert b"transfer-encoding" not in names
    assert cycle_done is not will_close
    assert names.count(b"connection") == (1 if will_close else 0)


@st.composite
def requests_to_write(draw: st.DrawFn) -> tuple[bytes, bytes, Fields, list[bytes]]:
    """Requests as forward() sends them upstream: a length, chunked, or no body."""
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"OPTIONS"]))
    target = draw(st.sampled_from([b"/", b"/a/b?c=d", b"*"]))
    chunks = draw(st.lists(st.binary(min_size=1, max_size=6), max_size=3))
    framing = draw(st.sampled_from(["length", "chunked", "none"]))
    headers = [HOST, (b"x-forwarded-for", b"127.0.0.1")]
    if framing == "length":
        headers.append((b"content-length", b"%d" % len(b"".join(chunks))))
    elif framing == "chunked":
        headers.append((b"transfer-encoding", b"chunked"))
    else:
        chunks = []
    if draw(st.booleans()):
        headers += [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
    return method, target, draw(st.permutations(headers)), chunks


@settings(SETTINGS, max_examples=EXAMPLES // 2)
@given(requests_to_write())
def test_both_codecs_write_requests_that_h11_reads_alike(
    request: tuple[bytes, bytes, Fields, list[bytes]],
) -> None:
    method, target, headers, chunks = request
    read = {}
    for name, make in CLIENT_CODECS.items():
        codec = make(MAX_RESPONSE_HEAD_SIZE)
        out = codec.request(method, target, list(headers))
        out += b"".join(codec.body(chunk) for chunk in chunks) + codec.end()
        read[name] = h11_requests(out)
    assert read["fast"] == read["h11"]
    assert read["h11"] == [
        ("request", method, target, sorted(headers)),
        ("body", b"".join(chunks)),
    ]
