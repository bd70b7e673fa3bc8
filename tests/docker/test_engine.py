"""End to end against the real engine: the test images behave as the other tests assume."""

from __future__ import annotations

from functools import partial

import docker
import docker.errors
import h11
import pytest
import trio
import trio_websocket
from docker_helpers import (
    ContainerExited,
    ContainerFactory,
    container_events,
    http_request,
    wait_for_event,
    wait_for_health,
)
from imagebuilder import APP_PORT, TEST_IMAGES

CRASH_LINE = "FATAL: hotswap test app crashing on purpose (CRASH=1)"


async def wait_until_serving(port: int) -> None:
    """Probe another process until it accepts connections (an allowed tick)."""
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(0.1)
        else:
            await stream.aclose()
            return


async def test_container_from_app_v1_becomes_healthy_by_event_and_serves_v1(
    docker_client: docker.DockerClient, test_images: dict[str, str], free_port: int
) -> None:
    with trio.fail_after(60):
        container = await trio.to_thread.run_sync(
            partial(
                docker_client.containers.create,
                test_images["app_v1"],
                name=f"hstest-engine-{free_port}",
                network_mode="host",
                environment={"PORT": str(free_port)},
            )
        )
        try:
            async with container_events(docker_client, container.id) as events:
                await trio.to_thread.run_sync(container.start)
                event = await wait_for_health(events, "healthy")
            assert event["Actor"]["ID"] == container.id

            response = await http_request(free_port, "/")
            assert response.status == 200
            assert response.body == b"v1\n"
            assert response.headers["x-app-version"] == "v1"
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(30):
                await trio.to_thread.run_sync(partial(container.remove, force=True))
        with pytest.raises(docker.errors.NotFound):
            await trio.to_thread.run_sync(docker_client.containers.get, container.id)


async def test_app_v2_speaks_http_sse_echo_websocket_then_exits_3_on_request(
    docker_client: docker.DockerClient, test_images: dict[str, str], containers: ContainerFactory
) -> None:
    with trio.fail_after(60):
        app = await containers.run_healthy(test_images["app_v2"])

        assert (await http_request(app.port, "/up")).status == 200
        echoed = await http_request(app.port, "/echo", method="POST", body=b"x" * 100_000)
        assert echoed.body == b"x" * 100_000
        assert (await http_request(app.port, "/slow?s=0.1")).body == b"v2\n"
        assert (await http_request(app.port, "/nope")).status == 404

        assert await sse_events(app.port, "/sse?n=5&interval=0.05") == [
            f"id: {i}\ndata: v2 {i}" for i in range(5)
        ]

        async with trio_websocket.open_websocket_url(f"ws://127.0.0.1:{app.port}/ws") as ws:
            assert await ws.get_message() == "v2"
            await ws.send_message("hello")
            assert await ws.get_message() == "hello"
            await ws.send_message(b"\x00\x01" * 40_000)
            assert await ws.get_message() == b"\x00\x01" * 40_000
        assert ws.closed is not None and ws.closed.code == 1000

        async with container_events(docker_client, app.id) as events:
            response = await http_request(app.port, "/exit")
            assert response.status == 200
            died = await wait_for_event(events, "die")
        assert died["Actor"]["Attributes"]["exitCode"] == "3"


async def sse_events(port: int, path: str) -> list[str]:
    """Read an event stream with h11; also checks it arrives in more than one piece."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        conn = h11.Connection(our_role=h11.CLIENT)
        await stream.send_all(
            conn.send(h11.Request(method="GET", target=path, headers=[("Host", "t")]))
            + conn.send(h11.EndOfMessage())
        )
        pieces: list[bytes] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                assert event.status_code == 200
                assert (b"content-type", b"text/event-stream") in list(event.headers)
            elif isinstance(event, h11.Data):
                pieces.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
    assert len(pieces) > 1  # streamed, not one buffered body
    return [e for e in b"".join(pieces).decode().split("\n\n") if e]


async def test_unhealthy_image_is_reported_unhealthy_by_docker(
    docker_client: docker.DockerClient, test_images: dict[str, str], containers: ContainerFactory
) -> None:
    with trio.fail_after(60):
        app = await containers.create(test_images["unhealthy"])
        async with container_events(docker_client, app.id) as events:
            await app.start()
            await wait_for_health(events, "unhealthy")
        assert (await http_request(app.port, "/up")).status == 503
        assert (await http_request(app.port, "/")).body == b"v1\n"


async def test_crash_image_exits_3_with_its_error_line_in_the_logs(
    docker_client: docker.DockerClient, test_images: dict[str, str], containers: ContainerFactory
) -> None:
    with trio.fail_after(60):
        app = await containers.create(test_images["crash"])
        async with container_events(docker_client, app.id) as events:
            await app.start()
            with pytest.raises(ContainerExited) as exited:
                await wait_for_health(events, "healthy")
        assert exited.value.exit_code == 3
        assert CRASH_LINE in await app.logs()


async def test_slowstart_image_becomes_healthy_without_being_unhealthy_first(
    docker_client: docker.DockerClient, test_images: dict[str, str], containers: ContainerFactory
) -> None:
    with trio.fail_after(90):
        app = await containers.create(test_images["slowstart"])
        seen: list[str] = []
        async with container_events(docker_client, app.id) as events:
            await app.start()
            async for event in events:
                seen.append(str(event.get("Action")))
                if seen[-1] == "health_status: healthy":
                    break
        assert "health_status: unhealthy" not in seen
        assert "START_DELAY=3" in await app.logs()


async def test_nohealth_image_serves_without_healthcheck_and_stops_with_code_0(
    test_images: dict[str, str], containers: ContainerFactory
) -> None:
    with trio.fail_after(60):
        app = await containers.run(test_images["nohealth"], env={"VERSION": "v7"})
        await wait_until_serving(app.port)
        assert (await http_request(app.port, "/")).body == b"v7\n"
        attrs = await app.reload()
        assert "Health" not in attrs["State"]
        # The app handles SIGTERM itself (it is PID 1), so `docker stop` needs no SIGKILL.
        await trio.to_thread.run_sync(partial(app.container.stop, timeout=20))
        attrs = await app.reload()
        assert attrs["State"]["ExitCode"] == 0


async def test_image_labels_ports_and_healthchecks_match_the_contract(
    docker_client: docker.DockerClient, test_images: dict[str, str]
) -> None:
    with trio.fail_after(30):
        for name, spec in TEST_IMAGES.items():
            image = await trio.to_thread.run_sync(docker_client.images.get, test_images[name])
            config = image.attrs["Config"]
            assert bool(config.get("Healthcheck")) == spec.healthcheck, name
            if spec.port_label:
                assert config["Labels"]["hotswap.port"] == str(APP_PORT), name
                assert f"{APP_PORT}/tcp" in config["ExposedPorts"], name
            else:
                assert "hotswap.port" not in (config.get("Labels") or {}), name
                assert not config.get("ExposedPorts"), name
