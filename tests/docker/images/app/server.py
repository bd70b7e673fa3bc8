"""The hotswap test app: one stdlib-only file, run inside the test images.

HTTP/1.1 with keep-alive on BIND_HOST:PORT (default 127.0.0.1:8000), written on
asyncio so it can stream (SSE, echo) and speak WebSocket. Every response carries
the app's VERSION in the `X-App-Version` header and in its body.

Endpoints:
    /              200 "VERSION\\n"
    /up            200 "ok VERSION\\n", or 503 "unhealthy VERSION\\n" when UNHEALTHY=1
    /slow?s=2      sleeps s seconds, then 200 "VERSION\\n"
    /sse?n=5&interval=0.1
                   text/event-stream, one event per interval ("data: VERSION i");
                   n=0 streams until the client goes away
    /echo          streams the request body back (same framing as the request)
    /ws            WebSocket (RFC 6455): sends the text message VERSION after the
                   handshake, echoes text/binary messages, answers ping and close
    /exit          answers 200, then the process exits with code 3
    /headers       200 JSON: method, target and request headers (for proxy tests)
    /bytes?n=N     200 with N bytes of body (Content-Length), written in 64 KiB pieces
    /status?code=N answers with that status code

Environment: PORT, VERSION, BIND_HOST, UNHEALTHY=1, START_DELAY=seconds (sleep
before listening), CRASH=1 (print an error line to stderr and exit 3 at once).
SIGTERM: stop listening, close idle connections, send close 1001 to open
WebSockets, exit 0 once no request is in flight (at most GRACE seconds).
Logs one line per request to stdout.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import struct
import sys
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

VERSION = os.environ.get("VERSION", "v1")
PORT = int(os.environ.get("PORT") or "8000")
BIND_HOST = os.environ.get("BIND_HOST") or "127.0.0.1"
UNHEALTHY = os.environ.get("UNHEALTHY") == "1"
CRASH_LINE = "FATAL: hotswap test app crashing on purpose (CRASH=1)"
EXIT_CODE = 3
GRACE = 10.0
MAX_HEAD = 64 * 1024
MAX_WS_FRAME = 16 * 1024 * 1024
PIECE = 64 * 1024
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

REASONS = {
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def log(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} version={VERSION} {line}", flush=True)


class BadRequest(Exception):
    pass


class Request:
    def __init__(
        self, method: str, target: str, http11: bool, headers: list[tuple[str, str]]
    ) -> None:
        self.method = method
        self.target = target
        self.http11 = http11
        self.headers = headers
        parts = urlsplit(target)
        self.path = parts.path or "/"
        self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def tokens(self, name: str) -> set[str]:
        out: set[str] = set()
        for k, v in self.headers:
            if k == name:
                out.update(t.strip().lower() for t in v.split(","))
        return out

    @property
    def keep_alive(self) -> bool:
        conn = self.tokens("connection")
        return "close" not in conn if self.http11 else "keep-alive" in conn

    @property
    def chunked(self) -> bool:
        return "chunked" in self.tokens("transfer-encoding")

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        if value is None:
            return None
        if not value.isdigit():
            raise BadRequest(f"bad content-length {value!r}")
        return int(value)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request head; None on a clean EOF between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("incomplete request head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    lines = head[:-4].decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(f"bad request line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(f"bad header line {line!r}")
        headers.append((name.lower(), value.strip()))
    return Request(parts[0], parts[1], parts[2] == "HTTP/1.1", headers)


async def body_chunks(req: Request, reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The request body, piece by piece, as it arrives."""
    if req.chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError as exc:
                raise BadRequest("bad chunk size") from exc
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return
            while size:
                piece = await reader.readexactly(min(size, PIECE))
                size -= len(piece)
                yield piece
            if await reader.readexactly(2) != b"\r\n":
                raise BadRequest("chunk not followed by CRLF")
    else:
        left = req.content_length or 0
        while left:
            piece = await reader.read(min(left, PIECE))
            if not piece:
                raise BadRequest("body shorter than content-length")
            left -= len(piece)
            yield piece


