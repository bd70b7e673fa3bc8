"""The new side of a takeover: `serve --takeover` gets the running `serve`'s listening sockets.

    request_takeover()   connect, say hello, wait (bounded) while the old process
                         finishes its deploys, receive its sockets; refuse them when
                         the listen addresses differ from ours
    Takeover.confirm()   once we accept on them: the old process stops accepting
                         and drains
    Takeover.wait_gone() the old process exits (its end of the connection closes):
                         until then our deploys wait, because stopping an old
                         container would cut requests it still has on it

Until `confirm()` the old process serves as before; if we die or give up, it
goes on. If it dies after passing the sockets, we have them and serve anyway.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import trio

from hotswap import __version__
from hotswap.config import Config
from hotswap.errors import PredecessorGone, TakeoverRefused
from hotswap.handover.channel import Channel, close_fds, connect
from hotswap.handover.listeners import ListenSockets
from hotswap.handover.protocol import (
    Abort,
    Hello,
    Offer,
    ProtocolViolation,
    Ready,
    Refused,
    Stopped,
    Wait,
    expect,
    listen_addresses,
    listen_differences,
)

log = logging.getLogger(__name__)

STOPPED_TIMEOUT: Final = 10.0  # the old process confirms it stopped accepting within this


@dataclass
class Takeover:
    """A takeover under way: the old process's sockets are ours, it still accepts."""

    channel: Channel
    old_pid: int
    old_version: str
    sockets: ListenSockets

    async def confirm(self) -> None:
        """Tell the old process we accept now: it stops accepting, drains and exits."""
        try:
            await self.channel.send(Ready(os.getpid()))
        except OSError as exc:
            log.warning(
                "takeover: the old process pid=%d went away before we were ready (%s); "
                "serving on its sockets",
                self.old_pid,
                exc,
            )
            return
        with trio.move_on_after(STOPPED_TIMEOUT):
            try:
                message = await self.channel.receive()
            except (OSError, ProtocolViolation) as exc:
                log.warning("takeover: no confirmation from pid=%d error=%s", self.old_pid, exc)
                return
            if isinstance(message, Stopped):
                log.info(
                    "takeover: the old process pid=%d stopped accepting; it drains "
                    "connections=%d tunnels=%d and exits",
                    self.old_pid,
                    message.connections,
                    message.tunnels,
                )
                return
        log.warning("takeover: pid=%d did not confirm it stopped accepting", self.old_pid)

    async def wait_gone(self) -> None:
        """Return when the old process has exited (EOF on the connection). Unbounded: the
        caller's scope bounds it."""
        while True:
            try:
                message = await self.channel.receive()
            except (OSError, ProtocolViolation):
                return
            if message is None:
                return

    def close(self) -> None:
        self.channel.close()


async def request_takeover(config: Config, path: Path, *, deploy_wait: float) -> Takeover:
    """Take over the `serve` listening for takeovers at `path` (see the module doc).

    TakeoverError when there is none (a clear message) or it refuses; PredecessorGone
    when it went away before passing its sockets (nothing serves then: the caller may
    bind them itself).
    """
    channel = await connect(path)
    try:
        return await _request(channel, config, deploy_wait)
    except BaseException:
        channel.close()
        raise


async def _request(channel: Channel, config: Config, deploy_wait: float) -> Takeover:
    try:
        await channel.send(Hello(os.getpid(), __version__))
    except OSError as exc:
        raise PredecessorGone(f"the old process closed the connection: {exc}") from exc
    offer: Offer | None = None
    fds: list[int] = []
    with trio.move_on_after(deploy_wait):
        while offer is None:
            try:
                message, fds = await channel.receive_with_fds()
            except OSError as exc:
                raise PredecessorGone(f"the old process closed the connection: {exc}") from exc
            if not isinstance(message, Offer):  # only an offer brings sockets
                close_fds(fds)
                fds = []
            if message is None:
                raise PredecessorGone(
                    "the old process closed the connection before it passed its sockets"
                )
            if isinstance(message, Wait):
                _log_wait(message, deploy_wait)
                continue
            if isinstance(message, Refused):
                raise TakeoverRefused(f"the running hotswap refused the takeover: {message.reason}")
            offer = expect(message, Offer)  # type: ignore[assignment]
    if offer is None:
        raise TakeoverRefused(
            f"the old process's deploys did not finish within {deploy_wait:g}s; gave up "
            "(it keeps serving): try again once they are done"
        )
    if len(fds) != len(offer.sockets):
        close_fds(fds)
        raise ProtocolViolation(f"offer names {len(offer.sockets)} sockets, {len(fds)} came")
    problems = listen_differences(offer.addresses, listen_addresses(config))
    if problems:
        close_fds(fds)
        reason = "the listen addresses differ: " + "; ".join(problems)
        try:
            await channel.send(Abort(reason))
        except OSError:
            pass
        raise TakeoverRefused(
            f"cannot take over: {reason}. A takeover passes the bound sockets as they are; "
            "to move hotswap to other addresses, restart it instead"
        )
    named = []
    try:
        for name, fd in zip(offer.sockets, fds, strict=True):
            named.append((name, socket.socket(fileno=fd)))
        sockets = ListenSockets.adopt(named, "takeover")
    except (OSError, ValueError) as exc:
        for _, sock in named:
            sock.detach()
        close_fds(fds)
        raise ProtocolViolation(f"bad sockets in the offer: {exc}") from exc
    log.info(
        "takeover: received the listening sockets of pid=%d version=%s sockets=%s",
        offer.pid,
        offer.version,
        ",".join(offer.sockets),
    )
    return Takeover(channel, offer.pid, offer.version, sockets)


def _log_wait(message: Wait, deploy_wait: float) -> None:
    running = ", ".join(str(d) for d in message.deploys) or "-"
    log.info(
        "takeover: waiting for the old process to finish its deploys before it hands over "
        "(at most %gs) deploys=%s %s",
        deploy_wait,
        running,
        message.note,
    )
