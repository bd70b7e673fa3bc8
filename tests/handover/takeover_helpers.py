"""What the takeover and socket-activation tests share: `hotswap serve` processes, an app
behind them (HTTP with a held /slow, and a WebSocket echo), and a strict keep-alive load.

The load never retries: a refused connect, a reset, a connection closed before its
response, a timeout or a 5xx is a failure. A response with `Connection: close` is
not: the client reconnects, as HTTP asks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h11
import trio
from trio_websocket import WebSocketConnection, WebSocketRequest, serve_websocket

TICK = 0.1  # probing another process (its log, its exit) is the one place we tick
REQUEST_LIMIT = 10.0
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(
    path: Path,
    *,
    proxy: int,
    admin: int,
    external: dict[str, int],
    routes: dict[str, str] | None = None,
    deploy: str = "",
) -> Path:
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{proxy}"',
        f'admin_listen = "127.0.0.1:{admin}"',
        "[docker]",
        f'host = "unix://{path.parent}/no-docker.sock"',  # none: these run without Docker
        "[deploy]",
        deploy,
        "[routes]",
        *(f'"{domain}" = "{image}"' for domain, image in (routes or {}).items()),
        "[external_routes]",
        *(f'"{domain}" = "127.0.0.1:{port}"' for domain, port in external.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Serve:
    """One `hotswap serve` (or a launcher of it) this test started; stopped by its pid."""

    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Serve:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_log(self, text: str, count: int = 1) -> None:
        """Until `text` appears `count` times in the log; fails if the process exits first."""
        while self.log().count(text) < count:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"exited {self.process.returncode} before {text!r}:\n{self.log()}"
                )
            await trio.sleep(TICK)

    async def wait_exit(self) -> int:
        assert self.process is not None
        return await trio.to_thread.run_sync(self.process.wait, abandon_on_cancel=True)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def serve_argv(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hotswap", "serve", "--config", str(config), *extra]


@dataclass
class Processes:
    """Every process a test started, killed (by pid) at teardown if still running."""

    tmp: Path
    started: list[Serve] = field(default_factory=list)

    def serve(self, config: Path, *extra: str, name: str = "serve") -> Serve:
        return self.run(serve_argv(config, *extra), name=name)

    def run(self, argv: list[str], *, name: str) -> Serve:
        serve = Serve(argv, self.tmp / f"{name}-{len(self.started)}.log").start()
        self.started.append(serve)
        return serve

    def cleanup(self) -> None:
        for serve in self.started:
            serve.kill()


# -- the app behind the proxy --------------------------------------------------------


class App:
    """GET / answers "ok"; GET /slow waits for `release`; a WebSocket server echoes."""

    def __init__(self) -> None:
        self.port = 0
        self.ws_port = 0
        self.slow_started = trio.Event()
        self.release = trio.Event()
        self.requests = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            self.port = int(listeners[0].socket.getsockname()[1])
            nursery.start_soon(trio.serve_listeners, self._connection, listeners)
            ws = await nursery.start(serve_websocket, self._echo, "127.0.0.1", 0, None)
            self.ws_port = int(ws.port)
            task_status.started()

    async def _echo(self, request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except Exception:  # the client or the proxy closed it
            return

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = await _next_event(conn, stream)
                if not isinstance(event, h11.Request):
                    return
                while not isinstance(await _next_event(conn, stream), h11.EndOfMessage):
                    pass
                self.requests += 1
                body = b"ok"
                if event.target == b"/slow":
                    self.slow_started.set()
                    await self.release.wait()
                    body = b"slow"
                headers = [("content-length", str(len(body)))]
                data = conn.send(h11.Response(status_code=200, headers=headers))
                data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
                await stream.send_all(data)
                if conn.our_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
            return
        finally:
            await stream.aclose()


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Event:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(65536))
            continue
        assert not isinstance(event, type)  # PAUSED never comes: one cycle at a time
        return event


# -- clients through the proxy ----------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: bytes
    close: bool  # the server said Connection: close


async def request(
    stream: trio.SocketStream, conn: h11.Connection, host: str, target: str = "/"
) -> Reply:
    head = h11.Request(method="GET", target=target, headers=[("Host", host)])
    await stream.send_all(conn.send(head) + conn.send(h11.EndOfMessage()))
    response = await _next_event(conn, stream)
    if isinstance(response, h11.ConnectionClosed):
        raise EOFError("closed before the response")
    assert isinstance(response, h11.Response), response
    body = b""
    while True:
        event = await _next_event(conn, stream)
        if isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            break
        else:
            raise EOFError(f"response cut short: {event!r}")
    close = any(n == b"connection" and v.lower() == b"close" for n, v in response.headers)
    return Reply(response.status_code, body, close)


async def get(port: int, host: str, target: str = "/") -> Reply:
    """One request on a new connection."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        return await request(stream, h11.Connection(h11.CLIENT), host, target)


@dataclass
class Load:
    """Keep-alive workers through the proxy; every outcome counted (see the module doc)."""

    port: int
    host: str
    workers: int = 6
    pause: float = 0.01
    ok: int = 0
    reconnects: int = 0  # after a Connection: close
    failures: list[str] = field(default_factory=list)
    stop: trio.Event = field(default_factory=trio.Event)
    _answered: trio.Event = field(default_factory=trio.Event)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(self.workers):
                nursery.start_soon(self._worker)

    async def grow(self, count: int) -> None:
        """Until `count` more requests have been answered."""
        target = self.ok + count
        while self.ok < target:
            await self._answered.wait()

    async def _worker(self) -> None:
        streams: list[trio.SocketStream] = []
        try:
            await self._requests(streams)
        finally:
            for stream in streams:
                stream.socket.close()

    async def _requests(self, streams: list[trio.SocketStream]) -> None:
        stream: trio.SocketStream | None = None
        conn = h11.Connection(h11.CLIENT)
        while not self.stop.is_set():
            try:
                with trio.fail_after(REQUEST_LIMIT):
                    if stream is None:
                        stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                        streams.append(stream)
                        conn = h11.Connection(h11.CLIENT)
                    reply = await request(stream, conn, self.host)
            except (OSError, trio.BrokenResourceError, trio.TooSlowError, EOFError,
                    h11.ProtocolError) as exc:  # fmt: skip
                self.failures.append(f"{type(exc).__name__}: {exc}")
                if stream is not None:
                    await stream.aclose()
                    streams.remove(stream)
                stream = None
                continue
            if reply.status != 200:
                self.failures.append(f"status {reply.status}: {reply.body[:100]!r}")
            else:
                self.ok += 1
                self._answered.set()
                self._answered = trio.Event()
            if reply.close or conn.our_state is not h11.DONE:
                assert stream is not None
                await stream.aclose()
                streams.remove(stream)
                stream = None
                self.reconnects += 1
            else:
                conn.start_next_cycle()
            await trio.sleep(self.pause)


def served_by(serve: Serve, host: str) -> int:
    """Requests for `host` the process answered 200 (its access log)."""
    return sum(
        1 for line in serve.log().splitlines() if f"host={host} " in line and "status=200" in line
    )


async def websocket_message(ws: WebSocketConnection, text: str) -> str:
    await ws.send_message(text)
    reply = await ws.get_message()
    assert isinstance(reply, str)
    return reply


def launcher_argv(sockets: Sequence[str], command: list[str]) -> list[str]:
    """scripts/socket-activate holding `sockets` ("name=host:port") for `command`."""
    listen = [arg for spec in sockets for arg in ("--listen", spec)]
    return [sys.executable, str(REPO / "scripts" / "socket-activate"), *listen, "--", *command]
