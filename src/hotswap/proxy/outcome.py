"""What happened to one request: filled in by forward(), read by the connection loop.

The connection loop logs it and records the metrics; nothing below it calls back
up to do so.
"""

from __future__ import annotations

from hotswap.proxy.codec import RequestHead
from hotswap.proxy.routes import BackendStats

CLIENT_GONE_STATUS = 499  # nginx's code for a client that went away mid-request


class Outcome:
    """One request's result: status, bytes, the route and backend, and why it failed."""

    __slots__ = (
        "backend",
        "close",
        "connect_error",
        "host",
        "request",
        "request_id",
        "route",
        "sent",
        "started",
        "stats",
        "status",
    )

    def __init__(self, request: RequestHead, started: float) -> None:
        self.request = request
        self.started = started  # time.perf_counter() when the head was parsed
        self.status = 0
        self.sent = 0  # response body bytes written to the client
        self.host = "-"  # the normalised host, once known
        self.route: str | None = None  # the route that answered (None: none did)
        self.backend = "-"  # the backend's name: its container, or external:<address>
        self.stats: BackendStats | None = None  # the backend's counters
        self.request_id: bytes | None = None
        self.connect_error = False  # the backend could not be reached
        self.close = False  # the client connection must close now (nothing more sent)
