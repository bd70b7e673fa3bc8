"""Test backends and clients for the proxy tests: small Trio servers on loopback.

Upstream       an h11 backend running `handler(exchange)` per request
RawUpstream    a plain-socket backend running `handler(stream)` per connection
start_proxy    serve_proxy on 127.0.0.1:0 with a RouteTable
Client         an h11 client over one connection (keep-alive aware)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import h11
import trio

from hotswap.config import Address, HttpParser, ServerConfig
from hotswap.proxy.accesslog import AccessLog
from hotswap.proxy.routes import Backend, RouteTable
from hotswap.proxy.server import ProxyServer, serve_proxy

HOST = "127.0.0.1"
Headers = list[tuple[bytes, bytes]]
# The codec the proxy tests run with; tests/proxy/conftest.py runs each test once per codec.
PARSER: list[HttpParser] = [HttpParser.FAST]


async def next_event(conn: h11.Connection, stream: trio.SocketStream) -> h11.Event:
    """The next h11 event of `conn`, reading from `stream` as long as it needs data."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
            continue
        return event  # type: ignore[return-value]


class Exchange:
    """One request as seen by a test backend."""

    def __init__(self, conn: h11.Connection, stream: trio.SocketStream, request: h11.Request):
        self.conn = conn
        self.stream = stream
        self.request = request
        self.headers: dict[bytes, bytes] = {}
        for name, value in request.headers:
            self.headers.setdefault(bytes(name), bytes(value))
        self.header_list = [(bytes(n), bytes(v)) for n, v in request.headers]

    async def _next(self) -> h11.Event:
        return await next_event(self.conn, self.stream)

    async def body_chunks(self) -> AsyncIterator[bytes]:
        while True:
            event = await self._next()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            else:
                return

    async def read_body(self) -> bytes:
        return b"".join([chunk async for chunk in self.body_chunks()])

    async def send_head(self, status: int = 200, headers: Headers | None = None) -> None:
        data = self.conn.send(h11.Response(status_code=status, headers=headers or []))
        await self.stream.send_all(data or b"")

    async def send_data(self, data: bytes) -> None:
        await self.stream.send_all(self.conn.send(h11.Data(data=data)) or b"")

    async def end(self) -> None:
        await self.stream.send_all(self.conn.send(h11.EndOfMessage()) or b"")

    async def respond(
        self, status: int = 200, body: bytes = b"", headers: Headers | None = None
    ) -> None:
        headers = list(headers or [])
        if not any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in headers):
            headers.append((b"content-length", str(len(body)).encode()))
        await self.send_head(status, headers)
        if body:
            await self.send_data(body)
        await self.end()


Handler = Callable[[Exchange], Awaitable[None]]


async def echo_handler(ex: Exchange) -> None:
    """Answers with the request body, and the request's path in X-Path."""
    body = await ex.read_body()
    await ex.respond(200, body, [(b"x-path", ex.request.target)])


class _Listening:
    """A test backend on a free loopback port; `_connection(stream)` serves each one."""

    port: int

    @property
    def address(self) -> Address:
        return Address(HOST, self.port)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host=HOST)
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        raise NotImplementedError


@dataclasses.dataclass
class Upstream(_Listening):
    """An h11 test backend: counts connections and requests."""

    handler: Handler = echo_handler
    name: str = "up"
    port: int = 0
    connections: int = 0
    requests: list[Exchange] = dataclasses.field(default_factory=list)
    open_streams: set[trio.SocketStream] = dataclasses.field(default_factory=set)

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        self.open_streams.add(stream)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    ex = Exchange(conn, stream, event)
                    self.requests.append(ex)
                    await self.handler(ex)
                    if conn.our_state is h11.SWITCHED_PROTOCOL:
                        return
                    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                        conn.start_next_cycle()
                        continue
                    return
                return
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            self.open_streams.discard(stream)
            await stream.aclose()


@dataclasses.dataclass
class RawUpstream(_Listening):
    """A plain-socket backend: `handler(stream)` runs once per connection."""

    handler: Callable[[trio.SocketStream], Awaitable[None]]
    port: int = 0
    connections: int = 0

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            await self.handler(stream)
        except trio.BrokenResourceError:
            pass
        finally:
            await stream.aclose()


async def start_upstream(nursery: trio.Nursery, upstream: Upstream | RawUpstream) -> None:
    await nursery.start(upstream.run)


def make_config(**overrides: object) -> ServerConfig:
    base = ServerConfig(listen=Address(HOST, 0), http_parser=PARSER[0])
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


async def start_proxy(
    nursery: trio.Nursery,
    routes: RouteTable,
    config: ServerConfig | None = None,
    access_log: AccessLog | None = None,
) -> ProxyServer:
    cfg = config or make_config()
    server: ProxyServer = await nursery.start(
        functools.partial(serve_proxy, access_log=access_log), lambda: cfg, routes
    )
    return server


