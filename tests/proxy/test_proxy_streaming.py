"""Bodies stream both ways: memory does not grow with the size of a body."""

from __future__ import annotations

import re
from pathlib import Path

import h11
from proxy_helpers import Client, Exchange, harness

SIZE = 256 * 1024 * 1024  # stands in for the 1 GiB of the requirement
CHUNK = b"\0" * (1024 * 1024)
# Allowed RSS growth while 256 MiB pass: buffers of a few chunks, allocator slack.
MAX_GROWTH = 48 * 1024 * 1024


def rss() -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    assert match is not None
    return int(match.group(1)) * 1024


async def test_large_download_streams_with_bounded_memory() -> None:
    async def big(ex: Exchange) -> None:
        await ex.send_head(200, [(b"content-length", str(SIZE).encode())])
        for _ in range(SIZE // len(CHUNK)):
            await ex.send_data(CHUNK)
        await ex.end()

    async with harness(limit=180) as h:
        h.route("app.test", await h.upstream(big))
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            await client.send_request("GET", "/big", "app.test")
            start = rss()
            peak = start
            received = 0
            next_sample = 0
            while True:
                event = await client._next()
                if isinstance(event, h11.Data):
                    received += len(event.data)
                    if received >= next_sample:
                        peak = max(peak, rss())
                        next_sample += 8 * 1024 * 1024
                elif isinstance(event, h11.EndOfMessage):
                    break
        assert received == SIZE
        assert peak - start < MAX_GROWTH, f"RSS grew by {(peak - start) >> 20} MiB"


async def test_large_upload_streams_with_bounded_memory() -> None:
    samples: list[int] = []

    async def sink(ex: Exchange) -> None:
        total = 0
        next_sample = 0
        async for chunk in ex.body_chunks():
            total += len(chunk)
            if total >= next_sample:
                samples.append(rss())
                next_sample += 8 * 1024 * 1024
        await ex.respond(200, str(total).encode())

    async with harness(limit=180) as h:
        h.route("app.test", await h.upstream(sink))
        proxy = await h.proxy(max_body_size=0)
        async with Client.connect(proxy.port) as client:
            start = rss()
            headers = [(b"host", b"app.test"), (b"content-length", str(SIZE).encode())]
            conn = client.conn
            await client.stream.send_all(
                conn.send(h11.Request(method="PUT", target="/up", headers=headers)) or b""
            )
            for _ in range(SIZE // len(CHUNK)):
                await client.stream.send_all(conn.send(h11.Data(data=CHUNK)) or b"")
            await client.stream.send_all(conn.send(h11.EndOfMessage()) or b"")
            resp = await client.read_response()
        assert resp.body == str(SIZE).encode()
        assert max(samples) - start < MAX_GROWTH, f"RSS grew by {(max(samples) - start) >> 20} MiB"
