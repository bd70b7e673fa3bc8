"""The takeover protocol between a running `serve` (old) and `serve --takeover` (new). Sans-I/O.

One message per datagram (a SOCK_SEQPACKET Unix socket keeps message boundaries,
so listening sockets passed with SCM_RIGHTS arrive with the message that names
them). Each message is a JSON object with a "type":

    new -> old  hello    {pid, version, protocol}
    old -> new  wait     {deploys: [{domain, id, phase}],   deploys still running there,
                          note}                             and what else it waits for;
                                                            sent again at each change
    old -> new  refused  {reason}                           no takeover now (busy, stopping)
    old -> new  offer    {pid, version, addresses, sockets} + the listening sockets, in the
                                                            order `sockets` names them
    new -> old  abort    {reason}                           the new one will not serve
    new -> old  ready    {pid}                              the new one accepts now
    old -> new  stopped  {connections, tunnels}             the old one stopped accepting

From `hello` on the old process starts no deploy; the connection closing before
`ready` (the new process died, gave up or aborted) ends that and it serves as
before. After `ready` it drains and exits, and closes its end of the connection
only then: the new process learns from that EOF that no request of the old one
can still reach a container, so its own deploys may stop containers again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from hotswap.config import Config

PROTOCOL_VERSION: Final = 1
MAX_MESSAGE: Final = 64 * 1024
MAX_FDS: Final = 64  # far more than the proxy, HTTPS and admin listeners of any config

# The config keys whose sockets a takeover passes over, as `addresses` names them.
LISTEN_KEYS: Final = ("server.listen", "tls.listen", "server.admin_listen")


class ProtocolViolation(Exception):
    """The peer sent something this protocol does not allow (a bug or another program)."""


@dataclass(frozen=True)
class Hello:
    pid: int
    version: str
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class DeployNote:
    """A deploy running (or queued) on the old process, for the new one's log."""

    domain: str
    id: str
    phase: str

    def __str__(self) -> str:
        return f"{self.domain} (deploy {self.id}, {self.phase})"


@dataclass(frozen=True)
class Wait:
    deploys: tuple[DeployNote, ...]  # running ones
    note: str = ""  # what else is waited for: queued deploys, a predecessor still draining


@dataclass(frozen=True)
class Refused:
    reason: str


@dataclass(frozen=True)
class Offer:
    pid: int
    version: str
    addresses: Mapping[str, str]  # LISTEN_KEYS -> the address as the old config wrote it
    sockets: tuple[str, ...]  # one name per passed socket: "proxy", "https", "admin"


@dataclass(frozen=True)
class Abort:
    reason: str


@dataclass(frozen=True)
class Ready:
    pid: int


@dataclass(frozen=True)
class Stopped:
    connections: int
    tunnels: int


Message: TypeAlias = Hello | Wait | Refused | Offer | Abort | Ready | Stopped

_TYPES: Final[dict[str, type[Message]]] = {
    "hello": Hello,
    "wait": Wait,
    "refused": Refused,
    "offer": Offer,
    "abort": Abort,
    "ready": Ready,
    "stopped": Stopped,
}
_NAMES: Final = {cls: name for name, cls in _TYPES.items()}


def encode(message: Message) -> bytes:
    """One datagram for `message`."""
    body: dict[str, Any] = {"type": _NAMES[type(message)]}
    if isinstance(message, Wait):
        body["deploys"] = [
            {"domain": d.domain, "id": d.id, "phase": d.phase} for d in message.deploys
        ]
        body["note"] = message.note
    elif isinstance(message, Offer):
        body.update(
            pid=message.pid,
            version=message.version,
            addresses=dict(message.addresses),
            sockets=list(message.sockets),
        )
    else:
        body.update(message.__dict__)
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ProtocolViolation(f"message too large ({len(data)} bytes)")
    return data


def decode(data: bytes) -> Message:
    """The message in one datagram; ProtocolViolation when it is not one of ours."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolViolation(f"not a JSON message: {exc}") from exc
    if not isinstance(body, dict):
        raise ProtocolViolation("a message must be a JSON object")
    kind = _TYPES.get(str(body.pop("type", "")))
    if kind is None:
        raise ProtocolViolation(f"unknown message type in {data[:80]!r}")
    try:
        if kind is Wait:
            notes = tuple(
                DeployNote(str(d["domain"]), str(d["id"]), str(d["phase"])) for d in body["deploys"]
            )
            return Wait(notes, str(body.get("note", "")))
        if kind is Offer:
            addresses = body["addresses"]
            if not isinstance(addresses, dict):
                raise TypeError("addresses must be an object")
            return Offer(
                pid=_int(body["pid"]),
                version=str(body["version"]),
                addresses={str(k): str(v) for k, v in addresses.items()},
                sockets=tuple(str(name) for name in body["sockets"]),
            )
        if kind is Hello:
            return Hello(_int(body["pid"]), str(body["version"]), _int(body["protocol"]))
        if kind is Ready:
            return Ready(_int(body["pid"]))
        if kind is Stopped:
            return Stopped(_int(body["connections"]), _int(body["tunnels"]))
        if kind is Refused:
            return Refused(str(body["reason"]))
        return Abort(str(body["reason"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolViolation(f"malformed {kind.__name__.lower()} message: {exc!r}") from exc


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def expect(message: Message | None, *kinds: type[Message]) -> Message:
    """`message` if it is one of `kinds`; ProtocolViolation otherwise (None: the peer left)."""
    if message is None:
        raise ProtocolViolation("the peer closed the connection")
    if not isinstance(message, kinds):
        wanted = " or ".join(_NAMES[k] for k in kinds)
        raise ProtocolViolation(f"expected {wanted}, got {_NAMES[type(message)]}")
    return message


def listen_addresses(config: Config) -> dict[str, str]:
    """The listen addresses of `config` as a takeover compares them (LISTEN_KEYS)."""
    tls = config.tls.listen
    return {
        "server.listen": str(config.server.listen),
        "tls.listen": str(tls) if tls is not None else "",
        "server.admin_listen": str(config.server.admin_listen),
    }


def listen_differences(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """One line per listen address that differs between the old and the new config.

    A takeover passes the sockets as they are bound: it cannot move them, so any
    difference refuses it (a restart, or a reload for what a reload applies, is the way).
    """
    problems = []
    for key in LISTEN_KEYS:
        before, after = old.get(key, ""), new.get(key, "")
        if before != after:
            problems.append(
                f"{key}: the running process listens on {before or 'nothing'}, "
                f"the new config says {after or 'nothing'}"
            )
    return problems
