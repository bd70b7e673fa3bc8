"""`hotswap serve` with systemd socket activation (LISTEN_FDS), as real processes.

scripts/socket-activate plays systemd's part: it binds the sockets, starts `serve`
with them (LISTEN_PID set by the child itself) and, on SIGHUP, restarts it the way
`systemctl restart` does while the socket unit keeps listening.
"""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path

import trio
from takeover_helpers import App, Processes, free_port, get, launcher_argv, serve_argv, write_config

HOST = "app.test"


def admin_status(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/status", timeout=10) as resp:
        document: dict[str, object] = json.loads(resp.read())
        return document


async def test_serve_accepts_on_the_sockets_systemd_passes_and_a_restart_keeps_them(
    tmp_path: Path, processes: Processes
) -> None:
    proxy, admin = free_port(), free_port()
    async with trio.open_nursery() as nursery:
        app = App()
        await nursery.start(app.run)
        config = write_config(
            tmp_path / "hotswap.toml", proxy=proxy, admin=admin, external={HOST: app.port}
        )
        sockets = [f"proxy=127.0.0.1:{proxy}", f"admin=127.0.0.1:{admin}"]
        launcher = processes.run(launcher_argv(sockets, serve_argv(config)), name="launcher")
        with trio.fail_after(60):
            await launcher.wait_log("serving proxy=")
            log = launcher.log()
            assert "listening on inherited sockets name=proxy from=systemd" in log
            assert "listening on inherited sockets name=admin from=systemd" in log
            assert (await get(proxy, HOST)).status == 200
            assert "routes" in await trio.to_thread.run_sync(admin_status, admin)

            # A restart: connections made meanwhile wait in the kept backlog; none is refused.
            refused = 0
            launcher.signal(signal.SIGHUP)
            restarted = False
            while not restarted:
                restarted = launcher.log().count("serving proxy=") == 2
                try:
                    await get(proxy, HOST)
                except ConnectionRefusedError:
                    refused += 1
                except (OSError, EOFError, trio.BrokenResourceError):
                    # Accepted by the stopping process just before its stop, which closes
                    # connections that have not sent a request yet: not what this test is
                    # about (socket activation keeps the listening socket, not those).
                    pass
            assert refused == 0
            assert (await get(proxy, HOST)).status == 200
            assert launcher.log().count("socket-activate: started pid=") == 2
            launcher.signal(signal.SIGTERM)
            assert await launcher.wait_exit() == 0
        nursery.cancel_scope.cancel()
