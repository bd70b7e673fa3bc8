"""`hotswap serve` with certificate files: `status` shows them, /metrics has their
expiry, and a reload (SIGHUP) re-reads the files. A real process, no Docker needed
(external routes only)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio
from tls_helpers import Issued, ThrowawayCA

from hotswap.metrics import parse_samples

TICK = 0.1  # probing another process is the one place we tick


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, issued: Issued, admin_port: int) -> None:
    path.write_text(
        f"""
[server]
listen = "127.0.0.1:{free_port()}"
admin_listen = "127.0.0.1:{admin_port}"
[docker]
host = "unix://{path.parent}/no-docker.sock"
[tls]
certificates = [{{ cert = "{issued.cert.name}", key = "{issued.key.name}" }}]
[external_routes]
"app.example.com" = "127.0.0.1:{free_port()}"
"""
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def start_serve(path: Path) -> subprocess.Popen[bytes]:
    log = (path.parent / "serve.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "hotswap", "serve", "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    return process


def hotswap(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotswap", *args, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def status_of(path: Path, process: subprocess.Popen[bytes]) -> dict[str, object]:
    while True:
        result = await trio.to_thread.run_sync(lambda: hotswap(path, "status", "--json"))
        if result.returncode == 0:
            document: dict[str, object] = json.loads(result.stdout)
            return document
        assert process.poll() is None, (path.parent / "serve.log").read_text()
        await trio.sleep(TICK)


def app_tls(document: dict[str, object]) -> dict[str, object]:
    routes = document["routes"]
    assert isinstance(routes, list)
    [app] = [route for route in routes if route["domain"] == "app.example.com"]
    tls = app["tls"]
    assert isinstance(tls, dict)
    return tls


async def test_status_and_metrics_show_the_certificate_and_a_reload_rereads_the_files(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    ca = ThrowawayCA(tmp_path)
    first = ca.issue("app.example.com", not_after=datetime.now(UTC) + timedelta(days=40))
    path = tmp_path / "hotswap.toml"
    admin_port = free_port()
    write_config(path, first, admin_port)
    process = start_serve(path)
    processes.append(process)
    with trio.fail_after(60):
        tls = app_tls(await status_of(path, process))
        certificate = tls["certificate"]
        assert isinstance(certificate, dict)
        assert certificate["source"] == "file"
        assert certificate["not_after"] == first.certificate().not_after.isoformat()
        table = await trio.to_thread.run_sync(lambda: hotswap(path, "status"))
        assert "CERTIFICATE" in table.stdout and "file" in table.stdout, table.stdout
        url = f"http://127.0.0.1:{admin_port}/metrics"
        metrics = await trio.to_thread.run_sync(
            lambda: urllib.request.urlopen(url, timeout=10).read()
        )
        samples = parse_samples(metrics.decode())
        gauge = 'hotswap_tls_certificate_expiry_timestamp_seconds{domain="app.example.com"}'
        assert samples[gauge] == first.certificate().not_after.timestamp()
        # Renewed files under the same names: SIGHUP re-reads them.
        second = ca.issue("app.example.com", not_after=datetime.now(UTC) + timedelta(days=90))
        first.cert.write_bytes(second.chain_pem)
        first.key.write_bytes(second.key_pem)
        process.send_signal(signal.SIGHUP)
        renewed = second.certificate().not_after.isoformat()
        while True:
            certificate = app_tls(await status_of(path, process))["certificate"]
            assert isinstance(certificate, dict)
            if certificate["not_after"] == renewed:
                break
            await trio.sleep(TICK)  # until the reload has run
        process.send_signal(signal.SIGTERM)
        assert await trio.to_thread.run_sync(process.wait) == 0
    assert "tls: certificate files reloaded (1 in use)" in (tmp_path / "serve.log").read_text()
