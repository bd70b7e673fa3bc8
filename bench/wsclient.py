"""WebSocket clients that stay open through deploys (stdlib asyncio, RFC 6455), recording all.

Used by bench/deploy_under_load. Each client connects to PATH on 127.0.0.1:PORT
with the route's Host, expects the app's first text message (its VERSION, as the
test app sends it), then sends a small text message every ECHO_EVERY_S and
expects its echo within ECHO_TIMEOUT_S. When the server closes the WebSocket
(1012 from hotswap's websocket_drain = "close", 1001 from an app stopping on
SIGTERM), the client answers the close, waits for the server to hang up and
reconnects at once, as a browser app would; the version that answers the new
session is recorded. At the end each client closes with 1000.

A failure is what a user of the WebSocket would see as an error: a handshake
that fails or gets no 101, a connection that resets or ends without a close
frame, an echo that does not come back in time, a close handshake that does not
complete. A message still unanswered when the server's close frame arrives is
not a failure (the close frame says no more data follows); it is counted apart.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from dataclasses import dataclass, field
from typing import Any

CONNECT_TIMEOUT = 5.0
ECHO_EVERY_S = 0.5
ECHO_TIMEOUT_S = 2.0
CLOSE_WAIT_S = 2.0  # for the server to finish a closing handshake
RETRY_PAUSE_S = 0.1  # after a failure, before the next attempt
MAX_FRAME = 1 << 20
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA
NO_STATUS = 1005  # RFC 6455 7.4.1: a close frame without a code
EOF = -1  # pseudo opcode queued by the reader when the connection ends


class WsFailure(Exception):
    """Something a WebSocket user would see as an error."""


@dataclass
class WsEvent:
    time: float  # unix time
    client: int
    kind: str  # "open" | "close" (by the server) | "failure"
    version: str = ""  # open: the version that answered
    code: int | None = None  # close: the server's close code
    error: str = ""  # failure: what went wrong
    reconnect_s: float | None = None  # open after a close: seconds since the close frame
    cut_echo: bool = False  # close: a message was still waiting for its echo


def frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame: masked, as RFC 6455 5.3 requires of clients."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    if n:
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        payload = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return head + mask + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(opcode, payload) of the next whole message; fragments are joined."""
    opcode, parts = 0, []
    while True:
        b1, b2 = await reader.readexactly(2)
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        if n > MAX_FRAME:
            raise WsFailure(f"frame of {n} bytes")
        if b2 & 0x80:
            raise WsFailure("masked frame from the server")
        payload = await reader.readexactly(n)
        op = b1 & 0x0F
        if op >= OP_CLOSE:  # control frames may come between fragments
            return op, payload
        if op:
            opcode = op
        parts.append(payload)
        if b1 & 0x80:
            return opcode, b"".join(parts)


