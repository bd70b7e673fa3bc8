"""The listening sockets of one `serve`, by name, wherever they came from.

    proxy   server.listen   (two sockets for "localhost": 127.0.0.1 and ::1)
    https   tls.listen
    admin   server.admin_listen

`serve` binds them itself, or inherits them: from the process it takes over
(takeover.py) or from systemd (activation.py). A name that was not inherited is
bound as usual. The servers only accept on what they are given, so the sockets
outlive any one accept loop: closing our descriptor of a socket another process
also holds closes nothing for that process, and connections waiting in the
shared backlog stay there for whoever accepts next.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import trio

from hotswap.config import Address, Config

log = logging.getLogger(__name__)

PROXY: Final = "proxy"
HTTPS: Final = "https"
ADMIN: Final = "admin"
NAMES: Final = (PROXY, HTTPS, ADMIN)


def configured(config: Config) -> dict[str, Address]:
    """The address each name listens on per `config` (no https without tls.listen)."""
    out = {PROXY: config.server.listen, ADMIN: config.server.admin_listen}
    if config.tls.listen is not None:
        out[HTTPS] = config.tls.listen
    return out


@dataclass
class ListenSockets:
    """Listening sockets by name, and where each name's came from ("bound", "takeover",
    "systemd")."""

    listeners: dict[str, list[trio.SocketListener]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    @classmethod
    def adopt(cls, named: Sequence[tuple[str, socket.socket]], origin: str) -> ListenSockets:
        """Wrap inherited stdlib sockets (listening, SOCK_STREAM); ValueError otherwise."""
        out = cls()
        for name, sock in named:
            if name not in NAMES:
                raise ValueError(f"unknown socket name {name!r} (expected one of {NAMES})")
            listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
            out.listeners.setdefault(name, []).append(listener)
            out.origin[name] = origin
        return out

    def get(self, name: str) -> list[trio.SocketListener] | None:
        return self.listeners.get(name)

    def named(self) -> Iterator[tuple[str, trio.SocketListener]]:
        for name in NAMES:
            for listener in self.listeners.get(name, []):
                yield name, listener

    def fds(self) -> tuple[list[str], list[int]]:
        """Names and descriptors of every socket, in the same order (for a takeover offer)."""
        names, fds = [], []
        for name, listener in self.named():
            names.append(name)
            fds.append(listener.socket.fileno())
        return names, fds

    def close(self) -> None:
        """Close our descriptors (another process holding the sockets keeps them open)."""
        for _, listener in self.named():
            listener.socket.close()

    async def bind_missing(self, config: Config) -> None:
        """Bind every configured name that was not inherited; close inherited names the
        config does not use (an https socket without tls.listen)."""
        wanted = configured(config)
        for name in list(self.listeners):
            if name not in wanted:
                log.warning("inherited a %s socket the config does not use; closing it", name)
                for listener in self.listeners.pop(name):
                    listener.socket.close()
        for name, address in wanted.items():
            if name in self.listeners:
                bound = describe(self.listeners[name])
                log.info(
                    "listening on inherited sockets name=%s from=%s address=%s",
                    name,
                    self.origin.get(name, "?"),
                    bound,
                )
                continue
            self.listeners[name] = await trio.open_tcp_listeners(address.port, host=address.host)
            self.origin[name] = "bound"


def describe(listeners: Sequence[trio.SocketListener]) -> str:
    """The bound addresses, for logs: "127.0.0.1:8080,[::1]:8080"."""
    parts = []
    for listener in listeners:
        try:
            host, port = listener.socket.getsockname()[:2]
        except (OSError, ValueError):
            parts.append("?")
            continue
        parts.append(str(Address(str(host), int(port))))
    return ",".join(parts)
