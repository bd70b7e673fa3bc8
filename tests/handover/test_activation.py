"""systemd's LISTEN_FDS: which descriptors are ours and what each one is for (sans-I/O)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hotswap.config import Config, parse_config
from hotswap.errors import ConfigError
from hotswap.handover.activation import Passed, assign, passed_fds

CONFIG = """
[server]
listen = "0.0.0.0:80"
admin_listen = "127.0.0.1:9090"
[tls]
listen = "0.0.0.0:443"
"""


def config() -> Config:
    return parse_config(tomllib.loads(CONFIG), Path("/etc/hotswap/hotswap.toml"))


def test_descriptors_are_ours_only_when_listen_pid_is_our_pid() -> None:
    env = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "proxy:admin"}
    assert passed_fds(env, 42) == [Passed(3, "proxy"), Passed(4, "admin")]
    assert passed_fds(env, 43) is None  # a parent's, not cleared
    assert passed_fds({}, 42) is None
    assert passed_fds({"LISTEN_PID": "42", "LISTEN_FDS": "1"}, 42) == [Passed(3, "unknown")]
    with pytest.raises(ConfigError, match="LISTEN_FDS"):
        passed_fds({"LISTEN_PID": "42", "LISTEN_FDS": "x"}, 42)


def test_sockets_are_assigned_by_name_else_by_port() -> None:
    passed = [
        Passed(3, "proxy", 8080),  # a name wins over the port
        Passed(4, "hotswap.socket", 443),
        Passed(5, "hotswap.socket", 9090),
    ]
    assert assign(passed, config()) == [("proxy", 3), ("https", 4), ("admin", 5)]


def test_a_socket_that_matches_nothing_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError) as error:
        assign([Passed(3, "hotswap.socket", 8081), Passed(4, "x", None)], config())
    problems = error.value.problems
    assert len(problems) == 2
    assert "descriptor 3 (name 'hotswap.socket', port 8081) matches none" in problems[0]
    assert "FileDescriptorName=proxy, https or admin" in problems[0]
    assert "no TCP port" in problems[1]
