"""`hotswap serve` as a process when Docker does not answer.

With only [external_routes] the proxy needs no Docker and serves at once; with
managed routes it waits for Docker (to adopt their containers before it
listens), and SIGTERM still stops it during that wait. Docker is pointed at a
socket that does not exist, so these run with or without an engine.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

TICK = 0.1  # probing another process is the one place we tick


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(tmp_path: Path, routes: str, external: str) -> Path:
    path = tmp_path / "hotswap.toml"
    path.write_text(
        "[server]\n"
        f'listen = "127.0.0.1:{free_port()}"\n'
        f'admin_listen = "127.0.0.1:{free_port()}"\n'
        "[docker]\n"
        f'host = "unix://{tmp_path}/no-docker.sock"\n'
        "[routes]\n"
        f"{routes}\n"
        "[external_routes]\n"
        f"{external}\n"
    )
    return path


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def start(path: Path, processes: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    log = (path.parent / "serve.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "hotswap", "serve", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    processes.append(process)
    return process


def listen_port(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("listen = "):
            return int(line.rstrip('"').rpartition(":")[2])
    raise AssertionError("no listen line")


async def get_status(port: int, host: str) -> int | None:
    """The status of GET / with `host` through the proxy; None while it does not listen."""
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return None
    async with stream:
        await stream.send_all(
            f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n" not in data:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return None
            data += chunk
    return int(data.split(b" ", 2)[1])


async def test_external_routes_are_served_without_docker_and_sigterm_stops_it(
    tmp_path: Path, serve: list[subprocess.Popen[bytes]]
) -> None:
    closed_port = free_port()  # nothing listens there: the route answers 502
    path = write_config(tmp_path, "", f'"ext.test" = "127.0.0.1:{closed_port}"')
    process = start(path, serve)
    port = listen_port(path)
    with trio.fail_after(30):
        while (status := await get_status(port, "ext.test")) is None:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            await trio.sleep(TICK)
        assert status == 502
        assert await get_status(port, "unknown.test") == 404
        process.send_signal(signal.SIGTERM)
        code = await trio.to_thread.run_sync(process.wait)
    assert code == 0, (tmp_path / "serve.log").read_text()
    log = (tmp_path / "serve.log").read_text()
    assert "docker events stream: connect failed" in log


async def test_sigterm_stops_serve_while_it_waits_for_docker(
    tmp_path: Path, serve: list[subprocess.Popen[bytes]]
) -> None:
    path = write_config(tmp_path, '"app.test" = "example/app:1"', "")
    process = start(path, serve)
    log_path = tmp_path / "serve.log"
    with trio.fail_after(30):
        while "docker events stream: connect failed" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            await trio.sleep(TICK)
        # Managed routes: the proxy does not listen before their containers are adopted.
        assert await get_status(listen_port(path), "app.test") is None
        process.send_signal(signal.SIGTERM)
        code = await trio.to_thread.run_sync(process.wait)
    assert code == 0, log_path.read_text()
    assert "stopped during start-up" in log_path.read_text()


async def test_a_pause_survives_a_restart_of_serve(
    tmp_path: Path, serve: list[subprocess.Popen[bytes]]
) -> None:
    closed_port = free_port()
    path = write_config(tmp_path, "", f'"ext.test" = "127.0.0.1:{closed_port}"')
    port = listen_port(path)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hotswap", *args, "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    with trio.fail_after(60):
        for round_ in range(2):
            process = start(path, serve)
            while await get_status(port, "ext.test") is None:
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                await trio.sleep(TICK)
            if round_ == 0:
                paused = await trio.to_thread.run_sync(cli, "maintenance", "ext.test")
                assert paused.returncode == 0, paused.stderr
            # in maintenance before the restart, and still after it
            assert await get_status(port, "ext.test") == 503
            process.send_signal(signal.SIGTERM)
            assert await trio.to_thread.run_sync(process.wait) == 0
    assert "restored ext.test: in maintenance" in (tmp_path / "serve.log").read_text()