@dataclass
class Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    frames: asyncio.Queue[tuple[int, bytes]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        try:
            while True:
                await self.frames.put(await read_frame(self.reader))
        except (OSError, asyncio.IncompleteReadError, WsFailure) as exc:
            await self.frames.put((EOF, describe(exc).encode()))

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def next(self, deadline: float) -> tuple[int, bytes]:
        """The next message or control frame; TimeoutError at `deadline` (loop time).

        Frames are queued by the reader task, so giving up here never cuts a frame.
        """
        async with asyncio.timeout_at(deadline):
            return await self.frames.get()

    async def send(self, opcode: int, payload: bytes) -> None:
        self.writer.write(frame(opcode, payload))
        await self.writer.drain()

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.writer.close()


def describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection ended without a close frame"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return (type(exc).__name__ + (f": {exc}" if str(exc) else ""))[:160]


class WsClients:
    """`count` WebSockets to PATH with Host `host`, kept open until `stop`; see the module doc."""

    def __init__(self, port: int, host: str, count: int, path: str = "/ws") -> None:
        self.port = port
        self.host = host
        self.count = count
        self.path = path
        self.events: list[WsEvent] = []
        self.echoes: list[tuple[float, float]] = []  # (unix time sent, round trip s)
        self.current: dict[int, str] = {}  # client -> version of its open session

    async def run(self, stop: asyncio.Event, opened: asyncio.Event | None = None) -> None:
        """Run every client until `stop`; `opened` is set once each has had a first session."""
        firsts = [asyncio.Event() for _ in range(self.count)]

        async def all_opened() -> None:
            await asyncio.gather(*(e.wait() for e in firsts))
            if opened is not None:
                opened.set()

        watcher = asyncio.ensure_future(all_opened())
        try:
            await asyncio.gather(*(self._client(i, stop, firsts[i]) for i in range(self.count)))
        finally:
            watcher.cancel()

    def _event(self, client: int, kind: str, **kw: Any) -> WsEvent:
        event = WsEvent(time.time(), client, kind, **kw)
        self.events.append(event)
        return event

    async def _client(self, i: int, stop: asyncio.Event, first: asyncio.Event) -> None:
        # perf_counter of the server's last close frame, until the next session opens: failed
        # attempts in between count in the time to reconnect.
        closed_at: float | None = None
        while not stop.is_set():
            session: Session | None = None
            try:
                session, version = await self._open()
                since = None if closed_at is None else time.perf_counter() - closed_at
                closed_at = None
                self._event(i, "open", version=version, reconnect_s=since)
                self.current[i] = version
                first.set()
                code, cut, closed_at = await self._talk(i, session, stop)
                self.current.pop(i, None)
                if code is None:  # we closed, at `stop`
                    return
                self._event(i, "close", code=code, cut_echo=cut)
            except (WsFailure, OSError, TimeoutError, asyncio.IncompleteReadError,
                    ValueError) as exc:  # fmt: skip
                self.current.pop(i, None)
                self._event(i, "failure", error=describe(exc))
                await asyncio.sleep(RETRY_PAUSE_S)
            finally:
                if session is not None:
                    session.close()

    async def _open(self) -> tuple[Session, str]:
        """Connect, handshake, read the app's first message (its version)."""
        try:
            return await self._handshake()
        except TimeoutError:
            raise WsFailure(f"no handshake and first message within {CONNECT_TIMEOUT:g}s") from None

    async def _handshake(self) -> tuple[Session, str]:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            session = Session(reader, writer)
            try:
                key = base64.b64encode(os.urandom(16)).decode()
                writer.write(
                    f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                    "Sec-WebSocket-Version: 13\r\nUser-Agent: hotswap-bench\r\n\r\n".encode()
                )
                await writer.drain()
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                lines = head.split("\r\n")
                if lines[0].split(" ")[1:2] != ["101"]:
                    raise WsFailure(f"handshake answered {lines[0]!r}")
                accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (line.partition(":") for line in lines[1:])}  # fmt: skip
                if headers.get("sec-websocket-accept") != accept:
                    raise WsFailure("bad Sec-WebSocket-Accept")
                session.start()
                loop = asyncio.get_running_loop()
                opcode, payload = await session.next(loop.time() + ECHO_TIMEOUT_S)
                if opcode != OP_TEXT:
                    raise WsFailure(f"first frame opcode {opcode}, not the version message")
                return session, payload.decode(errors="replace").strip()
            except BaseException:
                session.close()
                raise

    async def _talk(
        self, i: int, session: Session, stop: asyncio.Event
    ) -> tuple[int | None, bool, float]:
        """Echo until the server closes or `stop` (code None).

        Returns the server's close code, whether a message was waiting for its echo, and
        when (perf_counter) the close frame arrived.
        """
        loop = asyncio.get_running_loop()
        seq = 0
        pending: bytes | None = None
        sent_at = deadline = 0.0
        next_send = loop.time() + ECHO_EVERY_S
        while True:
            now = loop.time()
            if pending is None and stop.is_set():
                await self._close(session)
                return None, False, time.perf_counter()
            if pending is None and now >= next_send:
                seq += 1
                pending = f"client {i} message {seq}".encode()
                sent_at, deadline = time.time(), now + ECHO_TIMEOUT_S
                next_send = now + ECHO_EVERY_S
                await session.send(OP_TEXT, pending)
            try:
                opcode, payload = await session.next(deadline if pending else next_send)
            except TimeoutError:
                if pending is not None and loop.time() >= deadline:
                    raise WsFailure(f"no echo within {ECHO_TIMEOUT_S:g}s") from None
                continue
            if opcode == EOF:
                raise WsFailure(payload.decode())
            if opcode == OP_CLOSE:
                at = time.perf_counter()
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else NO_STATUS
                await session.send(OP_CLOSE, payload[:2])  # echo the code (RFC 6455 5.5.1)
                await self._wait_hangup(session)
                return code, pending is not None, at
            if opcode == OP_PING:
                await session.send(OP_PONG, payload)
            elif opcode in (OP_TEXT, OP_BINARY) and payload == pending:
                self.echoes.append((sent_at, time.time() - sent_at))
                pending = None
            elif opcode != OP_PONG:
                raise WsFailure(f"unexpected message {payload[:40]!r}")

    async def _close(self, session: Session) -> None:
        """Our close (1000): wait for the server's close frame, then for it to hang up."""
        await session.send(OP_CLOSE, struct.pack("!H", 1000))
        deadline = asyncio.get_running_loop().time() + CLOSE_WAIT_S
        while True:
            try:
                opcode, payload = await session.next(deadline)
            except TimeoutError:
                raise WsFailure("no close frame in answer to ours") from None
            if opcode == EOF:
                raise WsFailure(f"no close frame in answer to ours: {payload.decode()}")
            if opcode == OP_CLOSE:
                await self._wait_hangup(session)
                return

    async def _wait_hangup(self, session: Session) -> None:
        """After the closing handshake the server closes TCP (RFC 6455 7.1.1); bounded wait."""
        deadline = asyncio.get_running_loop().time() + CLOSE_WAIT_S
        while True:
            try:
                opcode, _ = await session.next(deadline)
            except TimeoutError:
                return  # it kept the connection: we close it ourselves (not a failure)
            if opcode == EOF:
                return


