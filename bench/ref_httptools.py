"""Reference for bench/throughput: a minimal Trio + httptools HTTP/1.1 keep-alive reverse proxy.

    python bench/ref_httptools.py --listen PORT --backend HOST:PORT [--max-idle N]

What a naive fast proxy does, and nothing more: parse each request with
httptools (llhttp), send it to the one backend over a keep-alive connection
from a small LIFO pool (opened on demand, up to --max-idle kept idle), parse
the response with httptools, answer the client with one send (head and body
together), repeat while both sides keep the connection alive. Bodies are read
whole and sent with a Content-Length; hop-by-hop headers are dropped and
X-Forwarded-For is added (what the nginx reference does too). No limits, no
timeouts, no routing, no accounting, no logging, no streaming; no Upgrade,
no HEAD or 1xx special cases, no response that ends at EOF (an upstream that
fails gives 502). hotswap does all of these; the gap between this row and
hotswap's is their cost, the gap between this row and the byte relay's is the
cost of parsing HTTP at all. Listens on 127.0.0.1 only, prints nothing per
request.

Standalone: the standard library, trio and httptools, nothing from hotswap.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from functools import partial

import httptools
import trio

RECEIVE_SIZE = 64 * 1024
DEFAULT_MAX_IDLE = 256  # like the nginx reference's `keepalive 256` and hotswap's pool
# Not forwarded (RFC 9110 §7.6.1); Content-Length is written anew for the whole body.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)
BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad gateway\n"
)
BAD_REQUEST = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n"
)


class Message:
    """One parsed request or response, whole."""

    __slots__ = ("body", "headers", "keep_alive", "method", "reason", "status", "url")

    def __init__(self) -> None:
        self.url = b""
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.method = b""
        self.status = 0
        self.keep_alive = True


class Collector:
    """httptools callbacks: builds Messages and queues each one once it is complete."""

    def __init__(self) -> None:
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None
        self.current = Message()
        self.complete: deque[Message] = deque()

    def on_message_begin(self) -> None:
        self.current = Message()

    def on_url(self, url: bytes) -> None:
        self.current.url += url  # may come in pieces

    def on_status(self, reason: bytes) -> None:
        self.current.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.current.body.append(body)

    def on_message_complete(self) -> None:
        message, parser = self.current, self.parser
        assert parser is not None
        message.keep_alive = parser.should_keep_alive()
        if isinstance(parser, httptools.HttpRequestParser):
            message.method = parser.get_method()
        else:
            message.status = parser.get_status_code()
        self.complete.append(message)


def request_bytes(request: Message, forwarded_for: bytes) -> bytes:
    parts = [request.method, b" ", request.url, b" HTTP/1.1\r\n"]
    for name, value in request.headers:
        if name.lower() not in HOP_BY_HOP:
            parts += [name, b": ", value, b"\r\n"]
    parts += [b"X-Forwarded-For: ", forwarded_for, b"\r\n"]
    body = b"".join(request.body)
    if body or request.method in (b"POST", b"PUT", b"PATCH"):
        parts.append(b"Content-Length: %d\r\n" % len(body))
    parts += [b"\r\n", body]
    return b"".join(parts)


def response_bytes(response: Message, keep_alive: bool) -> bytes:
    parts = [b"HTTP/1.1 %d " % response.status, response.reason, b"\r\n"]
    for name, value in response.headers:
        if name.lower() not in HOP_BY_HOP:
            parts += [name, b": ", value, b"\r\n"]
    body = b"".join(response.body)
    if response.status not in (204, 304):
        parts.append(b"Content-Length: %d\r\n" % len(body))
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts += [b"\r\n", body]
    return b"".join(parts)


class UpstreamConnection:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.responses = Collector()
        self.parser = httptools.HttpResponseParser(self.responses)
        self.responses.parser = self.parser

    async def exchange(self, request: bytes) -> Message:
        await self.stream.send_all(request)
        while not self.responses.complete:
            data = await self.stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise trio.BrokenResourceError("upstream closed before the response ended")
            self.parser.feed_data(data)
        return self.responses.complete.popleft()


class Pool:
    """Keep-alive connections to the backend: a LIFO of idle ones, new ones on demand."""

    def __init__(self, backend: tuple[str, int], max_idle: int) -> None:
        self.backend = backend
        self.max_idle = max_idle
        self.idle: list[UpstreamConnection] = []

    async def exchange(self, request: bytes) -> Message | None:
        """The backend's response, or None when it failed (the caller answers 502)."""
        if self.idle:
            upstream = self.idle.pop()
        else:
            try:
                upstream = UpstreamConnection(await trio.open_tcp_stream(*self.backend))
            except OSError:
                return None
        try:
            response = await upstream.exchange(request)
        except (trio.BrokenResourceError, trio.ClosedResourceError, httptools.HttpParserError):
            upstream.stream.socket.close()
            return None
        if response.keep_alive and len(self.idle) < self.max_idle:
            self.idle.append(upstream)
        else:
            upstream.stream.socket.close()
        return response


async def serve_client(pool: Pool, client: trio.SocketStream) -> None:
    requests = Collector()
    parser = httptools.HttpRequestParser(requests)
    requests.parser = parser
    async with client:
        try:
            forwarded_for = client.socket.getpeername()[0].encode()
            while data := await client.receive_some(RECEIVE_SIZE):
                try:
                    parser.feed_data(data)
                except httptools.HttpParserUpgrade:
                    return  # not supported here
                except httptools.HttpParserError:
                    await client.send_all(BAD_REQUEST)
                    return
                while requests.complete:
                    request = requests.complete.popleft()
                    response = await pool.exchange(request_bytes(request, forwarded_for))
                    if response is None:
                        await client.send_all(BAD_GATEWAY)
                        return
                    await client.send_all(response_bytes(response, request.keep_alive))
                    if not request.keep_alive:
                        return
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return  # the client is gone (OSError: it reset before getpeername)


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True, metavar="PORT")
    parser.add_argument("--backend", type=parse_address, required=True, metavar="HOST:PORT")
    parser.add_argument("--max-idle", type=int, default=DEFAULT_MAX_IDLE, metavar="N")
    args = parser.parse_args()
    pool = Pool(args.backend, args.max_idle)
    serve = partial(trio.serve_tcp, partial(serve_client, pool), args.listen)
    try:
        trio.run(partial(serve, host="127.0.0.1", backlog=4096))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
