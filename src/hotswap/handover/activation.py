"""systemd socket activation: listening sockets passed as LISTEN_FDS (sd_listen_fds(3)).

systemd (a hotswap.socket unit) binds the addresses and keeps them while the
service restarts, so a connection that arrives between the old process and the
new one waits in the backlog instead of being refused. The service gets them as
descriptors 3, 4, ... with

    LISTEN_PID      our pid (otherwise they are not meant for us: ignored)
    LISTEN_FDS      how many
    LISTEN_FDNAMES  their names, ":"-separated (the socket unit's FileDescriptorName=)

Named "proxy", "https" or "admin", a socket is used for that; any other name (the
default is the unit's name) is matched by its port against server.listen,
tls.listen and server.admin_listen. A name the sockets do not cover is bound as
usual. The variables are removed from our environment, as sd_listen_fds() does, so
no child process takes the sockets for its own.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Final

from hotswap.config import Config
from hotswap.errors import ConfigError
from hotswap.handover.listeners import NAMES, ListenSockets, configured

LISTEN_FDS_START: Final = 3  # SD_LISTEN_FDS_START
_VARIABLES: Final = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


@dataclass(frozen=True)
class Passed:
    """One passed descriptor: its number, its name, and the port it is bound to (if TCP)."""

    fd: int
    name: str
    port: int | None = None


def passed_fds(environ: Mapping[str, str], pid: int) -> list[Passed] | None:
    """The descriptors systemd passed to `pid`, or None when it passed none to us."""
    if "LISTEN_FDS" not in environ:
        return None
    try:
        target = int(environ.get("LISTEN_PID", ""))
        count = int(environ["LISTEN_FDS"])
    except ValueError as exc:
        raise ConfigError(f"socket activation: bad LISTEN_PID / LISTEN_FDS: {exc}") from exc
    if target != pid:
        return None  # meant for another process (a parent that did not clear them)
    if count < 0:
        raise ConfigError(f"socket activation: bad LISTEN_FDS={count}")
    names = environ.get("LISTEN_FDNAMES", "")
    split = names.split(":") if names else []
    return [
        Passed(LISTEN_FDS_START + i, split[i] if i < len(split) else "unknown")
        for i in range(count)
    ]


def assign(passed: Sequence[Passed], config: Config) -> list[tuple[str, int]]:
    """(our name, fd) for each passed socket: by name, else by port; ConfigError when one
    matches nothing (or several names)."""
    by_port: dict[int, list[str]] = {}
    for name, address in configured(config).items():
        by_port.setdefault(address.port, []).append(name)
    out: list[tuple[str, int]] = []
    problems: list[str] = []
    for item in passed:
        if item.name in NAMES:
            out.append((item.name, item.fd))
            continue
        names = by_port.get(item.port, []) if item.port is not None else []
        if len(names) == 1:
            out.append((names[0], item.fd))
        else:
            where = f"port {item.port}" if item.port is not None else "no TCP port"
            problems.append(
                f"socket activation: descriptor {item.fd} (name {item.name!r}, {where}) "
                f"matches {'several' if names else 'none'} of server.listen, tls.listen, "
                "server.admin_listen; name it with FileDescriptorName=proxy, https or admin"
            )
    if problems:
        raise ConfigError(problems)
    return out


def inherit_from_systemd(
    config: Config, environ: MutableMapping[str, str] | None = None
) -> ListenSockets | None:
    """The listening sockets systemd passed us, or None; clears LISTEN_* from `environ`."""
    env = os.environ if environ is None else environ
    passed = passed_fds(env, os.getpid())
    for key in _VARIABLES:
        env.pop(key, None)
    if passed is None:
        return None
    checked: list[Passed] = []
    sockets: dict[int, socket.socket] = {}
    try:
        for item in passed:
            sock = socket.socket(fileno=item.fd)
            sockets[item.fd] = sock
            os.set_inheritable(item.fd, False)  # not for our children (close-on-exec)
            _check_listening(sock, item)
            port = None
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                port = int(sock.getsockname()[1])
            checked.append(Passed(item.fd, item.name, port))
        named = [(name, sockets[fd]) for name, fd in assign(checked, config)]
        return ListenSockets.adopt(named, "systemd")
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise


def _check_listening(sock: socket.socket, item: Passed) -> None:
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        raise ConfigError(
            f"socket activation: descriptor {item.fd} ({item.name!r}) is not a listening "
            "stream socket (the socket unit needs ListenStream= and Accept=no)"
        )
