"""RFC 6455 frame-boundary tracking and close frames, for closing proxied WebSockets cleanly.

Sans-I/O. On a deploy (deploy.websocket_drain) the tunnel must close a
WebSocket without cutting a frame in half: it forwards up to the end of the
frame in progress, then injects a close frame. A control frame may be sent
between the fragments of a fragmented message (RFC 6455 §5.4), so any frame
boundary will do.

Tunnel usage (upstream -> client direction)::

    if not closing:
        tracker.feed(chunk)                    # all of it
        await client.send_all(chunk)
    else:
        end = tracker.boundary_in(chunk)       # None: the frame goes on past chunk
        await client.send_all(chunk if end is None else chunk[:end])
    if closing and tracker.at_boundary and not tracker.close_seen:
        await client.send_all(close_frame())   # server -> client: unmasked
"""

from __future__ import annotations

import os

_FIN = 0x80
_OPCODE = 0x0F
_MASKED = 0x80
_LEN7 = 0x7F
_LEN16 = 126
_LEN64 = 127
_OP_CONTINUATION = 0x0
_OP_CLOSE = 0x8
_MAX_CONTROL_PAYLOAD = 125


def _header_length(second_byte: int) -> int:
    """Full header length (2..14 bytes) given the frame's second byte."""
    size = second_byte & _LEN7
    extra = 2 if size == _LEN16 else 8 if size == _LEN64 else 0
    return 2 + extra + (4 if second_byte & _MASKED else 0)


class FrameTracker:
    """Follows the frame boundaries of one direction of a WebSocket tunnel.

    Feed it the bytes flowing in that direction, in any chunking (one byte at
    a time works). It never modifies or keeps the payload: at most a partial
    frame header (< 14 bytes) is kept between chunks. It does not validate
    the stream beyond what locating boundaries needs.
    """

    __slots__ = ("_head", "_remaining", "close_seen", "frames", "in_fragmented_message")

    def __init__(self) -> None:
        self._head = bytearray()  # partial frame header carried across chunks
        self._remaining = 0  # payload bytes of the current frame still to come
        #: Frames completed so far.
        self.frames = 0
        #: A data message has started and its final fragment has not arrived.
        self.in_fragmented_message = False
        #: A close frame has passed (completely): inject no close of your own.
        self.close_seen = False

    @property
    def at_boundary(self) -> bool:
        """True when the bytes fed so far end exactly at the end of a frame (or nothing was fed)."""
        return self._remaining == 0 and not self._head

    def feed(self, data: bytes, *, until_boundary: bool = False) -> int:
        """Account for the leading bytes of `data`; returns how many were consumed.

        Without `until_boundary` all of `data` is consumed (returns len(data)).
        With it, consumption stops right after the end of the frame in progress:
        the caller forwards `data[:n]` and the tracker is then `at_boundary`
        (or, if n == len(data), the frame may still be in progress). Returns 0
        when already at a boundary.
        """
        if until_boundary and self.at_boundary:
            return 0
        end = len(data)
        pos = 0
        while pos < end:
            remaining = self._remaining
            if remaining:
                available = end - pos
                if remaining > available:
                    self._remaining = remaining - available
                    return end
                pos += remaining
                self._remaining = 0
                self.frames += 1
                if until_boundary:
                    return pos
                continue
            pos = self._read_header(data, pos, end)
            if self._head:  # header still incomplete: data exhausted
                return end
            if self._remaining == 0:  # empty payload: the frame ended with its header
                self.frames += 1
                if until_boundary:
                    return pos
        return pos

    def boundary_in(self, data: bytes) -> int | None:
        """Consume `data` up to the end of the frame in progress; where that end is.

        Returns the index just past the frame's last byte (0 when already at a
        boundary): forward `data[:n]`, then the tracker is `at_boundary`.
        Returns None when the frame does not end within `data` (all consumed).
        """
        n = self.feed(data, until_boundary=True)
        return n if self.at_boundary else None

    def bytes_to_boundary(self, data: bytes) -> int:
        """How many leading bytes of `data` complete the frame in progress (0 at a boundary).

        len(data) if the frame does not end within `data`. Does not change state.
        """
        probe = FrameTracker.__new__(FrameTracker)
        probe._head = bytearray(self._head)
        probe._remaining = self._remaining
        probe.frames = self.frames
        probe.in_fragmented_message = self.in_fragmented_message
        probe.close_seen = self.close_seen
        return probe.feed(data, until_boundary=True)

    def _read_header(self, data: bytes, pos: int, end: int) -> int:
        """Consume header bytes from data[pos:end]; returns the new position.

        On return either the header is complete (`_head` empty, `_remaining`
        set) or all of the data was taken into `_head`.
        """
        head = self._head
        if not head and end - pos >= 2:
            size = _header_length(data[pos + 1])
            if end - pos >= size:  # fast path: whole header in this chunk
                self._start_frame(data[pos : pos + size])
                return pos + size
        # Slow path: the header straddles chunks; gather it in `head`.
        if len(head) < 2:
            take = min(2 - len(head), end - pos)
            head += data[pos : pos + take]
            pos += take
            if len(head) < 2:
                return pos
        size = _header_length(head[1])
        take = min(size - len(head), end - pos)
        head += data[pos : pos + take]
        pos += take
        if len(head) == size:
            self._start_frame(bytes(head))
            head.clear()
        return pos

    def _start_frame(self, header: bytes) -> None:
        first, second = header[0], header[1]
        size = second & _LEN7
        if size == _LEN16:
            size = int.from_bytes(header[2:4], "big")
        elif size == _LEN64:
            size = int.from_bytes(header[2:10], "big")
        self._remaining = size
        opcode = first & _OPCODE
        if opcode == _OP_CLOSE:
            self.close_seen = True
        elif opcode < _OP_CLOSE:  # data frame (continuation, text, binary, reserved)
            self.in_fragmented_message = not first & _FIN


def close_frame(
    code: int = 1012,
    reason: str = "service restart",
    *,
    mask: bool = False,
    masking_key: bytes | None = None,
) -> bytes:
    """A complete close frame (RFC 6455 §5.5.1) with `code` and a UTF-8 `reason`.

    Server -> client frames are unmasked; client -> server frames must be
    masked (`mask=True`; the key is random unless `masking_key` is given, for
    tests). Raises ValueError for a code that may not be sent or a reason too
    long for a control frame (123 bytes).
    """
    if not (1000 <= code <= 4999) or code in (1004, 1005, 1006, 1015):
        raise ValueError(f"close code {code} may not be sent")
    payload = code.to_bytes(2, "big") + reason.encode("utf-8")
    if len(payload) > _MAX_CONTROL_PAYLOAD:
        raise ValueError("close reason longer than 123 bytes")
    if not mask:
        return bytes((_FIN | _OP_CLOSE, len(payload))) + payload
    key = os.urandom(4) if masking_key is None else masking_key
    if len(key) != 4:
        raise ValueError("masking key must be 4 bytes")
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return bytes((_FIN | _OP_CLOSE, _MASKED | len(payload))) + key + masked
