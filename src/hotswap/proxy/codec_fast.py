"""The fast codec: the proxy's codec interface (codec.py) on llhttp, via httptools.

llhttp runs in strict mode (no leniency flag is ever set) and sees exactly one
head at a time: this module finds the end of each head itself (CRLF CRLF,
bounded by the head size limit, so a request head and a response head are
bounded alike) and hands that head to a fresh parser. Everything llhttp cannot
be told or does not do is done here, in the same terms as h11, the reference:

- framing (http/framing.py) and bodies: Content-Length counted here, chunked
  bodies decoded by http/chunked.py, a response's framing chosen from the request
  method (HEAD, 1xx, 204 and 304 have no body, which llhttp cannot be told);
- Host present and unique on HTTP/1.1, Transfer-Encoding exactly `chunked`,
  a request line of exactly three parts, no bare LF anywhere in a head;
- keep-alive, pipelining (the next request waits in the buffer until the cycle
  ends), Expect: 100-continue, Upgrade / 101;
- writing heads (http/serialize.py) and framing the bodies we send.

The few places where this codec and h11 deliberately differ are listed in
docs/architecture.md; tests/proxy/test_codec_differential.py holds the rest equal.
"""

from __future__ import annotations

import re
from typing import Final

import httptools

from hotswap.http.chunked import ChunkedDecoder
from hotswap.http.framing import (
    BodyKind,
    FramingError,
    body_framing,
    request_body,
    response_body,
)
from hotswap.http.headers import split_tokens
from hotswap.http.serialize import request_head, response_head
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

# The peer's side of a cycle.
_HEAD: Final = 0  # waiting for (the rest of) a head
_BODY: Final = 1  # reading a body
_BODY_END: Final = 2  # the body is complete: END is the next event
_DONE: Final = 3  # the message is complete
_SWITCH: Final = 4  # complete, and a protocol switch was proposed (Upgrade)
_CLOSED: Final = 5  # the peer closed the connection
_ERROR: Final = 6

# Our side of a cycle.
_IDLE: Final = 0  # nothing sent (server: no request read yet)
_WAIT: Final = 1  # server: a request was read, no response head sent yet
_SEND_BODY: Final = 2
_SENT: Final = 3  # our message is complete
_SWITCHED: Final = 4
_BROKEN: Final = 5  # a write failed, or a bug: nothing more may be sent

