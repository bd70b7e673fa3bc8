"""Path routes on the real engine, through `hotswap serve` and its CLI (issue 12): a path
route is a route in every sense — its own container, deploys, rollback, status, metrics,
logs and adoption after a restart — next to its domain's plain route, untouched by them."""

from __future__ import annotations

import dataclasses
import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import trio
from deploy_harness import KeepAliveClient, open_harness
from docker_helpers import http_request
from test_commands import TICK, Hotswap, started, unique

from hotswap.config import Route
from hotswap.deploy import Outcome
from hotswap.metrics import parse_samples


@pytest.fixture
def hotswap(
    tmp_path: Path, docker_client: docker.DockerClient, test_images: dict[str, str]
) -> Iterator[Hotswap]:
    instance = Hotswap(tmp_path, docker_client, f"hstest-paths-{uuid.uuid4().hex[:8]}")
    try:
        yield instance
    finally:
        instance.cleanup()


async def wait_path(hs: Hotswap, domain: str, path: str, body: bytes) -> None:
    """Until GET `path` on `domain` through the proxy answers `body` (probed at a tick)."""
    while True:
        hs.check_alive()
        response = await http_request(hs.proxy_port, path, host=domain)
        if response.status == 200 and response.body == body:
            return
        await trio.sleep(TICK)


async def test_a_path_route_deploys_rolls_back_and_is_adopted_beside_its_domain(
    hotswap: Hotswap, test_images: dict[str, str]
) -> None:
    site = unique("paths")
    api = f"{site}/api"
    hotswap.routes[site] = test_images["app_v1"]
    hotswap.tables[api] = {"image": f'"{test_images["app_v2"]}"', "strip_prefix": "true"}
    with trio.fail_after(240):
        await started(hotswap, site, api)
        # Two containers, each answering its own paths; the api sees them stripped.
        await wait_path(hotswap, site, "/api", b"v2\n")
        assert await hotswap.get(site) == b"v1\n"
        apix = await http_request(hotswap.proxy_port, "/apix", host=site)  # the site's own 404
        assert apix.headers["x-app-version"] == "v1", apix
        seen = json.loads(await hotswap.get(site, "/api/headers?x=1"))
        assert seen["target"] == "/headers?x=1"
        assert ["x-forwarded-prefix", "/api"] in [[k.lower(), v] for k, v in seen["headers"]]
        (site_container,) = hotswap.containers(site)
        (api_container,) = hotswap.containers(api)
        name = hotswap.client.containers.get(api_container.id).name
        assert name.startswith(f"hotswap-{site.replace('.', '-')}-api-"), name

        # A deploy of the path route, by its key on the command line: the site is untouched.
        deployed = await hotswap.cli("deploy", api, "--image", test_images["app_v1"])
        assert deployed.code == 0, deployed
        assert deployed.out.splitlines()[-1].startswith(f"✓ deployed {test_images['app_v1']}")
        assert await hotswap.get(site, "/api") == b"v1\n"
        assert [c.id for c in hotswap.containers(site)] == [site_container.id]
        (new_api,) = hotswap.containers(api)
        assert new_api.id != api_container.id

        # Status, metrics and logs know it by its route key.
        status = json.loads((await hotswap.cli("status", "--json")).out)
        entry = {r["domain"]: r for r in status["routes"]}[api]
        assert entry["backend"]["container_id"] == new_api.id
        assert entry["deploy"]["last_deploy"]["result"] == "ok"
        table = (await hotswap.cli("status")).out
        assert any(line.split()[:1] == [api] for line in table.splitlines()), table
        samples = parse_samples(await trio.to_thread.run_sync(hotswap.admin().metrics))
        assert samples[f'hotswap_deploys_total{{domain="{api}",result="ok"}}'] >= 1
        assert samples[f'hotswap_http_requests_total{{domain="{api}",status_class="2xx"}}'] >= 1
        logs = await hotswap.cli("logs", api, "--tail", "20")
        assert logs.code == 0 and "version=v1 GET / 200" in logs.out, logs

        # Rollback by route key: the image before the last deploy.
        rolled = await hotswap.cli("rollback", api)
        assert rolled.code == 0, rolled
        assert await hotswap.get(site, "/api") == b"v2\n"
        assert [c.id for c in hotswap.containers(site)] == [site_container.id]
        (api_now,) = hotswap.containers(api)

        # A restart adopts both containers by their labels: no redeploy.
        assert await hotswap.stop(signal.SIGTERM) == 0
        hotswap.start()
        while True:
            hotswap.check_alive()
            try:
                first = await http_request(hotswap.proxy_port, "/api", host=site)
                break
            except OSError:  # not listening yet
                await trio.sleep(TICK)
        assert (first.status, first.body) == (200, b"v2\n"), first
        assert (await hotswap.wait_routed(api))["backend"]["container_id"] == api_now.id
        assert (await hotswap.wait_routed(site))["backend"]["container_id"] == site_container.id
        assert [c.id for c in hotswap.containers(api, running_only=False)] == [api_now.id]
        assert await hotswap.stop(signal.SIGINT) == 0


async def test_traffic_to_a_domain_and_its_path_route_sees_no_error_across_a_path_deploy(
    test_images: dict[str, str],
) -> None:
    # Keep-alive clients alternate between the site and /api on one connection while the
    # /api route is deployed twice (new containers each time): the site keeps its
    # container, and no request of either fails.
    async with open_harness(test_images) as h:
        with trio.fail_after(120):
            site = h.add_route("pathload", "app_v1")
            api = f"{site}/api"
            routes = dict(h.config.routes)
            routes[api] = Route(api, h.image("app_v2"), strip_prefix=True)
            h.set_config(dataclasses.replace(h.config, routes=routes))
            h.routes.set_strip_prefixes([api])
            assert (await h.deploy(site)).result.ok
            assert (await h.deploy(api)).result.ok
            site_backend = h.routes.get(site)
            results: list[tuple[str, int, bytes]] = []
            stop = trio.Event()

            async def client() -> None:
                async with KeepAliveClient.connect(h.proxy.port) as c:
                    while not stop.is_set():
                        for path in ("/", "/api"):
                            status, body = await c.get(site, path)
                            results.append((path, status, body))
                        await trio.sleep(0.005)  # a bounded rate on a shared machine

            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(client)
                for image in ("app_v1", "app_v2"):
                    deployed = await h.deploy(api, image)
                    assert deployed.result.outcome is Outcome.OK, deployed.result.error
                stop.set()
            assert h.routes.get(site) is site_backend  # the site was never switched
            assert {(path, status) for path, status, _ in results} == {("/", 200), ("/api", 200)}
            assert {body for path, _, body in results if path == "/"} == {b"v1\n"}
            assert {body for path, _, body in results if path == "/api"} <= {b"v1\n", b"v2\n"}
            assert len(await h.running(api)) == 1 and len(await h.running(site)) == 1
