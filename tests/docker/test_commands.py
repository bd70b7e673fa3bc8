"""Each command against a running `hotswap serve` subprocess on the real engine.

Every test writes its own config (loopback ports, host network mode, an admin
token) with domains unique to the test, runs `python -m hotswap serve` and
drives it with the real CLI (`python -m hotswap deploy ...`), piped, so the
progress output is plain lines. Containers hotswap creates are found by their
`hotswap.domain` label and removed at teardown; serve never removes them itself
on SIGTERM, which one test checks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import trio
from docker_helpers import free_port, http_request

from hotswap.admin.client import AdminClient
from hotswap.config import Address
from hotswap.errors import AdminClientError
from hotswap.metrics import parse_samples

TOKEN = "test-token-" + uuid.uuid4().hex[:8]
TICK = 0.2  # probing another process (the server) is the one place we tick


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass(frozen=True)
class Managed:
    id: str
    status: str  # docker's State: running, exited, ...


@dataclass
class Hotswap:
    """One `hotswap serve` subprocess and the config file it reads."""

    tmp: Path
    client: docker.DockerClient
    tag_prefix: str
    proxy_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    routes: dict[str, str] = field(default_factory=dict)
    deploy: dict[str, str] = field(default_factory=dict)
    server: dict[str, str] = field(default_factory=dict)  # extra [server] keys (TOML values)
    external: dict[str, str] = field(default_factory=dict)  # [external_routes]
    # Long-form routes: route key -> its keys as TOML values, e.g. {"strip_prefix": "true"}.
    tables: dict[str, dict[str, str]] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    domains: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)

    @property
    def config_path(self) -> Path:
        return self.tmp / "hotswap.toml"

    @property
    def log_path(self) -> Path:
        return self.tmp / "serve.log"

    def write_config(self, text: str | None = None, token: str = TOKEN) -> None:
        if text is None:
            deploy = {
                "pull_policy": "if-not-present",
                "readiness_mode": "auto",
                "health_timeout": "30s",
                "drain_timeout": "5s",
                "stop_timeout": "2s",
                "stabilization": "1s",
                "watch_images": "true",
                **self.deploy,
            }
            lines = [
                "[server]",
                f'listen = "127.0.0.1:{self.proxy_port}"',
                f'admin_listen = "127.0.0.1:{self.admin_port}"',
                f'admin_token = "{token}"',
                *(f"{k} = {v}" for k, v in self.server.items()),
                "[docker]",
                'network_mode = "host"',
                "[deploy]",
                *(
                    f"{k} = {v}" if v in ("true", "false") else f'{k} = "{v}"'
                    for k, v in deploy.items()
                ),
                "[routes]",
                *(f'"{domain}" = "{image}"' for domain, image in self.routes.items()),
                "[external_routes]",
                *(f'"{domain}" = "{address}"' for domain, address in self.external.items()),
            ]
            for key, table in self.tables.items():
                lines += [f'[routes."{key}"]', *(f"{k} = {v}" for k, v in table.items())]
            text = "\n".join(lines) + "\n"
            self.domains.update(self.routes)
            self.domains.update(self.tables)
        self.config_path.write_text(text)

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hotswap", "serve", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def admin(self, token: str = TOKEN) -> AdminClient:
        return AdminClient(Address("127.0.0.1", self.admin_port), token)

    async def cli(self, *args: str) -> Result:
        done = await trio.run_process(
            [sys.executable, "-m", "hotswap", *args, "--config", str(self.config_path)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return Result(done.returncode, done.stdout.decode(), done.stderr.decode())

    async def status(self) -> dict[str, Any] | None:
        try:
            return await trio.to_thread.run_sync(self.admin().status)
        except AdminClientError:
            return None

    async def route(self, domain: str) -> Mapping[str, Any] | None:
        document = await self.status()
        if document is None:
            return None
        for entry in document["routes"]:
            if entry["domain"] == domain:
                return dict(entry)
        return None

    async def wait_routed(self, domain: str) -> Mapping[str, Any]:
        """Until `domain` is routed to a container (the server probed at a tick)."""
        while True:
            self.check_alive()
            entry = await self.route(domain)
            if entry is not None and entry.get("backend"):
                return entry
            await trio.sleep(TICK)

    async def wait_serving(self, domain: str, body: bytes) -> None:
        """Until a request for `domain` through the proxy answers `body`."""
        while True:
            self.check_alive()
            try:
                response = await http_request(self.proxy_port, "/", host=domain)
                if response.status == 200 and response.body == body:
                    return
            except OSError:
                pass
            await trio.sleep(TICK)

    async def get(self, domain: str, path: str = "/") -> bytes:
        response = await http_request(self.proxy_port, path, host=domain)
        assert response.status == 200, response
        return response.body

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"hotswap serve exited with {self.process.returncode}:\n{self.log()}")

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return await trio.to_thread.run_sync(self.process.wait)

    def containers(self, domain: str, *, running_only: bool = True) -> list[Managed]:
        """hotswap's containers of `domain` (low-level list: no per-container inspect that
        could race with hotswap removing one)."""
        found = self.client.api.containers(
            all=not running_only, filters={"label": f"hotswap.domain={domain}"}
        )
        return [Managed(str(c["Id"]), str(c["State"])) for c in found]

    async def wait_containers(self, domain: str, count: int) -> None:
        """Until `count` containers of `domain` are running (docker probed at a tick)."""
        while True:
            self.check_alive()
            found = await trio.to_thread.run_sync(self.containers, domain)
            if len(found) == count:
                return
            await trio.sleep(TICK)

    def tag(self, source: str, ref: str) -> None:
        repository, _, tag = ref.rpartition(":")
        self.client.images.get(source).tag(repository, tag)
        self.tags.add(ref)

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for domain in self.domains:
            for container in self.containers(domain, running_only=False):
                try:
                    self.client.api.remove_container(container.id, force=True)
                except docker.errors.NotFound:
                    pass
        for ref in self.tags:
            try:
                self.client.images.remove(ref)
            except docker.errors.ImageNotFound:
                pass


@pytest.fixture
def hotswap(
    tmp_path: Path, docker_client: docker.DockerClient, test_images: dict[str, str]
) -> Iterator[Hotswap]:
    instance = Hotswap(tmp_path, docker_client, f"hstest-cmd-{uuid.uuid4().hex[:8]}")
    try:
        yield instance
    finally:
        instance.cleanup()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}.test"


async def started(hs: Hotswap, *domains: str) -> None:
    hs.write_config()
    hs.start()
    for domain in domains:
        await hs.wait_routed(domain)


async def test_deploy_prints_each_phase_with_elapsed_time_and_a_summary(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("deploy")
    hotswap.routes[domain] = test_images["app_v1"]
    with trio.fail_after(120):
        await started(hotswap, domain)
        await hotswap.wait_serving(domain, b"v1\n")
        result = await hotswap.cli("deploy", domain, "--image", test_images["app_v2"])
        assert result.code == 0, result
        assert await hotswap.get(domain) == b"v2\n"
    lines = result.out.splitlines()
    phases = [line.split()[1] for line in lines[:-1]]
    # Nothing was in flight: drained at once, then the 1 s stabilization is said aloud.
    for phase in ("starting", "switched", "draining", "drained", "stabilizing", "stopped"):
        assert phase in phases, result.out
    assert all(line.split()[0].endswith("s") for line in lines[:-1])  # elapsed time first
    assert lines[-1].startswith("✓ deployed"), result.out
    assert len(hotswap.containers(domain)) == 1


async def test_a_failing_deploy_exits_1_with_the_reason_and_keeps_the_old_version(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("fail")
    hotswap.routes[domain] = test_images["app_v1"]
    with trio.fail_after(120):
        await started(hotswap, domain)
        result = await hotswap.cli("deploy", domain, "--image", test_images["crash"])
        assert result.code == 1, result
        (summary,) = [line for line in result.out.splitlines() if line.startswith("✗")]
        assert summary.startswith(f"✗ deploy of {domain} failed"), result.out
        assert "exit" in result.out.lower()  # the container's exit code is in the reason
        assert await hotswap.get(domain) == b"v1\n"
        unknown = await hotswap.cli("deploy", "nope.test")
    assert unknown.code == 1 and "nope.test" in unknown.err


async def test_a_second_deploy_of_the_same_domain_is_queued(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("queue")
    hotswap.routes[domain] = test_images["app_v1"]
    with trio.fail_after(180):
        await started(hotswap, domain)
        results: list[Result] = []

        async def deploy(image: str) -> None:
            results.append(await hotswap.cli("deploy", domain, "--image", image, "--force"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(deploy, test_images["slowstart"])
            await trio.sleep(1)  # let the first deploy start (ordering, not a timing assertion)
            nursery.start_soon(deploy, test_images["app_v2"])
    assert [r.code for r in results] == [0, 0], results
    assert "queued" in results[1].out
    assert await hotswap.get(domain) == b"v2\n"


async def test_status_shows_domains_images_containers_and_last_deploys(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("status")
    hotswap.routes[domain] = test_images["app_v1"]
    with trio.fail_after(120):
        await started(hotswap, domain)
        await hotswap.wait_serving(domain, b"v1\n")
        table = await hotswap.cli("status")
        as_json = await hotswap.cli("status", "--json")
        deployed = f'hotswap_deploys_total{{domain="{domain}",result="ok"}}'
        # The start-up deploy ends after its stabilisation, a moment after the route is up.
        while True:
            metrics = await trio.to_thread.run_sync(hotswap.admin().metrics)
            if deployed in metrics:
                break
            await trio.sleep(TICK)
    assert f'hotswap_requests_in_flight{{domain="{domain}"}} 0.0' in metrics
    assert "hotswap_open_client_connections" in metrics
    samples = parse_samples(metrics)
    # The proxy and the deployer feed the metrics: wait_serving's requests, the start-up deploy.
    assert samples[f'hotswap_http_requests_total{{domain="{domain}",status_class="2xx"}}'] >= 1
    assert samples[f'hotswap_http_request_duration_seconds_count{{domain="{domain}"}}'] >= 1
    assert samples[deployed] == 1
    assert samples['hotswap_deploy_duration_seconds_count{result="ok"}'] >= 1
    assert table.code == 0, table
    header, row = table.out.splitlines()[:2]
    assert header.split()[:4] == ["DOMAIN", "IMAGE", "CONTAINER", "STATE"]
    assert row.split()[:2] == [domain, test_images["app_v1"]]
    container = hotswap.containers(domain)[0]
    assert container.id[:12] in row
    document = json.loads(as_json.out)
    (entry,) = [r for r in document["routes"] if r["domain"] == domain]
    assert entry["backend"]["container_id"] == container.id
    assert entry["requests"] >= 1
    assert entry["deploy"]["state"] == "running", entry["deploy"]
    # Status is live: what Docker says now, not what was seen at the deploy.
    hotswap.client.api.pause(container.id)
    try:
        with trio.fail_after(30):
            paused = await hotswap.route(domain)
    finally:
        hotswap.client.api.unpause(container.id)
    assert paused is not None and paused["deploy"]["state"] == "paused", paused


async def test_rollback_redeploys_the_previous_image(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("rollback")
    hotswap.routes[domain] = test_images["app_v1"]
    with trio.fail_after(180):
        await started(hotswap, domain)
        deployed = await hotswap.cli("deploy", domain, "--image", test_images["app_v2"])
        assert deployed.code == 0, deployed
        assert await hotswap.get(domain) == b"v2\n"
        result = await hotswap.cli("rollback", domain)
        assert result.code == 0, result
        assert await hotswap.get(domain) == b"v1\n"
    assert "switched" in result.out
    assert len(hotswap.containers(domain)) == 1


async def test_reload_applies_each_kind_of_change_and_rejects_an_invalid_config(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    kept, changed, added = unique("kept"), unique("changed"), unique("added")
    hotswap.routes.update({kept: test_images["app_v1"], changed: test_images["app_v1"]})
    with trio.fail_after(240):
        await started(hotswap, kept, changed)
        kept_container = hotswap.containers(kept)[0].id

        # Changed image, added route, added external route, changed deploy and proxy settings.
        kept_address = (await hotswap.wait_routed(kept))["backend"]["address"]
        external = unique("external")
        hotswap.routes[changed] = test_images["app_v2"]
        hotswap.routes[added] = test_images["app_v2"]
        hotswap.external[external] = kept_address
        hotswap.deploy["drain_timeout"] = "7s"
        hotswap.server["max_body_size"] = '"1MB"'
        hotswap.write_config()
        result = await hotswap.cli("reload")
        assert result.code == 0, result
        assert f"route {changed} changed" in result.out
        assert f"route {added} added" in result.out
        assert f"external route {external}" in result.out
        assert "drain_timeout" in result.out
        assert "max_body_size" in result.out
        await hotswap.wait_serving(changed, b"v2\n")
        await hotswap.wait_serving(added, b"v2\n")
        assert await hotswap.get(external) == b"v1\n"
        too_big = await http_request(
            hotswap.proxy_port, "/echo", method="POST", body=b"x" * 1_000_001, host=kept
        )
        assert too_big.status == 413  # the new max_body_size applies without a restart
        assert [c.id for c in hotswap.containers(kept)] == [kept_container]

        # Removed route: drained, then its container stopped.
        del hotswap.routes[added]
        hotswap.write_config()
        result = await hotswap.cli("reload")
        assert f"route {added} removed" in result.out, result
        await hotswap.wait_containers(added, 0)

        # Invalid config: rejected with the message; the running config stays.
        hotswap.config_path.write_text(hotswap.config_path.read_text() + "\n[deploy]\nbogus = 1\n")
        result = await hotswap.cli("reload")
        assert result.code != 0
        assert "hotswap.toml" in result.err, result
        assert await hotswap.get(kept) == b"v1\n"

        # SIGHUP re-reads the file too.
        hotswap.routes[changed] = test_images["app_v1"]
        hotswap.write_config()
        assert hotswap.process is not None
        hotswap.process.send_signal(signal.SIGHUP)
        await hotswap.wait_serving(changed, b"v1\n")


async def test_image_watch_deploys_after_docker_tag(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("watch")
    ref = f"{hotswap.tag_prefix}/app:latest"
    hotswap.tag(test_images["app_v1"], ref)
    hotswap.routes[domain] = ref
    with trio.fail_after(120):
        await started(hotswap, domain)
        await hotswap.wait_serving(domain, b"v1\n")
        hotswap.tag(test_images["app_v2"], ref)
        with trio.move_on_after(60) as waiting:
            await hotswap.wait_serving(domain, b"v2\n")
        assert not waiting.cancelled_caught, hotswap.log()
        await hotswap.wait_containers(domain, 1)  # the old one stopped
    assert "image-watch" in hotswap.log() or "image watch" in hotswap.log()


async def test_reload_moving_a_route_to_external_routes_stops_its_container(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("moved")
    hotswap.routes[domain] = test_images["app_v1"]
    with trio.fail_after(120):
        await started(hotswap, domain)
        await hotswap.wait_serving(domain, b"v1\n")
        del hotswap.routes[domain]
        closed = free_port()  # nothing listens: the external route answers 502
        hotswap.external[domain] = f"127.0.0.1:{closed}"
        hotswap.write_config()
        result = await hotswap.cli("reload")
        assert result.code == 0 and f"route {domain} is now external" in result.out, result
        await hotswap.wait_containers(domain, 0)  # drained, stopped and removed
        response = await http_request(hotswap.proxy_port, "/", host=domain)
        assert response.status == 502
        entry = await hotswap.route(domain)
        assert entry is not None and entry["kind"] == "external", entry


async def test_reload_turns_the_image_watch_on_and_off(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("watchreload")
    ref = f"{hotswap.tag_prefix}/app:latest"
    hotswap.tag(test_images["app_v1"], ref)
    hotswap.routes[domain] = ref
    hotswap.deploy["watch_images"] = "false"
    with trio.fail_after(120):
        await started(hotswap, domain)
        await hotswap.wait_serving(domain, b"v1\n")
        hotswap.deploy["watch_images"] = "true"
        hotswap.write_config()
        on = await hotswap.cli("reload")
        assert on.code == 0 and "image watch started" in on.out, on
        hotswap.tag(test_images["app_v2"], ref)
        with trio.move_on_after(60) as waiting:
            await hotswap.wait_serving(domain, b"v2\n")
        assert not waiting.cancelled_caught, hotswap.log()
        hotswap.deploy["watch_images"] = "false"
        hotswap.write_config()
        off = await hotswap.cli("reload")
        assert off.code == 0 and "image watch stopped" in off.out, off
    assert "image watch started" in hotswap.log()


async def test_a_wrong_token_is_refused_with_a_clear_message(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("token")
    hotswap.routes[domain] = test_images["app_v1"]
    with trio.fail_after(120):
        await started(hotswap, domain)
        hotswap.write_config(token="not-the-token")
        result = await hotswap.cli("status")
    assert result.code == 1
    assert "refused the admin token" in result.err, result
    with pytest.raises(AdminClientError, match="refused the admin token"):
        await trio.to_thread.run_sync(hotswap.admin("wrong").status)


async def test_a_client_without_a_server_names_the_address(hotswap: Hotswap) -> None:
    hotswap.write_config()
    with trio.fail_after(30):
        result = await hotswap.cli("status")
    assert result.code == 1
    assert f"cannot reach hotswap at 127.0.0.1:{hotswap.admin_port}" in result.err
    assert "is `hotswap serve` running?" in result.err


async def test_sigterm_leaves_containers_running_and_a_restart_adopts_them(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("adopt")
    hotswap.routes[domain] = test_images["app_v1"]
    with trio.fail_after(120):
        await started(hotswap, domain)
        await hotswap.wait_serving(domain, b"v1\n")
        (before,) = hotswap.containers(domain)
        assert await hotswap.stop(signal.SIGTERM) == 0
        (still,) = hotswap.containers(domain)
        assert still.id == before.id
        assert still.status == "running"

        hotswap.start()
        # The restarted proxy adopts before it listens: its very first answer is the app's.
        while True:
            hotswap.check_alive()
            try:
                first = await http_request(hotswap.proxy_port, "/", host=domain)
                break
            except OSError:  # not listening yet
                await trio.sleep(TICK)
        assert (first.status, first.body) == (200, b"v1\n"), first
        entry = await hotswap.wait_routed(domain)
        assert entry["backend"]["container_id"] == before.id
        assert await hotswap.get(domain) == b"v1\n"
        assert [c.id for c in hotswap.containers(domain, running_only=False)] == [before.id]
        assert await hotswap.stop(signal.SIGINT) == 0


class Lines:
    """Lines of a subprocess's output as they arrive."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""
        self.seen: list[str] = []

    async def until(self, text: str) -> str:
        """The first line from now on that contains `text`."""
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                self.seen.append(line.decode(errors="replace"))
                if text in self.seen[-1]:
                    return self.seen[-1]
            data = await self.stream.receive_some(65536)
            if not data:
                raise AssertionError(f"output ended before {text!r}: {self.seen}")
            self.buffer += data


async def test_logs_follow_goes_on_across_a_deploy(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    domain = unique("logs")
    hotswap.routes[domain] = test_images["app_v1"]
    with trio.fail_after(120):
        await started(hotswap, domain)
        await hotswap.wait_serving(domain, b"v1\n")
        tail = await hotswap.cli("logs", domain, "--tail", "1")
        assert tail.code == 0 and len(tail.out.splitlines()) == 1, tail
        command = [sys.executable, "-m", "hotswap", "logs", domain, "--follow"]
        process = await trio.lowlevel.open_process(
            [*command, "--config", str(hotswap.config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert process.stdout is not None and process.stderr is not None
            out, err = Lines(process.stdout), Lines(process.stderr)
            await out.until("version=v1 listening")
            deployed = await hotswap.cli("deploy", domain, "--image", test_images["app_v2"])
            assert deployed.code == 0, deployed
            await out.until("version=v2 listening")  # the new container, same stream
            assert "hotswap: now hotswap-logs-" in await err.until("hotswap: now")
            await hotswap.get(domain)
            await out.until("version=v2 GET / 200")  # and it goes on live
        finally:
            process.kill()
            await process.wait()