def route(
    routes: RouteTable, domain: str, upstream: Upstream | RawUpstream, name: str = "b1"
) -> Backend:
    backend = Backend(upstream.address, name=name)
    routes.switch(domain, backend)
    return backend


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    header_list: Headers
    body: bytes
    http_version: bytes = b"1.1"


class Client:
    """An h11 client over one connection; `request()` can be called again (keep-alive)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    @asynccontextmanager
    async def connect(cls, port: int) -> AsyncIterator[Client]:
        stream = await trio.open_tcp_stream(HOST, port)
        try:
            yield cls(stream)
        finally:
            await stream.aclose()

    async def _next(self) -> h11.Event:
        return await next_event(self.conn, self.stream)

    async def send_request(
        self,
        method: str,
        target: str,
        host: str,
        headers: Headers | None = None,
        body: bytes | None = None,
    ) -> None:
        hdrs: Headers = [(b"host", host.encode()), *(headers or [])]
        if body is not None and not any(n == b"transfer-encoding" for n, _ in hdrs):
            hdrs.append((b"content-length", str(len(body)).encode()))
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        data = self.conn.send(h11.Request(method=method, target=target, headers=hdrs)) or b""
        if body:
            data += self.conn.send(h11.Data(data=body)) or b""
        data += self.conn.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)

    async def read_response(self) -> Response:
        while True:
            event = await self._next()
            if isinstance(event, h11.Response):
                break
        head = event
        chunks = []
        while True:
            event = await self._next()
            if isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
        headers = [(bytes(n), bytes(v)) for n, v in head.headers]
        return Response(
            head.status_code, dict(headers), headers, b"".join(chunks), head.http_version
        )

    async def request(
        self,
        method: str,
        target: str,
        host: str,
        headers: Headers | None = None,
        body: bytes | None = None,
    ) -> Response:
        await self.send_request(method, target, host, headers, body)
        return await self.read_response()


async def fetch(
    port: int,
    method: str,
    target: str,
    host: str,
    headers: Headers | None = None,
    body: bytes | None = None,
) -> Response:
    async with Client.connect(port) as client:
        return await client.request(method, target, host, headers, body)


async def raw_exchange(port: int, data: bytes, *, limit: float = 10.0) -> bytes:
    """Send `data`, read until the proxy closes the connection, return all of it."""
    stream = await trio.open_tcp_stream(HOST, port)
    chunks = []
    try:
        await stream.send_all(data)
        with trio.fail_after(limit):
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
    finally:
        await stream.aclose()
    return b"".join(chunks)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


FOREVER = math.inf


@dataclasses.dataclass
class Harness:
    """A nursery, a route table, and the backends to close at the end of a test."""

    nursery: trio.Nursery
    routes: RouteTable
    backends: list[Backend] = dataclasses.field(default_factory=list)
    access_lines: list[str] = dataclasses.field(default_factory=list)  # the access log

    async def upstream(self, handler: Handler = echo_handler) -> Upstream:
        up = Upstream(handler)
        await self.nursery.start(up.run)
        return up

    async def raw_upstream(
        self, handler: Callable[[trio.SocketStream], Awaitable[None]]
    ) -> RawUpstream:
        up = RawUpstream(handler)
        await self.nursery.start(up.run)
        return up

    def route(self, domain: str, upstream: Upstream | RawUpstream, name: str = "b1") -> Backend:
        backend = Backend(upstream.address, name=name)
        self.backends.append(backend)
        self.routes.switch(domain, backend)
        return backend

    async def proxy(self, **config: object) -> ProxyServer:
        access_log = AccessLog(self.access_lines.append)
        return await start_proxy(self.nursery, self.routes, make_config(**config), access_log)


@asynccontextmanager
async def harness(limit: float = 10.0) -> AsyncIterator[Harness]:
    """Everything a proxy test needs, torn down (backends closed) within `limit` seconds."""
    with trio.fail_after(limit):
        async with trio.open_nursery() as nursery:
            h = Harness(nursery, RouteTable())
            try:
                yield h
            finally:
                for backend in h.backends:
                    backend.close()
                nursery.cancel_scope.cancel()


async def wait_for_requests(backend: Backend, count: int) -> None:
    """Until `count` requests are in flight on `backend` (woken by its change events)."""
    while backend.inflight.requests < count:
        with trio.move_on_after(0.05):
            await backend.inflight.wait_change()


async def until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait (briefly sleeping) until `predicate()` holds; for state of other processes."""
    with trio.fail_after(limit):
        for _ in range(int(limit * 100) + 1):
            if predicate():
                return
            await trio.sleep(0.01)
