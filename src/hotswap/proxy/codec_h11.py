"""The reference codec: the proxy's codec interface (codec.py) on h11.

h11 parses and validates; this adapter adds what h11 lets through and the proxy
must refuse: Content-Length together with Transfer-Encoding (h11 lets the
transfer coding win), obs-fold line continuations (h11 unfolds them), control
characters other than HTAB in field values and reason phrases (h11 refuses only
NUL and whitespace controls there), a head over the size limit that arrived in
one read (h11 bounds only heads that arrive in pieces; the limit counts the
bytes received, as the fast codec does), a response whose version is not 1.0 or
1.1, and a 101 without Upgrade and the "upgrade" connection option (RFC 9110
§7.8, §15.2.2; llhttp refuses it too). It also ends the connection's cycles
where h11 would go on: after EOF, and after a 1xx response that says
Connection: close or is HTTP/1.0 (h11 applies keep-alive rules to final
responses only; the fast codec to every head).

Heads are sent with h11's `_parsed=True`: they are made of fields h11 parsed
and validated plus values the proxy produces, and re-validating them was a
third of h11's cost per request. The flag is private to h11 (present since
0.8); the proxy tests would fail at once if a release dropped it.
"""

from __future__ import annotations

import re
from typing import Final

import h11

from hotswap.http.framing import FramingError, body_framing
from hotswap.http.headers import connection_tokens
from hotswap.proxy.codec import (
    CLOSED,
    END,
    MAX_REQUEST_HEAD_SIZE,
    MAX_RESPONSE_HEAD_SIZE,
    NEED_DATA,
    PAUSED,
    Body,
    Event,
    Headers,
    ProtocolError,
    RequestHead,
    ResponseHead,
)

