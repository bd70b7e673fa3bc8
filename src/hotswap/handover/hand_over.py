"""The old side of a takeover: a running `serve` hands its listening sockets to a new one.

It listens on the takeover socket (channel.py) once it serves. For a request
(protocol.py):

1. it holds deploys (new ones are refused with the reason; reloads too) and waits
   until the ones running have finished, telling the new process what it waits for;
   the new process bounds that wait;
2. it passes its listening sockets (proxy, https, admin) and keeps accepting on
   them, as the new process will too, until
3. the new process says it is ready: the old one stops accepting, drains (the
   app's shutdown with keep_idle: see ProxyServer.shutdown) and exits; its end of
   the connection closes with the process, which tells the new one it is gone.

The connection closing before `ready` (the new process died or gave up) releases
the deploys: the old process goes on as if nothing had happened, one takeover at
a time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol

import trio

from hotswap import __version__
from hotswap.deploy.gate import DeployGate
from hotswap.handover import channel as channels
from hotswap.handover.channel import Channel
from hotswap.handover.protocol import (
    PROTOCOL_VERSION,
    Abort,
    DeployNote,
    Hello,
    Offer,
    ProtocolViolation,
    Ready,
    Refused,
    Stopped,
    Wait,
    expect,
)

log = logging.getLogger(__name__)

HELLO_TIMEOUT: Final = 5.0  # a connection that does not say hello in time is dropped
SEND_TIMEOUT: Final = 5.0  # a message the new process does not take in time ends the takeover


class Predecessor(Protocol):
    """What the running app gives a takeover (App in app.py)."""

    @property
    def gate(self) -> DeployGate: ...

    @property
    def stopping(self) -> bool: ...

    def deploys_in_progress(self) -> list[DeployNote]: ...

    def offer(self) -> tuple[dict[str, str], list[str], list[int]]:
        """(listen addresses as configured at start, socket names, descriptors)."""

    def hand_over(self, successor: int) -> tuple[int, int]:
        """Stop accepting, start the drain; (open connections, open tunnels)."""


class HandoverServer:
    """Serves takeover requests on `path`, one at a time, until the process exits."""

    def __init__(self, app: Predecessor, path: Path) -> None:
        self.app = app
        self.path = path
        self._busy = False
        self._accepting = trio.CancelScope()
        self._successor: Channel | None = None  # open until we exit: our exit is its EOF

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listening = await channels.listen(self.path)
        log.info("listening for takeovers path=%s", self.path)
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                with self._accepting:
                    while True:
                        conn = await listening.accept()
                        nursery.start_soon(self._serve, conn)
                listening.close()  # handed over: the path is the successor's now
                await trio.sleep_forever()
        finally:
            listening.close()
            if self._successor is not None:
                self._successor.close()

    async def _serve(self, conn: Channel) -> None:
        keep = False
        try:
            keep = await self._serve_one(conn)
        except (OSError, ProtocolViolation, trio.TooSlowError) as exc:
            log.warning("takeover connection failed error=%s", exc)
        except Exception:
            # A takeover going wrong must never cost the process that serves.
            log.exception("takeover connection failed")
        finally:
            if not keep:
                conn.close()

    async def _serve_one(self, conn: Channel) -> bool:
        pid, uid = conn.peer()
        if uid not in (os.geteuid(), 0):
            log.warning("takeover refused: peer pid=%d runs as uid=%d, not ours", pid, uid)
            return False
        hello = None
        with trio.move_on_after(HELLO_TIMEOUT):
            hello = expect(await conn.receive(), Hello)
        if not isinstance(hello, Hello):
            return False
        refusal = None
        if hello.protocol != PROTOCOL_VERSION:
            refusal = (
                f"takeover protocol {hello.protocol} unknown here (this is {PROTOCOL_VERSION})"
            )
        elif self._busy:
            refusal = "another takeover of this process is in progress"
        elif self.app.stopping:
            refusal = "this process is stopping"
        if refusal is not None:
            log.warning("takeover refused pid=%d reason=%s", pid, refusal)
            await _send(conn, Refused(refusal))
            return False
        log.info("takeover requested pid=%d version=%s", pid, hello.version)
        self._busy = True
        try:
            return await self._hand_over(conn, pid)
        finally:
            self._busy = False

    async def _hand_over(self, conn: Channel, pid: int) -> bool:
        gate = self.app.gate
        gate.hold(
            f"hotswap is being taken over by a new process (pid {pid}); "
            "no deploy starts here now: try again in a moment"
        )
        handed = False
        try:
            if not await self._wait_for_deploys(conn, pid):
                return False
            addresses, names, fds = self.app.offer()
            offer = Offer(os.getpid(), __version__, addresses, tuple(names))
            await _send(conn, offer, fds)
            log.info(
                "takeover: listening sockets passed pid=%d sockets=%s; accepting until it is ready",
                pid,
                ",".join(names),
            )
            # Unbounded: the new process adopts the containers first, and may wait for
            # Docker; we serve meanwhile, and its going away ends the wait.
            message = await conn.receive()
            if message is None:
                log.warning("takeover aborted: pid=%d went away before it was ready", pid)
                return False
            reply = expect(message, Ready, Abort)
            if isinstance(reply, Abort):
                log.warning("takeover aborted by pid=%d reason=%s", pid, reply.reason)
                return False
            connections, tunnels = self.app.hand_over(pid)
            handed = True
            self._successor = conn
            self._accepting.cancel()
            log.info(
                "handed over to pid=%d; stopped accepting, draining connections=%d tunnels=%d",
                pid,
                connections,
                tunnels,
            )
            try:
                await _send(conn, Stopped(connections, tunnels))
            except (OSError, trio.TooSlowError) as exc:
                log.warning("takeover: could not confirm to pid=%d error=%s", pid, exc)
            return True
        except trio.TooSlowError:
            log.warning("takeover aborted: pid=%d does not read its messages", pid)
            return False
        finally:
            if not handed:
                gate.release()

    async def _wait_for_deploys(self, conn: Channel, pid: int) -> bool:
        """Wait until no deploy runs and no predecessor of ours still drains; False when the
        new process left (or aborted) meanwhile."""
        gate = self.app.gate
        if not gate.busy and gate.deferred is None:
            return True
        left = False

        async def watch_peer(scope: trio.CancelScope) -> None:
            nonlocal left
            try:
                await conn.receive()  # anything but silence ends the wait: EOF, abort
            except (OSError, ProtocolViolation):
                pass
            left = True
            scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_peer, nursery.cancel_scope)
            while gate.busy or gate.deferred is not None:
                running = self.app.deploys_in_progress()
                notes = []
                if gate.busy > len(running):
                    notes.append(f"{gate.busy - len(running)} more queued")
                if gate.deferred is not None:
                    notes.append("this process's own predecessor is still draining")
                note = "; ".join(notes)
                log.info(
                    "takeover by pid=%d waits for deploys=%s %s",
                    pid,
                    ", ".join(str(d) for d in running) or "-",
                    note,
                )
                try:
                    await _send(conn, Wait(tuple(running), note))
                except (OSError, trio.TooSlowError):
                    left = True
                    break
                await gate.wait_change()
            nursery.cancel_scope.cancel()
        if left:
            log.warning("takeover aborted: pid=%d left while deploys were finishing", pid)
        return not left


async def _send(
    conn: Channel, message: Wait | Refused | Offer | Stopped, fds: Sequence[int] = ()
) -> None:
    with trio.fail_after(SEND_TIMEOUT):
        await conn.send(message, fds)