class App:
    def __init__(self) -> None:
        self.stopping = False
        self.in_flight = 0
        self.idle: set[asyncio.StreamWriter] = set()
        self.websockets: set[asyncio.StreamWriter] = set()
        self.ws_close_sent: set[asyncio.StreamWriter] = set()
        self.done = asyncio.Event()
        self.server: asyncio.AbstractServer | None = None

    # -- lifecycle -------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        self.server = await asyncio.start_server(self.connection, BIND_HOST, PORT, limit=MAX_HEAD)
        log(f"listening on {BIND_HOST}:{PORT} pid={os.getpid()}")
        await self.done.wait()
        log("stopped")
        return 0

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        log(f"signal received, stopping in_flight={self.in_flight}")
        if self.server is not None:
            self.server.close()
        for writer in list(self.idle):
            writer.close()
        for writer in list(self.websockets):  # 1001: going away
            writer.write(ws_frame(0x8, struct.pack("!H", 1001)))
            self.ws_close_sent.add(writer)
        asyncio.get_running_loop().call_later(GRACE, self.done.set)
        self.check_done()

    def check_done(self) -> None:
        if self.stopping and self.in_flight == 0:
            self.done.set()

    # -- connections -----------------------------------------------------
    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while not self.stopping:
                self.idle.add(writer)
                try:
                    req = await read_request(reader)
                finally:
                    self.idle.discard(writer)
                if req is None:
                    break
                self.in_flight += 1
                try:
                    keep_alive = await self.exchange(req, reader, writer)
                finally:
                    self.in_flight -= 1
                    self.check_done()
                if not keep_alive:
                    break
        except BadRequest as exc:
            log(f"bad request: {exc}")
            await respond(writer, 400, f"bad request: {exc}\n", keep_alive=False)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def exchange(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one request; return whether the connection may be reused."""
        keep_alive = req.keep_alive and not self.stopping
        path = req.path
        status = 200
        if path == "/ws":
            await self.websocket(req, reader, writer)
            return False
        if req.http11 and "100-continue" in req.tokens("expect"):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if path == "/echo":
            await echo(req, reader, writer, keep_alive)
            log(f"{req.method} {req.target} 200")
            return keep_alive
        async for _ in body_chunks(req, reader):  # read and drop any body
            pass
        head_only = req.method == "HEAD"
        if path == "/":
            await respond(writer, 200, f"{VERSION}\n", keep_alive, head_only)
        elif path == "/up":
            status = 503 if UNHEALTHY else 200
            body = f"unhealthy {VERSION}\n" if UNHEALTHY else f"ok {VERSION}\n"
            await respond(writer, status, body, keep_alive, head_only)
        elif path == "/slow":
            await asyncio.sleep(float(req.query.get("s", "2")))
            await respond(writer, 200, f"{VERSION}\n", keep_alive, head_only)
        elif path == "/sse":
            keep_alive = await sse(req, writer, keep_alive)
        elif path == "/headers":
            doc = {
                "version": VERSION,
                "method": req.method,
                "target": req.target,
                "headers": [[k, v] for k, v in req.headers],
            }
            await respond(
                writer,
                200,
                json.dumps(doc) + "\n",
                keep_alive,
                head_only,
                content_type="application/json",
            )
        elif path == "/bytes":
            await send_bytes(writer, int(req.query.get("n", "0")), keep_alive)
        elif path == "/status":
            status = int(req.query.get("code", "200"))
            await respond(writer, status, f"{VERSION} status {status}\n", keep_alive, head_only)
        elif path == "/exit":
            await respond(writer, 200, f"{VERSION} exiting\n", keep_alive=False)
            log(f"{req.method} {req.target} 200, exiting with code {EXIT_CODE}")
            writer.close()
            os._exit(EXIT_CODE)
        else:
            status = 404
            await respond(writer, 404, f"{VERSION} not found: {path}\n", keep_alive, head_only)
        log(f"{req.method} {req.target} {status}")
        return keep_alive

    # -- WebSocket -------------------------------------------------------
    async def websocket(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        key = req.header("sec-websocket-key")
        if (
            "websocket" not in req.tokens("upgrade")
            or "upgrade" not in req.tokens("connection")
            or not key
            or req.header("sec-websocket-version") != "13"
        ):
            await respond(writer, 400, f"{VERSION} not a websocket handshake\n", keep_alive=False)
            log(f"{req.method} {req.target} 400")
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\nX-App-Version: {VERSION}\r\n\r\n"
            ).encode()
            + ws_frame(0x1, VERSION.encode())
        )
        await writer.drain()
        log(f"{req.method} {req.target} 101")
        self.websockets.add(writer)
        try:
            await ws_echo(reader, writer, self.ws_close_sent)
        finally:
            self.websockets.discard(writer)
            self.ws_close_sent.discard(writer)
        log("websocket closed")


def ws_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


async def ws_read_frame(reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
    b1, b2 = await reader.readexactly(2)
    n = b2 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    if n > MAX_WS_FRAME:
        raise ConnectionError("websocket frame too large")
    mask = await reader.readexactly(4) if b2 & 0x80 else b""
    payload = await reader.readexactly(n)
    if mask and n:
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
        payload = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")
    return bool(b1 & 0x80), b1 & 0x0F, payload


async def ws_echo(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    close_sent: set[asyncio.StreamWriter],
) -> None:
    message_opcode, parts = 0, list[bytes]()
    while True:
        fin, opcode, payload = await ws_read_frame(reader)
        if opcode == 0x8:  # close: answer with the same code (unless we closed first), hang up
            if writer not in close_sent:
                writer.write(ws_frame(0x8, payload[:2]))
                await writer.drain()
            return
        if opcode == 0x9:
            writer.write(ws_frame(0xA, payload))
        elif opcode in (0x1, 0x2, 0x0):
            if opcode:
                message_opcode, parts = opcode, []
            parts.append(payload)
            if fin:
                writer.write(ws_frame(message_opcode, b"".join(parts)))
                parts = []
        await writer.drain()


# -- plain HTTP responses ----------------------------------------------------
def head_bytes(status: int, headers: list[tuple[str, str]], keep_alive: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"X-App-Version: {VERSION}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: str,
    keep_alive: bool,
    head_only: bool = False,
    content_type: str = "text/plain",
) -> None:
    data = body.encode()
    headers = [("Content-Type", content_type), ("Content-Length", str(len(data)))]
    writer.write(head_bytes(status, headers, keep_alive) + (b"" if head_only else data))
    await writer.drain()


async def send_bytes(writer: asyncio.StreamWriter, n: int, keep_alive: bool) -> None:
    headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))]
    writer.write(head_bytes(200, headers, keep_alive))
    piece = b"x" * PIECE
    while n > 0:
        writer.write(piece[:n])
        n -= PIECE
        await writer.drain()
    await writer.drain()


async def sse(req: Request, writer: asyncio.StreamWriter, keep_alive: bool) -> bool:
    n = int(req.query.get("n", "5"))
    interval = float(req.query.get("interval", "0.1"))
    chunked = req.http11
    headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
    headers.append(("Transfer-Encoding", "chunked"))
    if not chunked:
        headers.pop()
        keep_alive = False
    writer.write(head_bytes(200, headers, keep_alive))
    await writer.drain()
    i = 0
    while n <= 0 or i < n:
        if i:
            await asyncio.sleep(interval)
        event = f"id: {i}\ndata: {VERSION} {i}\n\n".encode()
        writer.write(b"%x\r\n%s\r\n" % (len(event), event) if chunked else event)
        await writer.drain()
        i += 1
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    return keep_alive


async def echo(
    req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, keep_alive: bool
) -> None:
    """Stream the body back as it arrives: each piece is written before the next is read."""
    ctype = req.header("content-type") or "application/octet-stream"
    length = req.content_length
    chunked = req.chunked
    headers = [("Content-Type", ctype)]
    headers.append(
        ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(length or 0))
    )
    writer.write(head_bytes(200, headers, keep_alive))
    await writer.drain()
    async for piece in body_chunks(req, reader):
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def main() -> int:
    if os.environ.get("CRASH") == "1":
        print(CRASH_LINE, file=sys.stderr, flush=True)
        return EXIT_CODE
    delay = float(os.environ.get("START_DELAY") or "0")
    if delay > 0:
        # As PID 1 we get no default SIGTERM action: without this, `docker stop` would wait.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        log(f"START_DELAY={delay}, sleeping before listening")
        time.sleep(delay)
    return asyncio.run(App().run())


if __name__ == "__main__":
    sys.exit(main())
