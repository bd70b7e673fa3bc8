"""A route's container logs for GET /v1/logs/{route}, following the route across deploys.

The stream is NDJSON, one object per line:

    {"event": "container", "container": NAME, "id": ID, "image": REF}   the lines that follow
                                                                        are this container's
    {"container": NAME, "time": UNIX, "line": TEXT}                     one log line

Without `follow` it is the current container's log (the last `tail` lines, those since
`since`), then the end. With `follow` it goes on as the route changes: when the
container's log ends (it was stopped after a deploy, or it exited), the stream goes
on with the container the route serves then, from that container's first line (a new
one; its lines from before the switch included) or from where it stopped (the same
one, restarted by Docker). Waiting for that is event-driven (RouteTable changes).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urlsplit

import trio

from hotswap.admin.router import HttpError
from hotswap.errors import HotswapError
from hotswap.proxy.routes import RouteTable
from hotswap.runtime.base import LogLine
from hotswap.units import parse_duration

# A log that ended while its container still serves, with no route change (a daemon
# hiccup): look again after this long instead of waiting for a change forever.
RETRY_AFTER: Final = 5.0


class NoContainerError(HotswapError):
    """The route has no container to show the logs of."""

    http_status = 404


class LogSource(Protocol):
    def open_logs(
        self, container_id: str, *, follow: bool, tail: int | None, since: float | None
    ) -> AbstractAsyncContextManager[AsyncIterator[LogLine]]: ...


@dataclass(frozen=True)
class LogQuery:
    """?follow=1&tail=N&since=DURATION of GET /v1/logs/{route}."""

    follow: bool = False
    tail: int | None = None  # None: every line
    since: float | None = None  # unix time; None: from the first line


def parse_log_query(target: str, now: float | None = None) -> LogQuery:
    """The options in the request target's query; HttpError 400 for a bad one."""
    query = parse_qs(urlsplit(target).query)
    since_text = query.get("since", [""])[-1]
    try:
        ago = parse_duration(since_text) if since_text else None
    except ValueError as exc:
        raise HttpError(400, f"since: {exc}") from None
    now = time.time() if now is None else now
    return LogQuery(
        follow=_flag(query, "follow"),
        tail=_count(query, "tail"),
        since=None if ago is None else now - ago,
    )


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    value = query.get(name, ["0"])[-1].lower()
    if value not in ("1", "true", "yes", "0", "false", "no", ""):
        raise HttpError(400, f"{name}: expected 1 or 0, got {value!r}")
    return value in ("1", "true", "yes")


def _count(query: Mapping[str, list[str]], name: str) -> int | None:
    values = query.get(name)
    if not values or values[-1] in ("", "all"):
        return None
    if not (values[-1].isascii() and values[-1].isdigit()):  # "²".isdigit() is true
        raise HttpError(400, f"{name}: expected a number of lines, got {values[-1]!r}")
    return int(values[-1])


Emit = Callable[[dict[str, Any]], Awaitable[None]]


async def route_logs(
    routes: RouteTable,
    source: LogSource,
    route: str,
    *,
    follow: bool,
    tail: int | None,
    since: float | None,
    emit: Emit,
) -> None:
    """Hand each NDJSON object of the route's logs to `emit` (see the module doc); returns at
    the end of the log (never with `follow`). A coroutine, not an async generator: the log
    source keeps a task open while it reads."""
    last: dict[str, tuple[int, int]] = {}  # container id -> stamp of the last line sent
    shown: str | None = None  # the container whose lines are being sent
    while True:
        changed = routes.next_change()  # taken before reading: no change can slip by
        backend = routes.get(route)
        container_id = backend.container_id if backend is not None else None
        if backend is None or container_id is None:
            if not follow:
                raise NoContainerError(f"no container serves {route}")
            await changed.wait()
            continue
        if container_id != shown:
            shown = container_id
            await emit(
                {
                    "event": "container",
                    "container": backend.name,
                    "id": container_id,
                    "image": backend.image,
                }
            )
        seen = last.get(container_id)
        first = not last
        if first:
            # Lines from before now are left to tail and since: if none is sent before the
            # log ends (a quiet container restarting), it resumes from now, never earlier.
            last[container_id] = _stamp(time.time())
        last.setdefault(container_id, (0, 0))
        # Again the same container (restarted): from where it stopped, to the second.
        start = since if first else (float(seen[0]) if seen else None)
        opened = source.open_logs(
            container_id, follow=follow, tail=tail if first else None, since=start
        )
        async with opened as lines:
            async for line in lines:
                if seen is not None and line.stamp <= seen:
                    continue  # sent before the restart
                last[container_id] = line.stamp
                await emit(
                    {
                        "container": backend.name,
                        "time": line.stamp[0] + line.stamp[1] / 1e9,
                        "line": line.text,
                    }
                )
        if not follow:
            return
        if routes.get(route) is backend:
            with trio.move_on_after(RETRY_AFTER):
                await changed.wait()


def _stamp(unix: float) -> tuple[int, int]:
    """A LogLine stamp (seconds, nanoseconds) of the unix time `unix`."""
    seconds = int(unix)
    return seconds, int((unix - seconds) * 1e9)