def summarise_ws(events: list[WsEvent], echoes: list[tuple[float, float]]) -> dict[str, Any]:
    """Counts for a report: sessions, closes by code, reconnects, failures, echo latency."""
    closes: dict[str, int] = {}
    for e in events:
        if e.kind == "close":
            closes[str(e.code)] = closes.get(str(e.code), 0) + 1
    opens = [e for e in events if e.kind == "open"]
    reconnects = [e for e in opens if e.reconnect_s is not None]
    failures = [e for e in events if e.kind == "failure"]
    rtts = sorted(rtt for _, rtt in echoes)
    gaps = sorted(e.reconnect_s for e in reconnects if e.reconnect_s is not None)

    def ms(values: list[float], p: float) -> float | None:
        if not values:
            return None
        return round(values[min(len(values) - 1, int(p * len(values)))] * 1000, 2)

    return {
        "sessions": len(opens),
        "closes": closes,
        "reconnects": len(reconnects),
        "reconnect_versions": count_values(e.version for e in reconnects),
        "cut_echoes": sum(e.cut_echo for e in events if e.kind == "close"),
        "failed": len(failures),
        "echoes": len(echoes),
        "echo_p50_ms": ms(rtts, 0.5),
        "echo_p99_ms": ms(rtts, 0.99),
        "reconnect_p50_ms": ms(gaps, 0.5),
        "reconnect_max_ms": ms(gaps, 1.0),
        "failure_sample": [e.__dict__ for e in failures[:5]],
    }


def count_values(values: Any) -> dict[str, int]:
    """value -> how many times it occurs."""
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out
