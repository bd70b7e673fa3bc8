"""Free loopback ports for containers on the host network (network_mode = "host").

The app of such a container listens on 127.0.0.1:$PORT, so hotswap picks $PORT.
Two rules: a port is never handed out twice while a container holds it (from
allocation until the container is removed; ports of containers found running,
e.g. adopted after a restart, are noted too), and it must be free on the host
when handed out (a bind probe). Ports are drawn at random from a range below
the kernel's ephemeral range, so they can't collide with the local port of an
outgoing connection (the proxy's own upstream connections use that range).
"""

from __future__ import annotations

import errno
import logging
import random
import socket
from collections.abc import Callable
from pathlib import Path

from hotswap.errors import ContainerRuntimeError

log = logging.getLogger(__name__)

DEFAULT_RANGE = (20000, 32767)
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
MAX_ATTEMPTS = 200


def port_is_free(port: int) -> bool:
    """True if nothing is bound to `port` on any IPv4 address of this host.

    Binding the wildcard address without SO_REUSEADDR fails if any address holds
    the port (or a connection lingers in TIME_WAIT on it), the strictest check.
    Nothing listens and no packet is sent.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def default_range(ephemeral_file: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """DEFAULT_RANGE, cut below the kernel's ephemeral range if that starts lower."""
    low, high = DEFAULT_RANGE
    try:
        ephemeral_low = int(ephemeral_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return low, high
    if ephemeral_low - 1 >= low + 100:
        high = min(high, ephemeral_low - 1)
    return low, high


class PortAllocator:
    """Hands out host ports and remembers who holds them. Synchronous and cheap
    (a bind probe is one syscall), so it runs on the Trio thread with no lock."""

    def __init__(
        self,
        port_range: tuple[int, int] | None = None,
        *,
        is_free: Callable[[int], bool] = port_is_free,
        rng: random.Random | None = None,
    ) -> None:
        self._low, self._high = port_range or default_range()
        self._is_free = is_free
        self._rng = rng or random.Random()
        self._owner: dict[int, str] = {}  # port -> container id ("" until created)

    @property
    def reserved(self) -> frozenset[int]:
        return frozenset(self._owner)

    def allocate(self) -> int:
        """A port no container holds and nothing on the host is bound to; it stays
        reserved until release()/release_owner()."""
        for _ in range(MAX_ATTEMPTS):
            port = self._rng.randint(self._low, self._high)
            if port not in self._owner and self._is_free(port):
                self._owner[port] = ""
                return port
        raise ContainerRuntimeError(
            f"no free loopback port found in {self._low}-{self._high} "
            f"after {MAX_ATTEMPTS} attempts ({len(self._owner)} reserved by hotswap)"
        )

    def assign(self, port: int, owner: str) -> None:
        """Record that container `owner` holds `port` (a new one, or one found running)."""
        previous = self._owner.get(port)
        if previous and previous != owner:
            log.warning(
                "host port claimed twice port=%d container=%s other=%s",
                port,
                owner[:12],
                previous[:12],
            )
        self._owner[port] = owner

    def release(self, port: int) -> None:
        self._owner.pop(port, None)

    def release_owner(self, owner: str) -> None:
        for port in [p for p, o in self._owner.items() if o == owner]:
            del self._owner[port]