_SPECIAL: Final = frozenset(
    {b"host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"upgrade"}
)
_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED: Final = (b"transfer-encoding", b"chunked")
_CLOSE: Final = (b"connection", b"close")
_VERSION_ERROR: Final = "Invalid HTTP version"
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# llhttp does not look at the reason phrase: control characters other than HTAB.
_REASON_CONTROL: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class _Quiet:
    """llhttp's protocol object: no callbacks. llhttp validates a head (in C, all of
    it, whatever the callbacks); `_fields` then takes the validated head apart with
    bytes methods, which costs less than a call from C into Python per field."""

    on_message_begin = on_url = on_status = on_header = on_headers_complete = None
    on_body = on_message_complete = on_chunk_header = on_chunk_complete = None


_QUIET: Final = _Quiet()


def _fields(head: bytes, line_end: int) -> tuple[Headers, Headers]:
    """(every field, the framing and connection fields) of a head llhttp accepted:
    each line is then `token ":" OWS value OWS`, no obs-fold, CRLF line ends."""
    headers: Headers = []
    special: Headers = []
    if line_end + 4 < len(head):
        append = headers.append
        for line in head[line_end + 2 : -4].split(b"\r\n"):
            name, _, value = line.partition(b":")
            item = (name.lower(), value.strip(b" \t"))
            append(item)
            if item[0] in _SPECIAL:
                special.append(item)
    return headers, special


class _FastCodec:
    """The buffer, the body reader and the state shared by both sides."""

    __slots__ = (
        "_body",
        "_buf",
        "_chunks",
        "_eof",
        "_keep_alive",
        "_left",
        "_max_head",
        "_method",
        "_our_body",
        "_our_left",
        "_ours",
        "_pos",
        "_scan",
        "_switch_proposed",
        "_theirs",
    )

    def __init__(self, max_head_size: int) -> None:
        self._max_head = max_head_size
        self._buf = b""
        self._pos = 0  # read position in _buf
        self._scan = 0  # where the search for the end of the head goes on
        self._eof = False
        self._theirs = _HEAD
        self._ours = _IDLE
        self._keep_alive = True
        self._method = b""  # of the current request (a response's framing depends on it)
        self._body = BodyKind.NONE  # the peer's body
        self._left = 0
        self._chunks: ChunkedDecoder | None = None
        self._our_body = BodyKind.NONE
        self._our_left = 0
        self._switch_proposed = False  # an Upgrade was asked for in this cycle

    # -- receiving -----------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        if self._eof:
            if data:
                raise ProtocolError("data received after the end of the connection")
            return
        if not data:
            self._eof = True
            return
        pos = self._pos
        if pos:
            self._buf = self._buf[pos:] + data
            self._scan = max(self._scan - pos, 0)
            self._pos = 0
        else:
            self._buf += data

    def _find_head(self) -> bytes | None:
        """The next complete head (start line to the empty line), or None if not all here."""
        buf = self._buf
        pos = self._pos
        end = len(buf)
        index = buf.find(b"\r\n\r\n", max(self._scan, pos))
        if index < 0:
            if end - pos > self._max_head:
                raise ProtocolError(f"the head exceeds {self._max_head} bytes", 431)
            # A bare LF can never end a head here: refuse it now, not at the timeout.
            low = max(pos, self._scan - 1)
            if buf.count(b"\n", low + 1, end) != buf.count(b"\r\n", low, end):
                raise ProtocolError("a line of the head ends with LF without CR")
            if self._eof:
                raise ProtocolError("the peer closed the connection in the middle of a head")
            self._scan = max(pos, end - 3)
            return None
        head_end = index + 4
        if head_end - pos > self._max_head:
            raise ProtocolError(f"the head exceeds {self._max_head} bytes", 431)
        self._pos = self._scan = head_end
        return buf[pos:head_end]

    def _body_event(self) -> Event:
        """The next event of the peer's body (state _BODY)."""
        buf = self._buf
        pos = self._pos
        kind = self._body
        if kind is BodyKind.LENGTH:
            available = len(buf) - pos
            if not available:
                if self._eof:
                    raise ProtocolError("the peer closed the connection in the middle of a body")
                return NEED_DATA
            take = self._left if self._left < available else available
            self._left -= take
            if not self._left:
                self._theirs = _BODY_END
            if pos == 0 and take == len(buf):
                self._buf = b""
                self._scan = 0
                return Body(buf)
            self._pos = pos + take
            return Body(buf[pos : pos + take])
        if kind is BodyKind.CHUNKED:
            decoder = self._chunks
            assert decoder is not None
            try:
                event, self._pos = decoder.next(buf, pos)
            except FramingError as exc:
                self._theirs = _ERROR
                raise ProtocolError(str(exc), exc.status) from exc
            if event is None:
                if self._eof:
                    raise ProtocolError("the peer closed the connection in the middle of a body")
                return NEED_DATA
            if event is True:
                self._chunks = None
                self._body_complete()
                return END
            return Body(event)  # type: ignore[arg-type]
        # BodyKind.CLOSE: everything until the peer closes.
        if pos < len(buf):
            data = buf[pos:] if pos else buf
            self._buf = b""
            self._pos = self._scan = 0
            return Body(data)
        if self._eof:
            self._body_complete()
            return END
        return NEED_DATA

    def _body_complete(self) -> None:
        self._theirs = _DONE

    def _error(self, message: str, status: int = 400) -> ProtocolError:
        self._theirs = _ERROR
        return ProtocolError(message, status)

    def _framing(self, special: Headers) -> tuple[int | None, bool]:
        try:
            return body_framing(special)
        except FramingError as exc:
            raise self._error(str(exc), exc.status) from exc

    def _expect_body(self, kind: BodyKind, length: int | None) -> None:
        """The peer's message has a body of `kind` (`length` bytes for LENGTH)."""
        if kind is BodyKind.CHUNKED:
            self._chunks = ChunkedDecoder()
        self._body = kind
        self._left = length or 0
        self._theirs = _BODY_END if kind is BodyKind.NONE else _BODY

    def _peer_parse_error(self, exc: Exception) -> ProtocolError:
        message = str(exc) or type(exc).__name__
        return self._error(message, 505 if message == _VERSION_ERROR else 400)

    # -- sending -------------------------------------------------------------------

    def _start_sending(self, kind: BodyKind, length: int) -> None:
        if kind is BodyKind.NONE:
            self._ours = _SENT
        else:
            self._ours = _SEND_BODY
            self._our_body = kind
            self._our_left = length

    def body(self, data: bytes) -> bytes:
        if self._ours != _SEND_BODY:
            if not data:
                return b""
            raise RuntimeError("body data sent while no message body is being sent")
        kind = self._our_body
        if kind is BodyKind.LENGTH:
            if len(data) > self._our_left:
                self._ours = _BROKEN
                raise RuntimeError("more body data than the Content-Length sent")
            self._our_left -= len(data)
            return data
        if kind is BodyKind.CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        return data

    def end(self) -> bytes:
        if self._ours == _SENT:
            return b""
        if self._ours != _SEND_BODY:
            raise RuntimeError("end of message while no message is being sent")
        kind = self._our_body
        self._ours = _SENT
        if kind is BodyKind.LENGTH:
            if self._our_left:
                self._ours = _BROKEN
                raise RuntimeError("less body data than the Content-Length sent")
            return b""
        if kind is BodyKind.CHUNKED:
            return b"0\r\n\r\n"
        self._keep_alive = False  # close-delimited: only closing ends it
        return b""

    def send_failed(self) -> None:
        self._ours = _BROKEN
        self._keep_alive = False

    # -- the cycle -------------------------------------------------------------------

    @property
    def cycle_done(self) -> bool:
        return self._ours == _SENT and self._theirs == _DONE and self._keep_alive

    def start_next_cycle(self) -> None:
        if not self.cycle_done:
            raise RuntimeError("start_next_cycle() before both sides are done")
        self._ours = _IDLE
        self._theirs = _HEAD
        self._method = b""
        self._switch_proposed = False
        self._body = self._our_body = BodyKind.NONE

    @property
    def switched(self) -> bool:
        return self._ours == _SWITCHED

    @property
    def trailing_data(self) -> bytes:
        return self._buf[self._pos :]

    @property
    def peer_done(self) -> bool:
        return self._theirs == _DONE or self._theirs == _CLOSED

    @property
    def has_buffered_data(self) -> bool:
        return self._pos < len(self._buf)

    def _after_message(self) -> Event:
        """next_event() once the peer's message is complete."""
        if self._pos < len(self._buf):
            return PAUSED
        if self._eof:
            return CLOSED
        return NEED_DATA


class FastServerCodec(_FastCodec):
    """The client connection's side: parses requests, writes responses."""

    __slots__ = ("_continue", "_version")

    def __init__(self, max_head_size: int = MAX_REQUEST_HEAD_SIZE) -> None:
        super().__init__(max_head_size)
        self._version = b"1.1"
        self._continue = False  # the client waits for 100 Continue

    def next_event(self) -> Event:
        theirs = self._theirs
        if theirs == _BODY:
            if self._continue:
                return self._first_body_event()
            return self._body_event()
        if theirs == _HEAD:
            if self._pos == len(self._buf):
                if self._eof:
                    self._theirs = _CLOSED
                    return CLOSED
                return NEED_DATA
            head = self._find_head()
            if head is None:
                return NEED_DATA
            return self._request(head)
        if theirs == _BODY_END:
            self._body_complete()
            return END
        if theirs == _DONE:
            return self._after_message()
        if theirs == _SWITCH:
            return PAUSED
        if theirs == _CLOSED:
            return CLOSED
        raise ProtocolError("the connection is in an error state")

    def _request(self, head: bytes) -> RequestHead:
        if head[:1] in b"\r\n":  # llhttp skips empty lines; h11 (and we) refuse them
            raise self._error("no request line received")
        try:
            httptools.HttpRequestParser(_QUIET).feed_data(head)
        except httptools.HttpParserUpgrade:
            pass  # Upgrade and CONNECT: llhttp stops after the head; handled below
        except httptools.HttpParserInvalidMethodError:
            method = head[: head.find(b" ")]
            if _TOKEN.fullmatch(method) is None:
                raise self._error("invalid request method") from None
            # A well-formed method llhttp does not know (it knows the registered
            # ones, WebDAV's among them): not implemented by this codec.
            shown = method[:40].decode("ascii", "replace")
            raise self._error(f"method {shown} is not supported", 501) from None
        except httptools.HttpParserError as exc:
            raise self._peer_parse_error(exc) from None
        line_end = head.find(b"\r\n")
        line = head[:line_end]
        space = line.find(b" ")
        method = line[:space]
        target = line[space + 1 : -9]
        # Exactly "method SP target SP HTTP/x.y": llhttp tolerates repeated spaces.
        if line[-9:-3] != b" HTTP/" or b" " in target or b"\t" in target:
            raise self._error("invalid request line")
        version = line[-3:]
        headers, special = _fields(head, line_end)
        self._version = version
        hosts = 0
        expect = False
        upgrade = False
        for name, value in special:
            if name == b"host":
                hosts += 1
            elif name == b"connection":
                if b"close" in split_tokens(value):
                    self._keep_alive = False
            elif name == b"expect":
                expect = expect or b"100-continue" in split_tokens(value)
            elif name == b"upgrade":
                # A switch is proposed by a protocol named, not by an empty list (as h11).
                upgrade = upgrade or bool(value.strip(b" \t,"))
        if hosts > 1:
            raise self._error("more than one Host header")
        if version == b"1.1":
            if not hosts:
                raise self._error("missing Host header")
        else:
            self._keep_alive = False
            expect = False
        length, chunked = self._framing(special)
        self._method = method
        self._continue = expect
        self._ours = _WAIT
        self._expect_body(request_body(length, chunked), length)
        self._switch_proposed = upgrade
        return RequestHead(
            method,
            target,
            headers,
            version,
            length=length,
            chunked=chunked,
            expect_continue=expect,
            head_size=len(head),
            upgrade=upgrade,
        )

    def _first_body_event(self) -> Event:
        """A body event while the client may wait for 100 Continue: once its body
        arrives it no longer waits (as h11), and no 100 is sent after the fact."""
        event = self._body_event()
        if event is not NEED_DATA:
            self._continue = False
        return event

    def _body_complete(self) -> None:
        self._continue = False
        self._theirs = _SWITCH if self._switch_proposed and self._ours == _WAIT else _DONE

    @property
    def waiting_for_continue(self) -> bool:
        return self._continue

    @property
    def can_respond(self) -> bool:
        return self._ours == _IDLE or self._ours == _WAIT

    @property
    def response_done(self) -> bool:
        return self._ours == _SENT

    def continue_100(self) -> bytes:
        self._continue = False
        return _CONTINUE

    def response(self, status: int, headers: Headers, reason: bytes) -> bytes:
        if not self.can_respond:
            raise RuntimeError("a response head was already sent for this request")
        self._continue = False
        if status < 200:
            if status == 101:
                if not self._switch_proposed:
                    raise RuntimeError("101 Switching Protocols without an Upgrade request")
                self._ours = _SWITCHED
                self._theirs = _DONE if self._theirs == _SWITCH else self._theirs
                self._keep_alive = False
            return response_head(status, reason, headers)
        if self._theirs == _SWITCH:
            self._theirs = _DONE  # the switch was declined: plain HTTP goes on
        self._switch_proposed = False
        length: int | None = None
        close = False
        for name, value in headers:
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value == b"close":
                close = True
        method = self._method
        # As h11: a HEAD response is framed as the GET response would be.
        kind = response_body(b"GET" if method == b"HEAD" else method, status, length, False)
        if kind is BodyKind.CLOSE:
            if self._version == b"1.1":
                kind = BodyKind.CHUNKED
                headers = [*headers, _CHUNKED]
            elif method != b"HEAD":
                self._keep_alive = False
        if method == b"HEAD":
            kind = BodyKind.NONE
        if close:
            self._keep_alive = False
        elif not self._keep_alive:
            headers = [*headers, _CLOSE]
        self._start_sending(kind, length or 0)
        return response_head(status, reason, headers)


class FastClientCodec(_FastCodec):
    """An upstream connection's side: writes requests, parses responses."""

    __slots__ = ()

    def __init__(self, max_head_size: int = MAX_RESPONSE_HEAD_SIZE) -> None:
        super().__init__(max_head_size)

    def request(self, method: bytes, target: bytes, headers: Headers) -> bytes:
        if self._ours != _IDLE:
            raise RuntimeError("a request was already sent in this cycle")
        length = 0
        chunked = False
        for name, value in headers:
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"upgrade":
                self._switch_proposed = True
            elif name == b"connection" and value == b"close":
                self._keep_alive = False
        self._method = method
        self._start_sending(request_body(length, chunked), length)
        return request_head(method, target, headers)

    @property
    def idle(self) -> bool:
        return self._ours == _IDLE and self._theirs == _HEAD

    def next_event(self) -> Event:
        theirs = self._theirs
        if theirs == _BODY:
            return self._body_event()
        if theirs == _HEAD:
            if self._pos == len(self._buf):
                if self._eof:
                    if self._ours == _IDLE:
                        self._theirs = _CLOSED
                        return CLOSED
                    raise self._error("the upstream closed the connection before responding")
                return NEED_DATA
            if self._ours == _IDLE:
                raise self._error("data received before a request was sent")
            head = self._find_head()
            if head is None:
                return NEED_DATA
            return self._response(head)
        if theirs == _BODY_END:
            self._body_complete()
            return END
        if theirs == _DONE:
            return self._after_message()
        if theirs == _CLOSED:
            return CLOSED
        raise ProtocolError("the connection is in an error state")

    def _response(self, head: bytes) -> ResponseHead:
        try:
            httptools.HttpResponseParser(_QUIET).feed_data(head)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError as exc:
            raise self._peer_parse_error(exc) from None
        line_end = head.find(b"\r\n")
        line = head[:line_end]
        if line[:5] != b"HTTP/" or line[8:9] != b" " or not line[9:12].isdigit():
            raise self._error("invalid status line")
        if _REASON_CONTROL.search(line, 12) is not None:
            raise self._error("a control character in the status line")
        status = int(line[9:12])
        if status < 100:  # llhttp takes any three digits (RFC 9110 §15: 100-599)
            raise self._error("invalid status line")
        version = line[5:8]
        headers, special = _fields(head, line_end)
        for name, value in special:
            if name == b"connection" and b"close" in split_tokens(value):
                self._keep_alive = False
        if version != b"1.1":
            if version != b"1.0":  # llhttp takes 0.9 and 2.0 too
                raise self._error("the response's HTTP version is not 1.0 or 1.1")
            self._keep_alive = False
        length, chunked = self._framing(special)
        response = ResponseHead(status, headers, line[13:], version, length=length, chunked=chunked)
        if status < 200:
            if status == 101:
                if not self._switch_proposed:
                    raise self._error("101 Switching Protocols without an Upgrade request")
                self._ours = _SWITCHED
                self._theirs = _DONE
                self._keep_alive = False
            return response  # other 1xx: the final head follows
        self._switch_proposed = False
        kind = response_body(self._method, status, length, chunked)
        if kind is BodyKind.CLOSE:
            self._keep_alive = False
        self._expect_body(kind, length)
        return response
