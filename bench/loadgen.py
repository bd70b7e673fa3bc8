#!/usr/bin/env python3
"""A small HTTP/1.1 keep-alive load generator (stdlib asyncio), recording every request.

Used by bench/deploy_under_load (imported) and scripts/demo (run as a script):

    python3 bench/loadgen.py --port 8080 --host demo.local --rate 20 --summary FILE

runs until SIGINT/SIGTERM (or --seconds), then writes a JSON summary to FILE:
requests, failed, per-version counts, latency percentiles.

Each worker holds one keep-alive connection and sends paced requests on it
(open loop per worker: a late response delays only that worker). A request is
failed when the status is >= 500, the response is cut short, or it times out.
When the server closed an idle keep-alive connection before sending any byte of
the response, the request is retried once on a new connection, as browsers and
HTTP client libraries do for idempotent requests; retries are counted apart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REQUEST_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0


@dataclass
class Sample:
    start: float  # unix time the request was sent
    latency: float  # seconds until the last byte of the response (or the failure)
    status: int  # 0: no response
    version: str  # body of /version ("v1"), or "slow v1" -> "v1"; "" if none
    kind: str  # "fast" or "slow"
    error: str = ""
    retried: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.status >= 500 or self.status == 0


class ClosedBeforeResponse(Exception):
    """The server closed the connection before any byte of the response."""


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    used: int = 0

    def close(self) -> None:
        self.writer.close()


async def connect(port: int) -> Connection:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), CONNECT_TIMEOUT
    )
    return Connection(reader, writer)


async def read_response(conn: Connection) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one response; ClosedBeforeResponse on an empty EOF."""
    try:
        head = await conn.reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise ClosedBeforeResponse() from exc
        raise
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    keep_alive = "close" not in headers.get("connection", "").lower() and parts[0] == "HTTP/1.1"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int((await conn.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await conn.reader.readuntil(b"\r\n")
                break
            body += await conn.reader.readexactly(size + 2)
            body = body[:-2]
    elif "content-length" in headers:
        body = await conn.reader.readexactly(int(headers["content-length"]))
    else:
        body = await conn.reader.read()
        keep_alive = False
    return status, body, keep_alive


class LoadGen:
    """Paced keep-alive load on `port` with Host `host`; every request becomes a Sample."""

    def __init__(
        self, port: int, host: str, *, rate: float = 200.0, connections: int = 8,
        path: str = "/version", slow_path: str = "/cgi-bin/slow",
    ) -> None:  # fmt: skip
        self.port = port
        self.host = host
        self.rate = rate
        self.connections = connections
        self.path = path
        self.slow_path = slow_path
        self.samples: list[Sample] = []
        self.retries = 0
        self._slow_tasks: set[asyncio.Task[Sample]] = set()

    def _request(self, path: str, close: bool = False) -> bytes:
        extra = "Connection: close\r\n" if close else ""
        return (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: hotswap-bench\r\n{extra}\r\n"
        ).encode()

    async def _exchange(self, conn: Connection, path: str, close: bool) -> tuple[int, bytes, bool]:
        conn.writer.write(self._request(path, close))
        await conn.writer.drain()
        conn.used += 1
        return await read_response(conn)

    async def one(
        self, conn: Connection | None, path: str, kind: str
    ) -> tuple[Sample, Connection | None]:
        """One request (on `conn` if given); returns the sample and the connection to reuse."""
        start_wall, start = time.time(), time.perf_counter()
        retried = False
        close = kind == "slow"
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                if conn is None:
                    conn = await connect(self.port)
                try:
                    status, body, keep = await self._exchange(conn, path, close)
                except (ClosedBeforeResponse, ConnectionResetError, BrokenPipeError):
                    if conn.used <= 1:  # a fresh connection failed: that is a failure
                        raise
                    # The server closed an idle keep-alive connection: retry once, anew.
                    conn.close()
                    self.retries += 1
                    retried = True
                    conn = await connect(self.port)
                    status, body, keep = await self._exchange(conn, path, close)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ClosedBeforeResponse,
                ValueError, IndexError) as exc:  # fmt: skip
            if conn is not None:
                conn.close()
            error = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            elapsed = time.perf_counter() - start
            sample = Sample(start_wall, elapsed, 0, "", kind, error[:120], retried)
            self.samples.append(sample)
            return sample, None
        text = body.decode("utf-8", "replace").strip()
        version = text.removeprefix("slow ").strip() if status < 400 else ""
        elapsed = time.perf_counter() - start
        sample = Sample(start_wall, elapsed, status, version[:20], kind, "", retried)
        self.samples.append(sample)
        if not keep:
            conn.close()
            conn = None
        return sample, conn

    async def _worker(self, index: int, stop: asyncio.Event) -> None:
        interval = self.connections / self.rate
        next_at = time.perf_counter() + interval * index / self.connections
        conn: Connection | None = None
        try:
            while not stop.is_set():
                delay = next_at - time.perf_counter()
                if delay > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
                next_at = max(next_at + interval, time.perf_counter() - interval)
                _, conn = await self.one(conn, self.path, "fast")
        finally:
            if conn is not None:
                conn.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Load until `stop` is set, then wait for the slow requests still running."""
        await asyncio.gather(*(self._worker(i, stop) for i in range(self.connections)))
        if self._slow_tasks:
            await asyncio.gather(*self._slow_tasks, return_exceptions=True)

    def start_slow(self) -> asyncio.Task[Sample]:
        """Start one slow request on its own connection (runs in the background)."""

        async def slow() -> Sample:
            sample, conn = await self.one(None, self.slow_path, "slow")
            if conn is not None:
                conn.close()
            return sample

        task = asyncio.get_running_loop().create_task(slow())
        self._slow_tasks.add(task)
        task.add_done_callback(self._slow_tasks.discard)
        return task


def summarise(samples: list[Sample], retries: int = 0) -> dict[str, Any]:
    versions: dict[str, int] = {}
    for s in samples:
        if not s.failed:
            versions[s.version] = versions.get(s.version, 0) + 1
    latencies = sorted(s.latency for s in samples if not s.failed)

    def pct(p: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000, 2)

    failures = [s for s in samples if s.failed]
    return {
        "requests": len(samples),
        "failed": len(failures),
        "retries": retries,
        "versions": versions,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "failure_sample": [asdict(s) for s in failures[:5]],
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    gen = LoadGen(args.port, args.host, rate=args.rate, connections=args.connections,
                  path=args.path)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.seconds:
        loop.call_later(args.seconds, stop.set)
    await gen.run(stop)
    return summarise(gen.samples, gen.retries)


def main() -> int:
    parser = argparse.ArgumentParser(description="keep-alive HTTP load until SIGINT/SIGTERM")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", required=True, help="Host header")
    parser.add_argument("--path", default="/version")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second in total")
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=0, help="stop after (0: on a signal)")
    parser.add_argument("--summary", type=Path, help="write the JSON summary here")
    args = parser.parse_args()
    summary = asyncio.run(_main(args))
    text = json.dumps(summary, indent=2)
    if args.summary:
        args.summary.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
