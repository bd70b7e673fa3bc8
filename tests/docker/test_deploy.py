"""Deploys against the real engine: every readiness mode, the skip rule, rollback, and
every failure path (each leaves the old container serving and nothing of the new one)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
import trio
from deploy_harness import Harness, follow, open_harness, wait_phase

from hotswap.config import DockerConfig, NetworkMode, ReadinessMode
from hotswap.deploy import Outcome
from hotswap.errors import ContainerRuntimeError, DeployError, UnknownDomainError
from hotswap.runtime import LABEL_PREVIOUS_IMAGE, ContainerInfo


@pytest.fixture
async def h(test_images: dict[str, str]) -> AsyncIterator[Harness]:
    async with open_harness(test_images) as harness:
        yield harness


async def serving_v1(h: Harness, name: str, **route: object) -> tuple[str, ContainerInfo]:
    """A route with app v1 deployed and serving through the proxy."""
    domain = h.add_route(name, "app_v1", **route)
    first = await h.deploy(domain)
    assert first.result.outcome is Outcome.OK, first.result.error
    assert await h.get(domain) == (200, b"v1\n")
    [old] = await h.running(domain)
    return domain, old


async def assert_old_still_serving(h: Harness, domain: str, old: ContainerInfo) -> None:
    """The failed deploy left exactly the old container, and it serves."""
    assert [c.id for c in await h.managed(domain)] == [old.id]
    assert await h.get(domain) == (200, b"v1\n")


async def test_a_deploy_switches_to_the_new_version_and_removes_the_old(h: Harness) -> None:
    with trio.fail_after(60):
        domain, old = await serving_v1(h, "swap")
        deployed = await h.deploy(domain, "app_v2")
        assert deployed.result.outcome is Outcome.OK, deployed.result.error
        assert await h.get(domain) == (200, b"v2\n")
        [new] = await h.managed(domain)
        assert new.id != old.id and new.running
        assert new.labels[LABEL_PREVIOUS_IMAGE] == h.image("app_v1")
        phases = deployed.phases
        for phase in (
            "pulling",
            "creating",
            "starting",
            "health",
            "ready",
            "switched",
            "draining",
            "drained",
            "stopping",
            "stopped",
            "done",
        ):
            assert phase in phases, phases
        assert phases.index("ready") < phases.index("switched") < phases.index("stopped")
        assert phases[-1] == "done"
        assert deployed.result.healthy_to_switch is not None
        assert deployed.result.idle_to_stop is not None
        status = h.deployer.status()["domains"][domain]
        assert status["container_id"] == new.id
        assert status["last_deploy"]["result"] == "ok"


async def test_the_same_image_is_skipped_unless_forced(h: Harness) -> None:
    with trio.fail_after(60):
        domain, old = await serving_v1(h, "skip")
        skipped = await h.deploy(domain)
        assert skipped.result.outcome is Outcome.SKIPPED
        assert skipped.phases[-2:] == ["skipped", "done"]
        assert [c.id for c in await h.managed(domain)] == [old.id]
        forced = await h.deploy(domain, force=True)
        assert forced.result.outcome is Outcome.OK, forced.result.error
        [new] = await h.managed(domain)
        assert new.id != old.id


async def test_rollback_deploys_the_image_that_ran_before(h: Harness) -> None:
    with trio.fail_after(60):
        domain, _ = await serving_v1(h, "rollback")
        with pytest.raises(DeployError):
            h.deployer.start_rollback(domain)  # v1 was the first: nothing before it
        assert (await h.deploy(domain, "app_v2")).result.ok
        assert (await h.deploy(domain, "app_v2", force=True)).result.ok  # keeps the record
        rolled = await follow(h.deployer.start_rollback(domain))
        assert rolled.result.outcome is Outcome.OK, rolled.result.error
        assert await h.get(domain) == (200, b"v1\n")


async def test_an_unknown_domain_is_refused(h: Harness) -> None:
    with pytest.raises(UnknownDomainError):
        h.deployer.start_deploy("nope.deploy.test")


@pytest.mark.parametrize(
    ("mode", "image", "waits_on"),
    [
        (ReadinessMode.AUTO, "app_v2", "health"),  # healthcheck: Docker health
        (ReadinessMode.AUTO, "nohealth", "waiting"),  # no healthcheck: readiness_delay
        (ReadinessMode.DOCKER_HEALTH, "slowstart", "health"),
        (ReadinessMode.DELAY, "app_v2", "waiting"),
        (ReadinessMode.HTTP, "slowstart", "waiting"),
    ],
)
async def test_every_readiness_mode_deploys(
    h: Harness, mode: ReadinessMode, image: str, waits_on: str
) -> None:
    with trio.fail_after(60):
        domain, _ = await serving_v1(h, f"ready-{mode}")
        h.set_deploy(readiness_mode=mode)
        deployed = await h.deploy(domain, image)
        assert deployed.result.outcome is Outcome.OK, deployed.result.error
        assert waits_on in deployed.phases
        [new] = await h.running(domain)
        assert new.image == h.image(image)
        status, _ = await h.get(domain)
        assert status == 200
        if mode is ReadinessMode.HTTP:
            waiting = [e for e in deployed.events if e.phase.value == "waiting"]
            assert any(e.data.get("host") == domain for e in waiting)


@pytest.mark.parametrize(
    ("mode", "image", "expected"),
    [
        (ReadinessMode.AUTO, "crash", "exited with code 3"),
        (ReadinessMode.DELAY, "crash", "exited with code 3"),
        (ReadinessMode.HTTP, "crash", "exited with code 3"),
        (ReadinessMode.AUTO, "unhealthy", "unhealthy"),
        (ReadinessMode.DOCKER_HEALTH, "nohealth", "no healthcheck detected"),
    ],
)
async def test_a_failed_readiness_keeps_the_old_container_serving(
    h: Harness, mode: ReadinessMode, image: str, expected: str
) -> None:
    with trio.fail_after(60):
        domain, old = await serving_v1(h, f"fail-{mode}-{image}")
        h.set_deploy(readiness_mode=mode)
        deployed = await h.deploy(domain, image)
        assert deployed.result.outcome is Outcome.FAILED
        assert expected in deployed.result.error
        assert deployed.phases[-1] == "failed"
        assert "switched" not in deployed.phases
        if image == "crash":  # the log's last lines come with the exit code
            assert "crashing on purpose" in deployed.result.error
        if image == "unhealthy":
            assert "last health check output" in deployed.result.error
        await assert_old_still_serving(h, domain, old)


async def test_a_health_timeout_fails_with_the_last_status_seen(h: Harness) -> None:
    with trio.fail_after(60):
        domain, old = await serving_v1(h, "timeout")
        h.set_deploy(health_timeout=1.0)  # slowstart listens after 3 s
        deployed = await h.deploy(domain, "slowstart")
        assert deployed.result.outcome is Outcome.FAILED
        assert "not ready within health_timeout=1s" in deployed.result.error
        assert "last health status: starting" in deployed.result.error
        await assert_old_still_serving(h, domain, old)


async def test_an_image_that_cannot_be_pulled_fails_before_creating_anything(
    h: Harness,
) -> None:
    with trio.fail_after(60):
        domain, old = await serving_v1(h, "pull")
        deployed = await h.deploy(domain, "hotswap-test/does-not-exist:nope")
        assert deployed.result.outcome is Outcome.FAILED
        assert "hotswap-test/does-not-exist:nope" in deployed.result.error
        assert "creating" not in deployed.phases
        await assert_old_still_serving(h, domain, old)


async def test_an_inspect_failure_after_start_removes_the_new_container(h: Harness) -> None:
    with trio.fail_after(60):
        domain, old = await serving_v1(h, "inspect")
        original = h.runtime.inspect

        async def broken_inspect(container_id: str) -> ContainerInfo:
            if container_id != old.id:
                raise ContainerRuntimeError(f"inspect container {container_id[:12]}: boom")
            return await original(container_id)

        h.runtime.inspect = broken_inspect  # type: ignore[method-assign]
        try:
            deployed = await h.deploy(domain, "app_v2")
        finally:
            h.runtime.inspect = original  # type: ignore[method-assign]
        assert deployed.result.outcome is Outcome.FAILED
        assert "boom" in deployed.result.error
        await assert_old_still_serving(h, domain, old)


async def test_cancelling_a_deploy_removes_the_new_container(h: Harness) -> None:
    with trio.fail_after(60):
        domain, old = await serving_v1(h, "cancel")
        handle = h.deployer.start_deploy(domain, h.image("slowstart"))
        await wait_phase(handle, "starting")
        handle.cancel()
        result = await handle.wait()
        assert result.outcome is Outcome.FAILED and "cancelled" in result.error
        await assert_old_still_serving(h, domain, old)


async def test_a_new_container_dying_during_stabilization_routes_back(h: Harness) -> None:
    with trio.fail_after(60):
        domain, old = await serving_v1(h, "stabilize")
        # nohealth + delay: ready after 0.5 s; then we make it exit through /exit.
        h.set_deploy(readiness_mode=ReadinessMode.DELAY, stabilization=30.0, drain_timeout=30.0)
        handle = h.deployer.start_deploy(domain, h.image("nohealth"))
        await wait_phase(handle, "switched")
        status, _ = await h.get(domain, "/exit")  # reaches the new container
        assert status == 200
        result = await handle.wait()
        assert result.outcome is Outcome.FAILED, result
        assert "exited with code 3" in result.error
        assert "rolled_back" in [e.phase.value for e in handle.history]
        await assert_old_still_serving(h, domain, old)


async def test_a_lost_events_stream_fails_the_waiting_deploy_with_a_clear_error(
    h: Harness,
) -> None:
    with trio.fail_after(60):
        domain, old = await serving_v1(h, "eventslost")
        handle = h.deployer.start_deploy(domain, h.image("slowstart"))
        await wait_phase(handle, "health")  # waiting on Docker's events for "healthy"
        h.runtime.events.disconnect()
        result = await handle.wait()
        assert result.outcome is Outcome.FAILED
        assert "events stream was lost" in result.error
        await h.runtime.events.wait_connected()
        await assert_old_still_serving(h, domain, old)


async def test_an_image_without_a_port_fails_in_bridge_mode_and_runs_in_host_mode(
    h: Harness,
) -> None:
    with trio.fail_after(60):
        domain, old = await serving_v1(h, "noport")
        host_mode = h.config
        h.set_config(dataclasses.replace(h.config, docker=DockerConfig(NetworkMode.BRIDGE)))
        deployed = await h.deploy(domain, "noport")
        assert deployed.result.outcome is Outcome.FAILED
        assert f'no port: set routes."{domain}".port or label the image hotswap.port' in (
            deployed.result.error
        )
        assert "creating" not in deployed.phases
        await assert_old_still_serving(h, domain, old)
        h.set_config(host_mode)  # host mode: the app listens on $PORT, no port needed
        deployed = await h.deploy(domain, "noport")
        assert deployed.result.outcome is Outcome.OK, deployed.result.error
        status, _ = await h.get(domain)
        assert status == 200
