"""The takeover socket: a SOCK_SEQPACKET Unix socket in the state directory, and messages
with descriptors over it (what socket.send_fds / recv_fds do, on trio sockets).

    <state dir>/takeover-<instance key>.sock     mode 0600, in a 0700 directory

The key comes from the config file's path (statedir.instance_key), so a `serve
--takeover` with the same config finds it and two instances with different
configs never meet. A process that starts listening there replaces the file
atomically (bind under a temporary name, then rename): a stale file left by a
killed process is simply replaced, and the successor of a takeover takes the
name while its predecessor still drains. A process removes the file at exit only
if it is still its own.
"""

from __future__ import annotations

import array
import errno
import logging
import os
import socket
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import trio

from hotswap.errors import TakeoverError
from hotswap.handover.protocol import MAX_FDS, MAX_MESSAGE, Message, ProtocolViolation
from hotswap.handover.protocol import decode as decode_message
from hotswap.handover.protocol import encode as encode_message
from hotswap.statedir import ensure_private_dir, instance_key

log = logging.getLogger(__name__)

MAX_PATH: Final = 107  # sun_path holds 108 bytes with the terminating NUL
_FD_SIZE: Final = array.array("i").itemsize
_PEERCRED: Final = struct.Struct("3i")  # struct ucred: pid, uid, gid


class TakeoverSocketError(TakeoverError):
    """The takeover socket cannot be used (path too long, no old process, I/O failed)."""


def socket_path(state_dir: Path, config_path: Path | None) -> Path:
    """Where the `serve` of `config_path` listens for takeovers."""
    return state_dir / f"takeover-{instance_key(config_path)}.sock"


def _check_length(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_PATH:
        raise TakeoverSocketError(
            f"takeover socket path too long for a Unix socket ({path}); set "
            "HOTSWAP_STATE_DIR to a shorter directory"
        )


class Channel:
    """One takeover connection: whole messages, with descriptors when a message has them."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.socket = sock

    async def send(self, message: Message, fds: Sequence[int] = ()) -> None:
        ancillary = []
        if fds:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        await self.socket.sendmsg([encode_message(message)], ancillary)

    async def receive(self) -> Message | None:
        """The next message; None at EOF. Descriptors that came with it are closed (only
        an offer carries any: receive_with_fds)."""
        message, fds = await self.receive_with_fds()
        close_fds(fds)
        return message

    async def receive_with_fds(self) -> tuple[Message | None, list[int]]:
        """The next message and the descriptors that came with it; (None, []) at EOF.

        Received descriptors are close-on-exec; the caller owns (and must close) them.
        """
        data, ancillary, flags, _ = await self.socket.recvmsg(
            MAX_MESSAGE + 1, socket.CMSG_SPACE(MAX_FDS * _FD_SIZE), socket.MSG_CMSG_CLOEXEC
        )
        fds = _descriptors(ancillary)
        try:
            if flags & socket.MSG_CTRUNC:
                raise ProtocolViolation(f"more than {MAX_FDS} descriptors in one message")
            if flags & socket.MSG_TRUNC or len(data) > MAX_MESSAGE:
                raise ProtocolViolation("message too large")
            if not data:
                close_fds(fds)
                return None, []
            return decode_message(data), fds
        except ProtocolViolation:
            close_fds(fds)
            raise

    def peer(self) -> tuple[int, int]:
        """(pid, uid) of the process at the other end (SO_PEERCRED)."""
        raw = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
        pid, uid, _ = _PEERCRED.unpack(raw)
        return pid, uid

    def close(self) -> None:
        self.socket.close()


def close_fds(fds: Sequence[int]) -> None:
    for fd in fds:
        os.close(fd)


def _descriptors(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            whole = len(data) - len(data) % _FD_SIZE
            fds.frombytes(data[:whole])
    return list(fds)


async def connect(path: Path) -> Channel:
    """Connect to the takeover socket at `path`; TakeoverSocketError when nothing listens."""
    _check_length(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        await sock.connect(os.fspath(path))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            raise TakeoverSocketError(
                "nothing to take over: no running `hotswap serve` with this config listens "
                f"on {path} ({exc.strerror}); start it without --takeover"
            ) from exc
        raise TakeoverSocketError(f"cannot connect to {path}: {exc}") from exc
    return Channel(sock)


class Listening:
    """Our takeover socket: listening at `path`, removed at close if the file is still ours."""

    def __init__(self, path: Path, sock: trio.socket.SocketType, inode: int) -> None:
        self.path = path
        self.socket = sock
        self._inode = inode

    async def accept(self) -> Channel:
        conn, _ = await self.socket.accept()
        return Channel(conn)

    def close(self) -> None:
        self.socket.close()
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass


async def listen(path: Path) -> Listening:
    """Listen for takeovers at `path` (replacing any file there; see the module doc)."""
    _check_length(path)
    ensure_private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    _check_length(temporary)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        await sock.bind(os.fspath(temporary))
        # Only our user may ask for our sockets (connecting needs write permission; the
        # file was created without write for others, so there is no window for them).
        os.chmod(temporary, 0o600)
        sock.listen(4)
        inode = os.stat(temporary).st_ino
        os.replace(temporary, path)
    except OSError as exc:
        sock.close()
        raise TakeoverSocketError(f"cannot listen for takeovers on {path}: {exc}") from exc
    return Listening(path, sock, inode)
