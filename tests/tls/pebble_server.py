"""Pebble, Let's Encrypt's ACME test CA, and its DNS, run on loopback for the ACME tests.

    pebble-challtestsrv   DNS on 127.0.0.1:<port>, answering 127.0.0.1 for every name
                          (A only: no AAAA, so the validation never tries ::1)
    pebble                the ACME server on https://127.0.0.1:<port>/dir, with a
                          certificate from a throwaway CA (that CA's PEM is the
                          tls.acme.ca_bundle); it validates HTTP-01 challenges by
                          connecting to 127.0.0.1:<http_port>, where the test serves them

Environment: PEBBLE_VA_NOSLEEP=1 (validate at once), PEBBLE_WFE_NONCEREJECT=0 (no
random bad nonces), PEBBLE_AUTHZREUSE=0 (every order is validated for real).
Both processes are stopped by PID at the end of the session.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import trustme

VALIDITY = 90 * 86_400  # seconds, like Let's Encrypt's certificates
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def missing() -> str | None:
    """Why Pebble cannot run here, or None."""
    for program in ("pebble", "pebble-challtestsrv"):
        if shutil.which(program) is None:
            return f"{program} is not installed (run scripts/ensure-pebble)"
    return None


class Pebble:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.http_port = free_port()  # where the CA fetches HTTP-01 tokens
        self.acme_port = free_port()
        self.management_port = free_port()
        self.dns_port = free_port()
        self.directory = f"https://127.0.0.1:{self.acme_port}/dir"
        self.ca_bundle = folder / "pebble-ca.pem"
        self._processes: list[subprocess.Popen[bytes]] = []
        ca = trustme.CA()
        served = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(str(self.ca_bundle))
        served.cert_chain_pems[0].write_to_path(str(folder / "pebble-cert.pem"))
        served.private_key_pem.write_to_path(str(folder / "pebble-key.pem"))
        self._ca = ca

    def start(self) -> None:
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.acme_port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(self.folder / "pebble-cert.pem"),
                "privateKey": str(self.folder / "pebble-key.pem"),
                "httpPort": self.http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
                "certificateValidityPeriod": VALIDITY,
            }
        }
        (self.folder / "pebble.json").write_text(json.dumps(config))
        dns = f"127.0.0.1:{self.dns_port}"
        self._spawn(
            "challtestsrv",
            [
                "pebble-challtestsrv",
                "-dns01",
                dns,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{free_port()}",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ],
        )
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
            "PEBBLE_AUTHZREUSE": "0",
        }
        self._spawn(
            "pebble",
            ["pebble", "-config", str(self.folder / "pebble.json"), "-dnsserver", dns],
            env=env,
        )
        self._wait_until_up()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.folder / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        log.close()
        self._processes.append(process)

    def _wait_until_up(self) -> None:
        # Pebble is another process: asking it until it answers is the only way to know.
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for process in self._processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[0]} exited:\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.directory, context=context, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"pebble did not answer in {START_TIMEOUT}s:\n{self.logs()}")
            time.sleep(0.1)

    def root_pem(self) -> bytes:
        """The root of the chains Pebble issues (it makes a new one at each start)."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            pem: bytes = answer.read()
        return pem

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace")[-4000:] for path in sorted(self.folder.glob("*.log"))
        )

    def stop(self) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
