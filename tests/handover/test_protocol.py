"""The takeover protocol's messages and the listen-address rule (sans-I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotswap.config import parse_config
from hotswap.handover.protocol import (
    Abort,
    DeployNote,
    Hello,
    Message,
    Offer,
    ProtocolViolation,
    Ready,
    Refused,
    Stopped,
    Wait,
    decode,
    encode,
    expect,
    listen_addresses,
    listen_differences,
)

MESSAGES: list[Message] = [
    Hello(12, "0.1.0"),
    Wait((DeployNote("app.test", "abc", "health"),), "1 more queued"),
    Wait(()),
    Refused("another takeover of this process is in progress"),
    Offer(7, "0.1.0", {"server.listen": "0.0.0.0:80"}, ("proxy", "proxy", "admin")),
    Abort("no"),
    Ready(13),
    Stopped(4, 1),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_encoding(message: Message) -> None:
    assert decode(encode(message)) == message


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b'{"type": "nope"}', b'{"type": "hello", "pid": "1"}',
     b'{"type": "ready", "pid": true}', b'{"type": "offer", "pid": 1, "version": "x", '
     b'"addresses": [], "sockets": []}', b"\xff"],
)  # fmt: skip
def test_anything_else_is_a_protocol_violation(data: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        decode(data)


def test_expect_names_what_came_instead() -> None:
    assert expect(Ready(1), Ready, Abort) == Ready(1)
    with pytest.raises(ProtocolViolation, match="expected ready or abort, got hello"):
        expect(Hello(1, "x"), Ready, Abort)
    with pytest.raises(ProtocolViolation, match="closed"):
        expect(None, Ready)


def config(text: str) -> dict[str, str]:
    import tomllib

    return listen_addresses(parse_config(tomllib.loads(text), Path("/etc/hotswap.toml")))


def test_only_the_listen_addresses_decide_whether_a_config_can_take_over() -> None:
    base = '[server]\nlisten = "127.0.0.1:8080"\nadmin_listen = "127.0.0.1:9090"\n'
    old = config(base)
    assert old == {"server.listen": "127.0.0.1:8080", "tls.listen": "",
                   "server.admin_listen": "127.0.0.1:9090"}  # fmt: skip
    # Anything but the addresses may change (the new process applies it) ...
    assert listen_differences(old, config(base + "max_connections = 5\n")) == []
    # ... an address may not: the sockets are passed as they are bound.
    moved = config(base.replace("8080", "8081") + '[tls]\nlisten = "127.0.0.1:8443"\n')
    assert listen_differences(old, moved) == [
        "server.listen: the running process listens on 127.0.0.1:8080, the new config says "
        "127.0.0.1:8081",
        "tls.listen: the running process listens on nothing, the new config says 127.0.0.1:8443",
    ]
