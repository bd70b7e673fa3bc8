"""Reference for bench/throughput: a minimal Trio TCP byte relay, the ceiling of one Trio process.

    python bench/ref_relay.py --listen PORT --backend HOST:PORT

One upstream connection per client connection, bytes copied both ways as they
come, no HTTP parsing, no limits, no timeouts. Whatever a Trio proxy does on top
of moving bytes (parsing, routing, accounting) costs throughput below this row.
It listens on 127.0.0.1 only and prints nothing per connection.

Standalone: the standard library and trio, nothing from hotswap.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import trio

RECEIVE_SIZE = 64 * 1024


async def copy(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    """Copy until `source` ends, then pass the end on (half-close) so the peer sees it."""
    try:
        while data := await source.receive_some(RECEIVE_SIZE):
            await sink.send_all(data)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        # One side is gone: stop both directions (the caller closes both streams).
        await source.aclose()
        await sink.aclose()


async def relay(backend: tuple[str, int], client: trio.SocketStream) -> None:
    try:
        upstream = await trio.open_tcp_stream(*backend)
    except OSError:
        await client.aclose()
        return
    async with client, upstream, trio.open_nursery() as nursery:
        nursery.start_soon(copy, client, upstream)
        nursery.start_soon(copy, upstream, client)


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


async def main_async(listen: int, backend: tuple[str, int]) -> None:
    # trio's SocketStream sets TCP_NODELAY on accepted and connected sockets itself.
    await trio.serve_tcp(partial(relay, backend), listen, host="127.0.0.1", backlog=4096)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True, metavar="PORT")
    parser.add_argument("--backend", type=parse_address, required=True, metavar="HOST:PORT")
    args = parser.parse_args()
    try:
        trio.run(main_async, args.listen, args.backend)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
