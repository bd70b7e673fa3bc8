"""The chunked transfer coding (RFC 9112 §7.1): a strict, bounded, streaming decoder.

Sans-I/O. The decoder reads from a buffer owned by the codec (bytes plus a
read position), so body data is handed on as it arrives, never collected.
Strict where lenient parsers have let requests be smuggled: the size line is
hex digits, then optional extensions (token[=token|quoted-string], BWS around
';' and '='), then CRLF - no other whitespace, no bare LF or CR, no control
characters; each chunk's data ends with exactly CRLF. Extensions and trailer
fields are validated and dropped (the proxy re-frames every body itself).
"""

from __future__ import annotations

import re
from typing import Final

from hotswap.http.framing import FramingError

# A size line (extensions included) or a trailer field line longer than this is refused.
MAX_LINE: Final = 4096
# The whole trailer section.
MAX_TRAILERS: Final = 32 * 1024

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t !-~\x80-\xff])*"'
_SIZE_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,20})(?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + rb"|"
    + _QUOTED
    + rb"))?)*"
)
_FIELD_LINE = re.compile(
    _TOKEN + rb":[ \t]*(?:[!-~\x80-\xff](?:[ \t!-~\x80-\xff]*[!-~\x80-\xff])?)?[ \t]*"
)

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class ChunkedDecoder:
    """Decodes one chunked body from a shared buffer; see `next`."""

    __slots__ = ("_left", "_state", "_trailers")

    def __init__(self) -> None:
        self._state = _SIZE
        self._left = 0
        self._trailers = 0

    def next(self, buf: bytes, pos: int) -> tuple[bytes | bool | None, int]:
        """(event, new position): body bytes; True once the body (trailers included)
        ended; None when more bytes are needed. Raises FramingError."""
        end = len(buf)
        while True:
            state = self._state
            if state == _DATA:
                if pos >= end:
                    return None, pos
                take = min(self._left, end - pos)
                self._left -= take
                if not self._left:
                    self._state = _DATA_END
                return buf[pos : pos + take], pos + take
            if state == _DATA_END:
                if end - pos < 2:
                    if buf[pos:end] not in (b"", b"\r"):
                        raise FramingError("chunk data not followed by CRLF")
                    return None, pos
                if buf[pos : pos + 2] != b"\r\n":
                    raise FramingError("chunk data not followed by CRLF")
                pos += 2
                self._state = _SIZE
                continue
            if state == _DONE:
                return True, pos
            line_end = _line_end(buf, pos, end)
            if line_end < 0:
                return None, pos
            line = buf[pos:line_end]
            pos = line_end + 2
            if state == _SIZE:
                match = _SIZE_LINE.fullmatch(line)
                if match is None:
                    raise FramingError(f"invalid chunk size line {line[:40]!r}")
                size = int(match.group(1), 16)
                if size:
                    self._left = size
                    self._state = _DATA
                else:
                    self._state = _TRAILER
                continue
            # _TRAILER: field lines until an empty line.
            if not line:
                self._state = _DONE
                return True, pos
            self._trailers += len(line) + 2
            if self._trailers > MAX_TRAILERS:
                raise FramingError("trailer section too large", 431)
            if _FIELD_LINE.fullmatch(line) is None:
                raise FramingError(f"invalid trailer field {line[:40]!r}")


def _line_end(buf: bytes, pos: int, end: int) -> int:
    """Index of the CRLF ending the line at `pos`, -1 if not received yet.

    Refuses a line longer than MAX_LINE and a bare LF or CR (RFC 9112 §2.2).
    """
    index = buf.find(b"\r\n", pos, min(end, pos + MAX_LINE + 2))
    if index >= 0:
        line = buf[pos:index]
        if b"\n" in line or b"\r" in line:
            raise FramingError("bare CR or LF in a chunked body line")
        return index
    if end - pos > MAX_LINE:
        raise FramingError("chunk size or trailer line too long")
    rest = buf[pos:end]
    if b"\n" in rest or b"\r" in rest[:-1]:
        raise FramingError("bare CR or LF in a chunked body line")
    return -1