_PEER_FINISHED: Final = frozenset({h11.DONE, h11.MUST_CLOSE, h11.CLOSED})
_CAN_RESPOND: Final = frozenset({h11.IDLE, h11.SEND_RESPONSE})
_RESPONSE_SENT: Final = frozenset({h11.DONE, h11.MUST_CLOSE})
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# In a head h11 accepted: an obs-fold line start, or a control character h11's
# field-value and reason-phrase grammar lets through (bare CR and NUL it refuses).
_REFUSED = re.compile(rb"\n[ \t]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_VERSIONS: Final = frozenset({b"1.0", b"1.1"})


class _H11Codec:
    __slots__ = ("_h11", "_head_bytes", "_in_head", "_last_cycle", "_max_head")
    _h11: h11.Connection

    def __init__(self, role: type[h11.CLIENT] | type[h11.SERVER], max_head_size: int) -> None:
        self._h11 = h11.Connection(role, max_incomplete_event_size=max_head_size)
        self._max_head = max_head_size
        self._in_head = True  # the next event is a head: its raw bytes are kept
        self._head_bytes = b""
        self._last_cycle = False  # the peer closed, or said it will: no cycle after this one

    def receive(self, data: bytes) -> None:
        if not data:
            self._last_cycle = True
        elif self._in_head and len(self._head_bytes) <= self._max_head:
            self._head_bytes += data
        try:
            self._h11.receive_data(data)
        except RuntimeError as exc:  # data after EOF: a bug of ours, not the peer's
            raise ProtocolError(str(exc)) from exc

    def _h11_event(self) -> object:
        try:
            return self._h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(str(exc), exc.error_status_hint) from exc

    def _check_head(self, *, another_head: bool) -> int:
        """Refuse an oversized head, obs-fold and control characters; the head's size
        in bytes as received. `another_head`: a head follows (after a 1xx response),
        so the bytes after this one are watched too."""
        raw = self._head_bytes
        # Bytes are kept until more than the limit is held: a head that does not
        # end within them is over the limit.
        match = _HEAD_END.search(raw)
        if match is None or match.end() > self._max_head:
            raise ProtocolError(f"the head exceeds {self._max_head} bytes", 431)
        refused = _REFUSED.search(raw, 0, match.start())
        if refused is not None:
            if refused.group()[:1] == b"\n":
                raise ProtocolError("obs-fold (a header line continued on the next line)")
            raise ProtocolError("a control character in the head")
        self._in_head = another_head
        self._head_bytes = self._h11.trailing_data[0] if another_head else b""
        return match.end()

    def _framing(self, headers: Headers) -> tuple[int | None, bool]:
        try:
            return body_framing(headers)
        except FramingError as exc:
            raise ProtocolError(str(exc), exc.status) from exc

    def body(self, data: bytes) -> bytes:
        return self._h11.send(h11.Data(data=data)) or b""

    def end(self) -> bytes:
        return self._h11.send(h11.EndOfMessage()) or b""

    def send_failed(self) -> None:
        self._h11.send_failed()

    @property
    def cycle_done(self) -> bool:
        # h11 reports DONE on both sides after a close-delimited body ended by EOF
        # (CLOSED only at the next event): such a connection must not be reused.
        return (
            self._h11.our_state is h11.DONE
            and self._h11.their_state is h11.DONE
            and not self._last_cycle
        )

    def start_next_cycle(self) -> None:
        self._h11.start_next_cycle()
        self._in_head = True
        self._head_bytes = self._h11.trailing_data[0]

    @property
    def switched(self) -> bool:
        return self._h11.our_state is h11.SWITCHED_PROTOCOL

    @property
    def trailing_data(self) -> bytes:
        return bytes(self._h11.trailing_data[0])

    @property
    def peer_done(self) -> bool:
        return self._h11.their_state in _PEER_FINISHED

    @property
    def has_buffered_data(self) -> bool:
        return bool(self._h11.trailing_data[0])


def _simple_event(event: object) -> Event:
    kind = type(event)
    if kind is h11.Data:
        return Body(event.data)  # type: ignore[attr-defined]
    if kind is h11.EndOfMessage:
        return END
    if event is h11.NEED_DATA:
        return NEED_DATA
    if event is h11.PAUSED:
        return PAUSED
    return CLOSED


class H11ServerCodec(_H11Codec):
    """The client connection's side on h11."""

    __slots__ = ()

    def __init__(self, max_head_size: int = MAX_REQUEST_HEAD_SIZE) -> None:
        super().__init__(h11.SERVER, max_head_size)

    def next_event(self) -> Event:
        event = self._h11_event()
        if type(event) is not h11.Request:
            return _simple_event(event)
        # Headers become a plain list once: h11's Headers is a Sequence whose
        # iteration goes through __getitem__, and every consumer walks them.
        headers = list(event.headers)
        size = self._check_head(another_head=False)
        length, chunked = self._framing(headers)
        return RequestHead(
            event.method,
            event.target,
            headers,
            event.http_version,
            length=length,
            chunked=chunked,
            expect_continue=self._h11.they_are_waiting_for_100_continue,
            head_size=size,
            upgrade=any(name == b"upgrade" and value.strip(b" \t,") for name, value in headers),
        )

    @property
    def waiting_for_continue(self) -> bool:
        return self._h11.they_are_waiting_for_100_continue

    @property
    def can_respond(self) -> bool:
        return self._h11.our_state in _CAN_RESPOND

    @property
    def response_done(self) -> bool:
        return self._h11.our_state in _RESPONSE_SENT

    def continue_100(self) -> bytes:
        return self._h11.send(h11.InformationalResponse(status_code=100, headers=[])) or b""

    def response(self, status: int, headers: Headers, reason: bytes) -> bytes:
        if status < 200:
            event: h11.Response | h11.InformationalResponse = h11.InformationalResponse(
                status_code=status, headers=headers, reason=reason, _parsed=True
            )
        else:
            event = h11.Response(status_code=status, headers=headers, reason=reason, _parsed=True)
        return self._h11.send(event) or b""


class H11ClientCodec(_H11Codec):
    """An upstream connection's side on h11."""

    __slots__ = ()

    def __init__(self, max_head_size: int = MAX_RESPONSE_HEAD_SIZE) -> None:
        super().__init__(h11.CLIENT, max_head_size)

    def next_event(self) -> Event:
        event = self._h11_event()
        kind = type(event)
        if kind is not h11.Response and kind is not h11.InformationalResponse:
            return _simple_event(event)
        headers = list(event.headers)  # type: ignore[attr-defined]
        status: int = event.status_code  # type: ignore[attr-defined]
        reason: bytes = event.reason  # type: ignore[attr-defined]
        version: bytes = event.http_version  # type: ignore[attr-defined]
        informational = kind is h11.InformationalResponse and status != 101
        self._check_head(another_head=informational)
        if version not in _VERSIONS:
            raise ProtocolError("the response's HTTP version is not 1.0 or 1.1")
        if status < 200:
            connection = connection_tokens(headers)
            if status == 101:
                if b"upgrade" not in connection or all(n != b"upgrade" for n, _ in headers):
                    raise ProtocolError("101 Switching Protocols without Upgrade")
            elif b"close" in connection or version != b"1.1":
                self._last_cycle = True
        length, chunked = self._framing(headers)
        return ResponseHead(
            status,
            headers,
            reason,
            version,
            length=length,
            chunked=chunked,
        )

    def request(self, method: bytes, target: bytes, headers: Headers) -> bytes:
        event = h11.Request(method=method, target=target, headers=headers, _parsed=True)
        return self._h11.send(event) or b""

    @property
    def idle(self) -> bool:
        return self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE
