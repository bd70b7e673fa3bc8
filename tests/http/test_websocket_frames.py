"""WebSocket frame boundaries and close frames (hotswap.http.websocket)."""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode

from hotswap.http.websocket import FrameTracker, close_frame


@dataclass(frozen=True)
class Frame:
    opcode: int
    fin: bool
    size: int
    masked: bool
    length_field: int  # 7, 16 or 64 bits (non-minimal encodings too: the tracker must not care)

    def encode(self) -> bytes:
        head = bytes([(0x80 if self.fin else 0) | self.opcode])
        mask_bit = 0x80 if self.masked else 0
        if self.length_field == 7:
            head += bytes([mask_bit | self.size])
        elif self.length_field == 16:
            head += bytes([mask_bit | 126]) + struct.pack("!H", self.size)
        else:
            head += bytes([mask_bit | 127]) + struct.pack("!Q", self.size)
        if self.masked:
            head += b"\x81\x82\x83\x84"
        # Payload bytes that look like frame headers, to catch a tracker that peeks into payloads.
        return head + (b"\x88\x7e" * self.size)[: self.size]


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    opcode = draw(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA]))
    size = draw(st.one_of(st.integers(0, 140), st.integers(0, 70_000)))
    fields = [64]
    if size < 65536:
        fields.append(16)
    if size <= 125:
        fields.append(7)
    fin, masked = draw(st.booleans()), draw(st.booleans())
    return Frame(opcode, fin, size, masked, draw(st.sampled_from(fields)))


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int], list[bytes]]:
    """(stream, offsets where frames end, the stream split into chunks)."""
    encoded = [f.encode() for f in draw(st.lists(frames(), max_size=8))]
    stream = b"".join(encoded)
    ends, offset = [], 0
    for e in encoded:
        offset += len(e)
        ends.append(offset)
    small = st.lists(st.integers(0, len(stream)), max_size=12)
    cuts = sorted({0, len(stream), *draw(small)})
    if draw(st.booleans()) and len(stream) < 400:  # sometimes one byte at a time
        cuts = list(range(len(stream) + 1))
    chunks = [stream[a:b] for a, b in itertools.pairwise(cuts)]
    return stream, ends, chunks


@settings(deadline=None)
@given(streams())
def test_tracker_is_at_boundary_exactly_at_frame_ends(
    case: tuple[bytes, list[int], list[bytes]],
) -> None:
    _, ends, chunks = case
    tracker = FrameTracker()
    assert tracker.at_boundary
    offset = 0
    for chunk in chunks:
        assert tracker.feed(chunk) == len(chunk)
        offset += len(chunk)
        assert tracker.at_boundary == (offset == 0 or offset in ends)
        assert tracker.frames == sum(1 for e in ends if e <= offset)


@settings(deadline=None)
@given(streams(), st.data())
def test_closing_forwards_exactly_to_the_end_of_the_frame_in_progress(
    case: tuple[bytes, list[int], list[bytes]], data: st.DataObject
) -> None:
    """The tunnel's loop: forward freely, then on a close request stop at the next boundary."""
    stream, ends, chunks = case
    close_at = data.draw(st.integers(0, len(chunks)))
    tracker = FrameTracker()
    forwarded = b""
    for i, chunk in enumerate(chunks):
        if i < close_at:
            forwarded += chunk[: tracker.feed(chunk)]
            continue
        before = tracker.bytes_to_boundary(chunk)
        end = tracker.boundary_in(chunk)
        if end is None:
            assert before == len(chunk)
            forwarded += chunk
            continue
        assert end == before
        forwarded += chunk[:end]
        break
    requested = sum(len(c) for c in chunks[:close_at])
    # The stream ends with a whole frame, so a boundary at or after the request exists.
    boundary = min(e for e in [0, *ends] if e >= requested)
    assert forwarded == stream[:boundary]
    assert tracker.at_boundary


