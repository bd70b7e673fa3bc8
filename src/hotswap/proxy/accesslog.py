"""The access log: one line per answered request, in the format server.access_log names.

text      time client=... host=... method=... path=... status=... bytes=...
          duration_ms=... route=... backend=... request_id=...
json      one object per line: time, client, host, method, path, status, bytes,
          duration (seconds), route, container, backend, request_id
combined  Apache/nginx "combined": client - - [time] "request line" status bytes
          "referer" "user-agent"
off       nothing (and nothing is formatted)

Lines are written to stderr in batches (at most FLUSH_INTERVAL late, or when
BATCH_SIZE bytes are waiting), not one write per request: the log costs one
formatting per request and a write per batch. Values that came from the client
are escaped so a line stays one line.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Final

import trio

from hotswap.config import AccessLogFormat
from hotswap.proxy.outcome import Outcome

FLUSH_INTERVAL: Final = 0.2  # seconds a line may wait in the buffer
BATCH_SIZE: Final = 64 * 1024  # bytes that are written at once, without waiting

_MONTHS: Final = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
# Control characters, quotes, backslash and non-ASCII become \xHH (as nginx does).
_ESCAPES: Final = {i: f"\\x{i:02X}" for i in (*range(0x20), 0x22, 0x5C, *range(0x7F, 0x100))}


def _clean(value: bytes) -> str:
    """A client-supplied value as one printable line."""
    return value.decode("latin-1").translate(_ESCAPES)


def _header(outcome: Outcome, name: bytes) -> str:
    for key, value in outcome.request.headers:
        if key == name:
            return _clean(value)
    return "-"


class _Clock:
    """Formatted wall-clock times, the formatting cached per second."""

    __slots__ = ("_combined", "_iso", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._iso = ""
        self._combined = ""

    def _update(self, now: float) -> int:
        second = int(now)
        if second != self._second:
            self._second = second
            utc = time.gmtime(second)
            self._iso = time.strftime("%Y-%m-%dT%H:%M:%S", utc)
            local = time.localtime(second)
            self._combined = (
                f"{local.tm_mday:02d}/{_MONTHS[local.tm_mon - 1]}/{local.tm_year}:"
                + time.strftime("%H:%M:%S %z", local)
            )
        return int((now - second) * 1000)

    def iso(self, now: float) -> str:
        millis = self._update(now)
        return f"{self._iso}.{millis:03d}Z"

    def combined(self, now: float) -> str:
        self._update(now)
        return self._combined


class AccessLog:
    """Formats outcomes and hands the lines to `write` (default: batched stderr)."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self._clock = _Clock()
        self._lines: list[str] = []
        self._size = 0
        self._wake: trio.Event | None = None
        self._write = write if write is not None else self._buffer
        self._formats: dict[str, Callable[[Outcome, str, float], str]] = {
            AccessLogFormat.TEXT: self._text,
            AccessLogFormat.JSON: self._json,
            AccessLogFormat.COMBINED: self._combined,
        }

    def record(self, outcome: Outcome, client: str, fmt: str, duration: float) -> None:
        """Log one request (`duration` seconds) in format `fmt` (an AccessLogFormat value)."""
        formatter = self._formats.get(fmt)
        if formatter is not None:
            self._write(formatter(outcome, client, duration))

    def _text(self, outcome: Outcome, client: str, duration: float) -> str:
        request = outcome.request
        request_id = outcome.request_id
        return (
            f"{self._clock.iso(time.time())} client={client} host={outcome.host} "
            f"method={_clean(request.method)} path={_clean(request.target)} "
            f"status={outcome.status} bytes={outcome.sent} duration_ms={duration * 1000:.1f} "
            f"route={outcome.route or '-'} backend={outcome.backend} "
            f"request_id={_clean(request_id) if request_id else '-'}\n"
        )

    def _json(self, outcome: Outcome, client: str, duration: float) -> str:
        request = outcome.request
        request_id = outcome.request_id
        external = outcome.backend.startswith("external:")
        container = outcome.backend if outcome.route and not external else None
        entry = {
            "time": self._clock.iso(time.time()),
            "client": client,
            "host": outcome.host,
            "method": request.method.decode("latin-1"),
            "path": request.target.decode("latin-1"),
            "status": outcome.status,
            "bytes": outcome.sent,
            "duration": round(duration, 6),
            "route": outcome.route,
            "container": container,
            "backend": outcome.backend if outcome.route else None,
            "request_id": request_id.decode("latin-1") if request_id else None,
        }
        return json.dumps(entry, ensure_ascii=False) + "\n"

    def _combined(self, outcome: Outcome, client: str, duration: float) -> str:
        request = outcome.request
        line = b"%s %s HTTP/%s" % (request.method, request.target, request.http_version)
        size = str(outcome.sent) if outcome.sent else "-"
        return (
            f'{client} - - [{self._clock.combined(time.time())}] "{_clean(line)}" '
            f'{outcome.status} {size} "{_header(outcome, b"referer")}" '
            f'"{_header(outcome, b"user-agent")}"\n'
        )

    # -- the default sink: stderr in batches -------------------------------------------

    def _buffer(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= BATCH_SIZE:
            self.flush()
        elif self._wake is not None:
            self._wake.set()
            self._wake = None

    def flush(self) -> None:
        """Write what is buffered (also at shutdown)."""
        if self._lines:
            data = "".join(self._lines)
            self._lines.clear()
            self._size = 0
            try:
                sys.stderr.write(data)
                sys.stderr.flush()
            except (OSError, ValueError):  # stderr closed: logging has nowhere to go
                pass

    async def run(self) -> None:
        """Flush the buffer at most FLUSH_INTERVAL after a line arrives; until cancelled."""
        try:
            while True:
                if not self._lines:
                    self._wake = trio.Event()
                    await self._wake.wait()
                await trio.sleep(FLUSH_INTERVAL)
                self.flush()
        finally:
            self.flush()
            self._wake = None

    def __repr__(self) -> str:
        return f"AccessLog(buffered={len(self._lines)})"
