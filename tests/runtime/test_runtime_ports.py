"""Host-mode port allocation (no Docker, no real sockets except the probe test)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from hotswap.errors import ContainerRuntimeError
from hotswap.runtime.ports import PortAllocator, default_range, port_is_free


def test_allocated_ports_are_not_handed_out_again_until_released() -> None:
    ports = PortAllocator((30000, 30002), is_free=lambda port: True, rng=random.Random(1))
    got = {ports.allocate() for _ in range(3)}
    assert got == {30000, 30001, 30002}
    with pytest.raises(ContainerRuntimeError, match="no free loopback port"):
        ports.allocate()
    ports.release(30001)
    assert ports.allocate() == 30001


def test_ports_of_running_containers_are_noted_and_released_with_them() -> None:
    ports = PortAllocator((30000, 30001), is_free=lambda port: True)
    ports.assign(30000, "container-a")  # found running after a restart
    assert ports.allocate() == 30001
    ports.assign(30001, "container-b")
    assert ports.reserved == {30000, 30001}
    ports.release_owner("container-a")
    assert ports.reserved == {30001}


def test_ports_busy_on_the_host_are_skipped() -> None:
    ports = PortAllocator((30000, 30001), is_free=lambda port: port == 30001)
    assert ports.allocate() == 30001


def test_port_probe_sees_a_bound_socket() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        assert port_is_free(sock.getsockname()[1]) is False


def test_default_range_stays_below_the_ephemeral_range(tmp_path: Path) -> None:
    ephemeral = tmp_path / "range"
    ephemeral.write_text("25000\t60999\n")
    assert default_range(ephemeral) == (20000, 24999)
    ephemeral.write_text("32768\t60999\n")
    assert default_range(ephemeral) == (20000, 32767)
    assert default_range(tmp_path / "missing") == (20000, 32767)