@given(streams(), st.data())
def test_bytes_to_boundary_does_not_change_state(
    case: tuple[bytes, list[int], list[bytes]], data: st.DataObject
) -> None:
    _, _, chunks = case
    tracker = FrameTracker()
    n = data.draw(st.integers(0, len(chunks)))
    for chunk in chunks[:n]:
        tracker.feed(chunk)
    rest = b"".join(chunks[n:])
    state = (tracker.at_boundary, tracker.frames, tracker.in_fragmented_message, tracker.close_seen)
    probe = tracker.bytes_to_boundary(rest)
    assert state == (
        tracker.at_boundary,
        tracker.frames,
        tracker.in_fragmented_message,
        tracker.close_seen,
    )
    assert tracker.feed(rest, until_boundary=True) == probe


def test_header_split_one_byte_at_a_time_with_64_bit_length() -> None:
    frame = Frame(0x2, True, 70_000, True, 64).encode()
    tracker = FrameTracker()
    for i in range(14):  # 2 + 8 length bytes + 4 mask bytes
        tracker.feed(frame[i : i + 1])
        assert not tracker.at_boundary
    assert tracker.bytes_to_boundary(frame[14:] + b"\x81\x00") == 70_000
    tracker.feed(frame[14:])
    assert tracker.at_boundary


def test_boundary_in_when_already_at_a_boundary_is_zero() -> None:
    tracker = FrameTracker()
    assert tracker.boundary_in(b"\x81\x05hello") == 0
    assert tracker.at_boundary and tracker.frames == 0


def test_real_wsproto_traffic_with_fragments_and_pings() -> None:
    sender = FrameProtocol(client=True, extensions=[])  # masked, like a browser
    parts = [
        sender.send_data("hel", fin=False),
        sender.ping(b"are you there"),  # control frame between fragments (RFC 6455 5.4)
        sender.send_data("lo", fin=True),
        sender.send_data(b"\x00" * 100_000),
        sender.close(1000, "bye"),
    ]
    tracker = FrameTracker()
    states = []
    for part in parts:
        for i in range(0, len(part), 7):
            tracker.feed(bytes(part[i : i + 7]))
        states.append((tracker.at_boundary, tracker.in_fragmented_message, tracker.close_seen))
    assert states == [
        (True, True, False),
        (True, True, False),
        (True, False, False),
        (True, False, False),
        (True, False, True),
    ]
    assert tracker.frames == 5


def _decode(data: bytes, *, client: bool) -> tuple[Opcode, object]:
    receiver = FrameProtocol(client=client, extensions=[])
    receiver.receive_bytes(data)
    [frame] = list(receiver.received_frames())
    return frame.opcode, frame.payload


def test_close_frame_is_byte_exact_and_decodes_with_wsproto() -> None:
    frame = close_frame()
    assert frame == b"\x88\x11\x03\xf4service restart"
    assert _decode(frame, client=True) == (Opcode.CLOSE, (1012, "service restart"))


def test_masked_close_frame_decodes_with_wsproto() -> None:
    frame = close_frame(1001, "going away", mask=True, masking_key=b"\x01\x02\x03\x04")
    payload = b"\x03\xe9going away"
    masked = bytes(b ^ (1, 2, 3, 4)[i % 4] for i, b in enumerate(payload))
    assert frame == b"\x88\x8c\x01\x02\x03\x04" + masked
    assert _decode(frame, client=False) == (Opcode.CLOSE, (1001, "going away"))
    random_key = close_frame(mask=True)
    assert len(random_key) == len(frame) - len(payload) + 17
    assert _decode(random_key, client=False) == (Opcode.CLOSE, (1012, "service restart"))


def test_close_frame_with_utf8_reason_at_the_size_limit() -> None:
    reason = "é" * 61 + "x"  # 123 bytes
    frame = close_frame(4000, reason)
    assert _decode(frame, client=True) == (Opcode.CLOSE, (4000, reason))


@pytest.mark.parametrize(
    ("code", "reason"), [(999, ""), (1005, ""), (1006, ""), (5000, ""), (1000, "x" * 124)]
)
def test_close_frame_rejects_what_may_not_be_sent(code: int, reason: str) -> None:
    with pytest.raises(ValueError):
        close_frame(code, reason)
