"""`serve --takeover` with a managed route on the real engine: the new process adopts the
running container (no redeploy), after the deploy the old one had in progress."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import trio
from test_commands import Hotswap, Result, unique

TICK = 0.2  # probing another process (its log) is the one place we tick


@pytest.fixture
def hs(
    tmp_path: Path, docker_client: docker.DockerClient, test_images: dict[str, str]
) -> Iterator[Hotswap]:
    instance = Hotswap(tmp_path, docker_client, f"hstest-takeover-{uuid.uuid4().hex[:8]}")
    try:
        yield instance
    finally:
        instance.cleanup()


def log_of(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def start_takeover(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        argv = [sys.executable, "-m", "hotswap", "serve", "--config", str(config), "--takeover"]
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


async def wait_log(path: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    while text not in log_of(path):
        assert process.poll() is None, log_of(path)
        await trio.sleep(TICK)


async def test_a_takeover_finishes_the_deploy_in_progress_then_adopts_its_container(
    hs: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("takeover")
    hs.routes[domain] = test_images["app_v1"]
    hs.deploy["drain_timeout"] = "5s"
    with trio.fail_after(180):
        hs.write_config()
        hs.start()
        await hs.wait_serving(domain, b"v1\n")
        old = hs.process
        assert old is not None
        await wait_log(hs.log_path, "listening for takeovers", old)
        deployed: list[Result] = []
        async with trio.open_nursery() as nursery:

            async def deploy() -> None:
                deployed.append(await hs.cli("deploy", domain, "--image", test_images["app_v2"]))

            nursery.start_soon(deploy)
            await wait_log(hs.log_path, "deploy phase=starting", old)
            new_log = hs.tmp / "new.log"
            new = start_takeover(hs.config_path, new_log)
            hs.process = new  # cleaned up by the fixture from now on
            await wait_log(new_log, "waiting for the old process to finish its deploys", new)
        (result,) = deployed
        assert result.code == 0, result
        assert await trio.to_thread.run_sync(old.wait) == 0, hs.log()
        await wait_log(new_log, "takeover complete", new)
        assert await hs.get(domain) == b"v2\n"
        serving = hs.containers(domain)
    log = log_of(new_log)
    assert len(serving) == 1
    assert f"adopted container={serving[0].id[:12]}" in log
    assert "deploy requested" not in log  # adopted, not redeployed
    assert "waits for deploys=" in hs.log()
