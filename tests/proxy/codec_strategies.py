"""Hypothesis strategies for HTTP/1.1 messages, valid and broken, as bytes.

A message is built from parts (start line, field lines, framing, body). An odd
message makes one or two of its parts odd and gives every other part a plain,
valid form; a stream holds at most one odd message, so nothing before it hides
it. The odd forms are those parsers have disagreed on: unknown and lower-case
methods, every RFC 9112 §3.2 target form and junk, other versions, control
characters, NUL, bare CR and LF, obs-fold, whitespace around values and before
colons, duplicate and conflicting Content-Length, CL + TE, transfer codings,
chunk extensions, trailers and bad chunk sizes, Expect, Upgrade,
Connection: close, HTTP/1.0, 1xx / 204 / 304 responses, close-delimited bodies.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from hypothesis import strategies as st

Field = tuple[bytes, bytes]
Request = tuple[bytes, list[Field]]
CRLF = b"\r\n"

# part: (plain forms, odd forms)
# fmt: off
PARTS: dict[str, tuple[list[bytes], list[bytes]]] = {
    "eol": ([CRLF], [b"\n", b"\r", b"\r\r\n", b"\n\r", CRLF, CRLF, CRLF]),
    "method": (
        [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"],
        [b"TRACE", b"CONNECT", b"PROPFIND", b"M-SEARCH", b"PRI", b"QUERY", b"FOO", b"get",
         b"Get", b"G(T", b"G\x00T", b"", b"\xc3\x89", b"\nGET", b"\r\nGET", b" GET"],
    ),
    "target": (
        [b"/", b"/a/b?c=d", b"/a%20b", b"/?", b"//x//y", b"/a#frag"],
        [b"*", b"http://a.example/x", b"https://a.example", b"HTTP://A.example:8080?q=1",
         b"http://user@a.example/", b"http://[::1]:80/", b"http:///x", b"ftp://a.example/",
         b"a.example:443", b"a.example", b"?x", b"#x", b"", b"/a b", b"/\x7f", b"/\x80",
         b"/\x00", b"/\t", b"/\x01", b"mailto:x@y", b"/\xff"],
    ),
    "version": (
        [b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"],
        [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2", b"HTTP/3.0", b"http/1.1", b"HTTP/11", b"HTTP/1",
         b"HTTP/1.1 ", b"HTTP/1.1x", b"HTTP/1.01", b"HTTP /1.1", b"HTTP/1.1\t"],
    ),
    "sp": ([b" "], [b"  ", b"\t", b"\x0b"]),
    "colon": ([b": ", b":"], [b":  ", b":\t", b" :", b"\t: ", b": \t", b"::"]),
    "ows": ([b""], [b" ", b"\t", b"  ", b" \t"]),
    "name": (
        [b"X-A", b"accept", b"User-Agent", b"te", b"trailer", b"keep-alive", b"X-Forwarded-For"],
        [b"", b"a b", b"x\x00", b"x(", b"\xff", b"x\r", b"x\x7f", b"X_Under", b"x\x01", b" x"],
    ),
    "value": (
        [b"v", b"a b", b"1", b"text/html, */*", b"\xe9t\xe9", b"", b"a\tb"],
        [b"a\x00b", b"a\rb", b"a\x01b", b"a\x7f", b"a\x0bb", b"\x1f", b"a\r\n b", b"a\r\n\tb",
         b"a\nb", b"a\x0cb", b"\x00", b"a\x7fb"],
    ),
    "host": (
        [b"a.example", b"a.example:8080", b"A.Example."],
        [b"[::1]:80", b"", b"a b", b"a/b", b"a.example:x", b"\xffa", b"a\x01", b"a,b"],
    ),
    "hosts": ([b"1"], [b"0", b"2"]),
    "connection": (
        [b"keep-alive", b"close"],
        [b"upgrade", b"Upgrade", b"close, upgrade", b"keep-alive, close", b"CLOSE", b"", b"te",
         b" close ", b"closed", b"x, close"],
    ),
    "expect": ([b"100-continue"], [b"100-Continue", b"", b"foo", b"100-continue, foo"]),
    "upgrade": ([b"websocket"], [b"WebSocket", b"h2c", b"", b"websocket, h2c", b","]),
    "te": (
        [b"chunked"],
        [b"Chunked", b"CHUNKED", b"gzip, chunked", b"chunked, gzip", b"identity", b"chunked,",
         b"chunked, chunked", b"gzip", b"", b"chunked;q=1", b"x-chunked"],
    ),
    "length": (
        [],
        [b"05", b"+5", b"-1", b"5, 5", b"5,5", b"5, 6", b"0x5", b"", b"5.0", b"\xd9\xa5", b"1e2",
         b"99999999999999999999999", b"00000000000000000005", b"5 5", b",5"],
    ),
    "framing": (
        [b"none", b"length", b"chunked"],
        [b"two-lengths", b"cl+te", b"two-te", b"length-off", b"bad-length"],
    ),
    "chunk-size": (
        [b"%x"],
        [b"%X", b"0%x", b"%x ", b" %x", b"x", b"-1", b"0x%x", b"", b"1" * 21, b"%x0", b"%x\t"],
    ),
    "chunk-ext": (
        [b""],
        [b";a", b";a=b", b';a="q"', b" ; a = b", b";", b";a=\x01", b"; a=b c", b" ", b';a="x',
         b"\t;a", b";a=\xff", b";\x00", b";a=" + b"x" * 5000],
    ),
    "chunk-end": ([CRLF], [b"\n", b"", b"XX", b"\r", b"\r\r\n"]),
    "last-chunk": ([b"0"], [b"000", b"0 ", b"", b"00000000000000000000"]),
    "trailer": (
        [b"X-T: 1", b"x-t:"],
        [b"Content-Length: 5", b"Transfer-Encoding: gzip", b"bad line", b" folded", b"X: \x01",
         b"Host: a", b"X : 1", b"X: a\x7f", b"X:\x00", b":x"],
    ),
    "prefix": ([b""], [CRLF, b"\n", b" ", b"\r\n\r\n", b"\x00"]),
    "status": (
        [b"200", b"201", b"204", b"206", b"301", b"304", b"404", b"500"],
        [b"100", b"103", b"101", b"199", b"599", b"600", b"999", b"099", b"20", b"2000", b"abc",
         b"-20", b"2 0", b"000"],
    ),
    "reason": (
        [b" OK", b" Not Found", b" ", b" A\tb"],
        [b"", b" a\x01b", b" \xe9", b" a\x7f", b" a\x00", b"  OK", b"\tOK", b" a\rb"],
    ),
}
REQUEST_PARTS = [
    "eol", "method", "target", "version", "sp", "colon", "ows", "name", "value", "host", "hosts",
    "connection", "expect", "upgrade", "te", "framing", "chunk-size", "chunk-ext", "chunk-end",
    "last-chunk", "trailer", "prefix", "length",
]
RESPONSE_PARTS = [
    "eol", "version", "sp", "colon", "ows", "name", "value", "connection", "upgrade", "te",
    "framing", "chunk-size", "chunk-ext", "chunk-end", "last-chunk", "trailer", "status", "reason",
    "length",
]
# fmt: on


T = TypeVar("T")
# Parts that only matter in a chunked body.
CHUNK_PARTS = frozenset({"te", "chunk-size", "chunk-ext", "chunk-end", "last-chunk", "trailer"})


class Parts:
    """The choices one message is made of: a form for each part (odd for the parts in
    `odd`, plain otherwise) and the free ones (body bytes, counts, field order)."""

    odd: set[str]

    def __call__(self, part: str) -> bytes:
        raise NotImplementedError

    def odd_form(self, part: str) -> bytes:
        raise NotImplementedError

    def is_odd(self, part: str) -> bool:
        return part in self.odd

    def binary(self, max_size: int) -> bytes:
        raise NotImplementedError

    def chunks(self) -> list[bytes]:
        raise NotImplementedError

    def choice(self, options: Sequence[T]) -> T:
        raise NotImplementedError

    def below(self, n: int) -> int:
        raise NotImplementedError

    def order(self, items: list[T]) -> list[T]:
        raise NotImplementedError

    def extra_kinds(self) -> list[str]:
        raise NotImplementedError


# Built once: building a strategy per draw costs more than the draw.
_PLAIN = {part: st.sampled_from(plain) for part, (plain, _) in PARTS.items() if plain}
_CHUNKS = st.lists(st.binary(min_size=1, max_size=8), max_size=3)
_EXTRA_KINDS = st.lists(
    st.sampled_from(["any", "any", "connection", "expect", "upgrade", "websocket", "fold"]),
    max_size=4,
)


class DrawnParts(Parts):
    """Parts hypothesis draws. Odd parts and forms are picked uniformly, by a Random
    hypothesis seeds: sampled_from favours the first elements, and every odd form
    should get its turn."""

    def __init__(self, draw: st.DrawFn, odd: set[str], rnd: random.Random) -> None:
        self.draw = draw
        self.odd = odd
        self.rnd = rnd

    def __call__(self, part: str) -> bytes:
        if part not in self.odd:
            return self.draw(_PLAIN[part])
        if part == "value" and self.rnd.random() < 0.3:
            return self.rnd.randbytes(self.rnd.randint(0, 6))
        return self.odd_form(part)

    def odd_form(self, part: str) -> bytes:
        return self.rnd.choice(PARTS[part][1])

    def binary(self, max_size: int) -> bytes:
        return self.draw(st.binary(max_size=max_size))

    def chunks(self) -> list[bytes]:
        return self.draw(_CHUNKS)

    def choice(self, options: Sequence[T]) -> T:
        return self.draw(st.sampled_from(options))

    def below(self, n: int) -> int:
        return self.draw(st.integers(0, n - 1))

    def order(self, items: list[T]) -> list[T]:
        return self.draw(st.permutations(items))

    def extra_kinds(self) -> list[str]:
        return self.draw(_EXTRA_KINDS)


class FixedParts(Parts):
    """One part in one odd form, everything else the first plain form and the plainest
    choice: a message for each odd form, to sweep them all."""

    def __init__(self, part: str, form: bytes) -> None:
        self.odd = {part}
        self.part = part
        self.form = form

    def __call__(self, part: str) -> bytes:
        if part == self.part:
            return self.form
        if part == "framing":  # a body that shows the odd part
            return b"chunked" if self.part in CHUNK_PARTS else b"length"
        return PARTS[part][0][0]

    def odd_form(self, part: str) -> bytes:
        return self.form if part == self.part else PARTS[part][1][0]

    def binary(self, max_size: int) -> bytes:
        return b"hello"[:max_size]

    def chunks(self) -> list[bytes]:
        return [b"hello", b"world"]

    def choice(self, options: Sequence[T]) -> T:
        return options[0]

    def below(self, n: int) -> int:
        return min(1, n - 1)  # one trailer field; a response not close-delimited

    def order(self, items: list[T]) -> list[T]:
        return items

    def extra_kinds(self) -> list[str]:
        kinds = {"connection": "connection", "expect": "expect", "upgrade": "websocket"}
        return [kinds.get(self.part, "any")]


@st.composite
def parts(draw: st.DrawFn, names: list[str], odd: bool) -> Parts:
    """Plain parts, or (`odd`) one or two of the parts in `names` made odd."""
    rnd = draw(st.randoms(use_true_random=True))
    count = rnd.choice([1, 1, 1, 2]) if odd else 0
    return DrawnParts(draw, set(rnd.sample(names, count)), rnd)


def field_lines(p: Parts, fields: list[Field]) -> bytes:
    """`fields` as field lines: separators, whitespace around values, line ends."""
    return b"".join(
        name + p("colon") + p("ows") + value + p("ows") + p("eol") for name, value in fields
    )


def chunked_body(p: Parts) -> bytes:
    """A chunked body: sizes, extensions, data ends, last chunk, trailers."""
    out = []
    for data in p.chunks():
        size = p("chunk-size")
        size = size % len(data) if b"%" in size else size
        out.append(size + p("chunk-ext") + CRLF + data + p("chunk-end"))
    out.append(p("last-chunk") + p("chunk-ext") + CRLF)
    out.extend(p("trailer") + p("eol") for _ in range(p.below(3 if p.is_odd("trailer") else 2)))
    out.append(p("eol"))
    return b"".join(out)


def framing(p: Parts, *, response: bool = False) -> tuple[list[Field], bytes]:
    """(framing fields, body bytes): consistent unless framing or its parts are odd."""
    body = p.binary(10)
    kind = p("framing")
    if p.is_odd("length"):
        kind = b"bad-length"
    if response and p.below(5) == 0:
        kind = b"close"
    length = b"%d" % len(body)
    if kind == b"none":
        return [], b""
    if kind == b"close":
        return [], body
    if kind == b"length":
        return [(b"Content-Length", length)], body
    if kind == b"length-off":
        off = p.choice([n for n in range(-len(body), 6) if n])
        return [(b"Content-Length", b"%d" % (len(body) + off))], body
    if kind == b"bad-length":
        return [(b"Content-Length", p.odd_form("length"))], body
    if kind == b"two-lengths":
        other = p.choice([length, b"%d" % (len(body) + 1)])
        return [(b"Content-Length", length), (b"content-length", other)], body
    chunked = chunked_body(p)
    te = (b"Transfer-Encoding", p("te"))
    if kind == b"chunked":
        return [te], chunked
    if kind == b"cl+te":
        return [te, (b"Content-Length", b"%d" % len(chunked))], chunked
    return [te, (b"transfer-encoding", p("te"))], chunked  # two-te


def extra_fields(p: Parts) -> list[Field]:
    """Fields beside Host and framing: Connection, Expect, Upgrade, obs-fold, any."""
    fields: list[Field] = []
    for kind in p.extra_kinds():
        if kind == "websocket":
            connection = p.choice([b"Upgrade", b"keep-alive, upgrade"])
            fields += [(b"Connection", connection), (b"Upgrade", p("upgrade"))]
        elif kind == "connection":
            fields.append((b"Connection", p("connection")))
        elif kind == "expect":
            fields.append((b"Expect", p("expect")))
        elif kind == "upgrade":
            fields.append((b"Upgrade", p("upgrade")))
        elif kind == "fold" and p.is_odd("value"):
            fold = p.choice([CRLF + b" ", CRLF + b"\t", b"\n ", CRLF + b"  "])
            fields.append((b"X-Fold", b"a" + fold + b"b"))
        else:
            fields.append((p("name"), p("value")))
    return fields


def request(p: Parts) -> bytes:
    """One request, head and body."""
    line = p("method") + p("sp") + p("target") + p("sp") + p("version")
    hosts = [(b"Host", p("host")) for _ in range(int(p("hosts")))]
    frame, body = framing(p)
    expect = [(b"Expect", p("expect"))] if frame and p.below(2) == 0 else []
    fields = p.order([*hosts, *frame, *expect, *extra_fields(p)])
    return p("prefix") + line + p("eol") + field_lines(p, fields) + p("eol") + body


def response(p: Parts) -> bytes:
    """One response, head and body."""
    line = p("version") + p("sp") + p("status") + p("reason")
    frame, body = framing(p, response=True)
    fields = p.order([*frame, *extra_fields(p)])
    return line + p("eol") + field_lines(p, fields) + p("eol") + body


@st.composite
def requests(draw: st.DrawFn, odd: bool = True) -> bytes:
    """One request (head and body): valid, or (`odd`) likely broken."""
    return request(draw(parts(REQUEST_PARTS, odd)))


@st.composite
def responses(draw: st.DrawFn, odd: bool = True) -> bytes:
    """One response (head and body): valid, or (`odd`) likely broken."""
    return response(draw(parts(RESPONSE_PARTS, odd)))


def odd_forms(names: list[str]) -> list[tuple[str, bytes]]:
    """Every (part, odd form) of `names`, for a sweep."""
    return [(part, form) for part in names for form in PARTS[part][1]]


REQUEST_KINDS = ["GET", "GET", "HEAD", "POST", "upgrade", "close"]


def upstream_request(kind: str) -> Request:
    """A body-less request as the proxy sends it upstream, for a response to answer."""
    headers = [(b"host", b"a.example")]
    if kind == "upgrade":
        headers += [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
    elif kind == "close":
        headers.append((b"connection", b"close"))
    return (b"POST" if kind == "POST" else b"HEAD" if kind == "HEAD" else b"GET"), headers


# Interim responses before a final one, and 101s (the first ones valid).
INFORMATIONAL = [
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
    b"HTTP/1.1 102 Processing\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n",
    b"HTTP/1.0 100 Continue\r\n\r\n",
]
SWITCHES = [
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 101 OK\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.0 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
]


@st.composite
def exchanges(draw: st.DrawFn) -> tuple[list[Request], bytes]:
    """(requests sent upstream, the bytes the upstream answers them with)."""
    sent = []
    answer = b""
    count = draw(st.integers(1, 3))
    odd = draw(st.integers(0, count))  # the odd one (none when `count`)
    for index in range(count):
        kind = draw(st.sampled_from(REQUEST_KINDS))
        sent.append(upstream_request(kind))
        if draw(st.integers(0, 4)) == 0:
            answer += draw(st.sampled_from(INFORMATIONAL))
        if kind == "upgrade" and draw(st.booleans()):
            # The switch: what follows is the tunnel's first bytes, not HTTP.
            return sent, answer + draw(st.sampled_from(SWITCHES)) + draw(st.binary(max_size=8))
        answer += draw(responses(odd=index == odd))
    return sent, answer


@st.composite
def request_streams(draw: st.DrawFn) -> bytes:
    """One to three pipelined requests; at most one of them odd, so that it is reached."""
    count = draw(st.integers(1, 3))
    odd = draw(st.integers(0, count))  # none when `count`
    return b"".join(draw(requests(odd=index == odd)) for index in range(count))
