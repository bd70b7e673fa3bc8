"""Message framing (RFC 9112 §6), decided in one place for both codecs.

Sans-I/O. A message body is delimited in one of four ways: not at all (HEAD,
1xx, 204 and 304 responses, requests with neither header), by Content-Length,
by the chunked transfer coding, or - responses only - by the server closing
the connection. Anything ambiguous is refused, never guessed: Content-Length
together with Transfer-Encoding (a smuggling attempt or a broken peer),
Content-Length values that differ or are not plain decimal, a transfer coding
other than exactly `chunked`, or Transfer-Encoding sent twice.
"""

from __future__ import annotations

import enum
from typing import Final

Headers = list[tuple[bytes, bytes]]

# h11's limit: more digits than this is not a length anyone means.
MAX_LENGTH_DIGITS: Final = 20


class FramingError(ValueError):
    """The message's framing headers are invalid or ambiguous; `status` suits the answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class BodyKind(enum.Enum):
    NONE = "none"  # no body at all
    LENGTH = "length"  # exactly `length` bytes
    CHUNKED = "chunked"  # the chunked transfer coding
    CLOSE = "close"  # responses only: until the server closes the connection


def parse_length(value: bytes) -> int:
    """A Content-Length value: 1 to 20 ASCII digits (no sign, no spaces, no list)."""
    if not value or len(value) > MAX_LENGTH_DIGITS or not value.isdigit() or not value.isascii():
        raise FramingError(f"invalid Content-Length {value[:40]!r}")
    return int(value)


def body_framing(headers: Headers) -> tuple[int | None, bool]:
    """(Content-Length, chunked) from a message's headers; FramingError if ambiguous.

    Names must be lower-case. Several Content-Length headers are refused even
    when equal (h11 collapses equal ones; see docs/architecture.md, codec
    differences).
    """
    length: int | None = None
    chunked = False
    seen_length = False
    for name, value in headers:
        if name == b"content-length":
            if seen_length:
                raise FramingError("more than one Content-Length header")
            seen_length = True
            length = parse_length(value)
        elif name == b"transfer-encoding":
            if chunked:
                raise FramingError("more than one Transfer-Encoding header", 501)
            if value.lower() != b"chunked":
                raise FramingError("only Transfer-Encoding: chunked is supported", 501)
            chunked = True
    if chunked and seen_length:
        raise FramingError("Content-Length with Transfer-Encoding")
    return length, chunked


def request_body(length: int | None, chunked: bool) -> BodyKind:
    """How a request body is delimited (RFC 9112 §6.3: no header means no body)."""
    if chunked:
        return BodyKind.CHUNKED
    if length:
        return BodyKind.LENGTH
    return BodyKind.NONE


def response_body(method: bytes, status: int, length: int | None, chunked: bool) -> BodyKind:
    """How a response body is delimited, given the request method (RFC 9112 §6.3)."""
    if status < 200 or status in (204, 304) or method == b"HEAD":
        return BodyKind.NONE
    if chunked:
        return BodyKind.CHUNKED
    if length is not None:
        return BodyKind.LENGTH if length else BodyKind.NONE
    return BodyKind.CLOSE
