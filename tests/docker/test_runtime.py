"""DockerRuntime against the real engine: containers, events, ports, images.

Every container gets a unique domain under `.runtime.test` and the test-session
label, so other helpers' tests never see them as theirs and leftovers are
removed at session end.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial

import docker
import pytest
import trio
from docker_helpers import SESSION_LABEL, ContainerFactory, http_request

from hotswap.config import DockerConfig, NetworkMode, PullPolicy
from hotswap.errors import (
    ContainerNotFoundError,
    ContainerRuntimeError,
    EventStreamLost,
    ImageError,
)
from hotswap.runtime import (
    LABEL_DEPLOY,
    LABEL_DOMAIN,
    LABEL_HOST_PORT,
    LABEL_IMAGE,
    LABEL_MANAGED,
    ContainerEvent,
    ContainerSpec,
    DockerRuntime,
    EventKind,
    EventReceiver,
    Health,
)

CRASH_LINE = "FATAL: hotswap test app crashing on purpose (CRASH=1)"
SpecFactory = Callable[..., ContainerSpec]


@pytest.fixture
async def runtime(
    docker_client: docker.DockerClient, test_images: dict[str, str]
) -> AsyncIterator[DockerRuntime]:
    rt = DockerRuntime(DockerConfig(network_mode=NetworkMode.HOST))
    created: list[str] = []
    original_create = rt.create

    async def create_tracked(spec: ContainerSpec) -> str:
        container_id = await original_create(spec)
        created.append(container_id)
        return container_id

    rt.create = create_tracked  # type: ignore[method-assign]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(rt.run)
            yield rt
            for container_id in created:
                await rt.remove(container_id)
            # Cancelling must end the events thread promptly (the stream is closed).
            nursery.cancel_scope.cancel()
    rt.close()


@pytest.fixture
def make_spec(containers: ContainerFactory, test_images: dict[str, str]) -> SpecFactory:
    def make(
        image: str = "app_v1", *, domain: str | None = None, **kwargs: object
    ) -> ContainerSpec:
        return ContainerSpec(
            domain=domain or f"rt-{uuid.uuid4().hex[:8]}.runtime.test",
            image=test_images[image],
            image_id="",
            deploy_id=uuid.uuid4().hex,
            container_port=None,
            network_mode=NetworkMode.HOST,
            extra_labels={SESSION_LABEL: containers.session_id},
            **kwargs,  # type: ignore[arg-type]
        )

    return make


async def next_event(events: EventReceiver[ContainerEvent], kind: EventKind) -> ContainerEvent:
    while True:
        event = await events.receive()
        if event.kind is kind:
            return event


async def test_container_lifecycle_with_labels_name_address_and_events(
    runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    with trio.fail_after(60):
        spec = make_spec(env={"GREETING": "hi", "PORT": "1"})
        container_id = await runtime.create(spec)
        with runtime.subscribe(container_id) as events:
            info = await runtime.start(container_id)
            assert info.running and info.status == "running"
            assert info.address is not None and info.address.host == "127.0.0.1"
            assert info.labels[LABEL_HOST_PORT] == str(info.address.port)
            assert info.labels[LABEL_MANAGED] == "true"
            assert info.labels[LABEL_DOMAIN] == spec.domain
            assert info.labels[LABEL_DEPLOY] == spec.deploy_id
            assert info.labels[LABEL_IMAGE] == spec.image
            assert (info.domain, info.deploy_id, info.image) == (
                spec.domain,
                spec.deploy_id,
                spec.image,
            )
            assert info.name == f"hotswap-{spec.domain.replace('.', '-')}-{spec.deploy_id[:8]}"
            assert info.image_id.startswith("sha256:")

            assert (await next_event(events, EventKind.START)).container_id == container_id
            healthy = await next_event(events, EventKind.HEALTH)
            assert healthy.health is Health.HEALTHY

            response = await http_request(info.address.port, "/")
            assert (response.status, response.body) == (200, b"v1\n")
            inspected = await runtime.inspect(container_id)
            assert inspected.health is Health.HEALTHY
            assert inspected.exit_code is None

            await runtime.stop(container_id, grace=5)
            died = await next_event(events, EventKind.DIE)
            assert died.exit_code == 0
            stopped = await runtime.inspect(container_id)
            assert not stopped.running and stopped.exit_code == 0
            await runtime.stop(container_id, grace=5)  # already stopped: no error

            await runtime.remove(container_id)
            await next_event(events, EventKind.DESTROY)
        await runtime.remove(container_id)  # already gone: no error
        await runtime.stop(container_id, grace=1)
        with pytest.raises(ContainerNotFoundError, match=container_id[:12]):
            await runtime.inspect(container_id)


async def test_crashing_container_reports_exit_code_and_log_tail(
    runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    with trio.fail_after(60):
        container_id = await runtime.create(make_spec("crash"))
        with runtime.subscribe(container_id) as events:
            await runtime.start(container_id)
            died = await next_event(events, EventKind.DIE)
        assert died.exit_code == 3
        await runtime.stop(container_id, grace=0)  # the restart policy would revive it
        info = await runtime.inspect(container_id)
        assert info.exit_code == 3 and not info.running
        assert CRASH_LINE in await runtime.logs_tail(container_id, 5)


async def test_unhealthy_container_reports_status_and_last_probe_output(
    runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    with trio.fail_after(60):
        container_id = await runtime.create(make_spec("unhealthy"))
        with runtime.subscribe(container_id) as events:
            await runtime.start(container_id)
            event = await next_event(events, EventKind.HEALTH)
            while event.health is not Health.UNHEALTHY:
                event = await next_event(events, EventKind.HEALTH)
        info = await runtime.inspect(container_id)
        assert info.health is Health.UNHEALTHY and info.health_log != ""


async def test_container_without_healthcheck_has_health_none(
    runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    with trio.fail_after(60):
        container_id = await runtime.create(make_spec("nohealth"))
        info = await runtime.start(container_id)
        assert info.health is Health.NONE and info.health_log == ""


async def test_host_mode_ports_differ_and_are_rebuilt_after_restart(
    runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    with trio.fail_after(60):
        domain = f"rt-{uuid.uuid4().hex[:8]}.runtime.test"
        first = await runtime.create(make_spec(domain=domain))
        second = await runtime.create(make_spec(domain=domain))
        a, b = await runtime.inspect(first), await runtime.inspect(second)
        assert a.address is not None and b.address is not None
        assert a.address.port != b.address.port
        assert a.name != b.name

        # A new runtime (hotswap restarted) finds both, stopped ones too, with addresses,
        # and treats their ports as taken.
        fresh = DockerRuntime(DockerConfig(network_mode=NetworkMode.HOST))
        try:
            found = {i.id: i for i in await fresh.list_managed() if i.domain == domain}
        finally:
            fresh.close()
        assert set(found) == {first, second}
        assert found[first].address == a.address and found[second].address == b.address
        assert not found[first].running


async def test_ensure_image_uses_local_image_offline_under_every_policy(
    runtime: DockerRuntime, test_images: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    ref = test_images["app_v1"]
    with trio.fail_after(60):
        local = await runtime.image_info(ref)
        assert local is not None and local.port == 8000 and local.has_healthcheck
        for policy in PullPolicy:
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="hotswap.runtime.docker"):
                info = await runtime.ensure_image(ref, policy)
            assert info == local
            pulled = any("pull failed" in r.getMessage() for r in caplog.records)
            assert pulled is (policy is not PullPolicy.IF_NOT_PRESENT)


async def test_ensure_image_reports_missing_unpullable_image(runtime: DockerRuntime) -> None:
    ref = f"hotswap-rt-missing-{uuid.uuid4().hex[:8]}/app:1"
    with trio.fail_after(60):
        assert await runtime.image_info(ref) is None
        with pytest.raises(ImageError, match=f"{ref} is not present locally and could not"):
            await runtime.ensure_image(ref, PullPolicy.IF_NOT_PRESENT)


async def test_image_port_and_healthcheck_come_from_the_image(
    runtime: DockerRuntime, test_images: dict[str, str]
) -> None:
    with trio.fail_after(30):
        noport = await runtime.image_info(test_images["noport"])
        nohealth = await runtime.image_info(test_images["nohealth"])
    assert noport is not None and noport.port is None
    assert nohealth is not None and not nohealth.has_healthcheck


async def test_docker_tag_produces_an_image_event(
    runtime: DockerRuntime, docker_client: docker.DockerClient, test_images: dict[str, str]
) -> None:
    repo = f"hotswap-rt-{uuid.uuid4().hex[:8]}/app"
    source = await runtime.image_info(test_images["app_v2"])
    assert source is not None
    try:
        with trio.fail_after(30), runtime.subscribe_images() as images:
            await trio.to_thread.run_sync(partial(docker_client.api.tag, source.id, repo, "next"))
            event = await images.receive()
            while event.ref != f"{repo}:next":
                event = await images.receive()
        assert event.image_id == source.id
    finally:
        await trio.to_thread.run_sync(partial(docker_client.api.remove_image, f"{repo}:next"))


async def test_lost_events_stream_fails_waiters_then_reconnects(
    runtime: DockerRuntime, make_spec: SpecFactory
) -> None:
    with trio.fail_after(60):
        with runtime.subscribe("0" * 64) as waiting, runtime.subscribe_images() as images:
            runtime.events.disconnect()
            with pytest.raises(EventStreamLost, match="Docker's events stream was lost"):
                await waiting.receive()
            with pytest.raises(EventStreamLost):
                await images.receive()
        # After the reconnect, new subscriptions get events again.
        await runtime.events.wait_connected()
        container_id = await runtime.create(make_spec("nohealth"))
        with runtime.subscribe(container_id) as events:
            await runtime.start(container_id)
            assert (await next_event(events, EventKind.START)).container_id == container_id


async def test_bridge_mode_publishes_on_loopback_or_says_why_not(
    make_spec: SpecFactory, docker_client: docker.DockerClient
) -> None:
    # The test engine runs with --bridge=none (no bridge network), where Docker
    # publishes nothing: start() must say so. On an engine with a bridge the port is
    # read back. No traffic is sent either way (it would leave loopback).
    rt = DockerRuntime(DockerConfig(network_mode=NetworkMode.BRIDGE))
    spec = make_spec("nohealth", env={"BIND_HOST": "0.0.0.0"})
    spec = dataclasses.replace(spec, network_mode=NetworkMode.BRIDGE, container_port=8000)
    try:
        with trio.fail_after(60):
            container_id = await rt.create(spec)
            try:
                created = await rt.inspect(container_id)
                assert created.address is None and "hotswap.host-port" not in created.labels
                try:
                    info = await rt.start(container_id)
                except ContainerRuntimeError as exc:
                    assert "published no host port for container port 8000" in str(exc)
                else:
                    assert info.address is not None and info.address.host == "127.0.0.1"
                    assert (await rt.inspect(container_id)).address == info.address
            finally:
                await rt.remove(container_id)
    finally:
        rt.close()
