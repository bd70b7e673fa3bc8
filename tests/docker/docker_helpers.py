"""Helpers for tests that drive a real Docker engine (used by tests/docker/conftest.py).

Every docker SDK call from a trio test goes through `trio.to_thread.run_sync`.
Docker's events stream is read in a worker thread and handed to trio through a
memory channel, so tests wait on events (health_status, die) instead of polling.
"""

from __future__ import annotations

import itertools
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import docker
import docker.errors
import h11
import trio

SESSION_LABEL = "hotswap-test.session"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class ContainerExited(Exception):
    """The container died while a test waited for something else."""

    def __init__(self, exit_code: int | None, event: Mapping[str, Any]) -> None:
        super().__init__(f"container exited with code {exit_code}")
        self.exit_code = exit_code
        self.event = event


@dataclass
class TestContainer:
    """A container created by ContainerFactory; the app in it listens on 127.0.0.1:port."""

    __test__ = False  # not a pytest test class

    container: Any  # docker.models.containers.Container
    port: int

    @property
    def id(self) -> str:
        return str(self.container.id)

    @property
    def name(self) -> str:
        return str(self.container.name)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        await trio.to_thread.run_sync(self.container.start)

    async def reload(self) -> Mapping[str, Any]:
        """Re-inspect; returns container.attrs."""
        await trio.to_thread.run_sync(self.container.reload)
        return dict(self.container.attrs)

    async def logs(self) -> str:
        data = await trio.to_thread.run_sync(partial(self.container.logs, stdout=True, stderr=True))
        return bytes(data).decode(errors="replace")


class ContainerFactory:
    """Creates test containers (host network, $PORT on loopback) and removes them all."""

    def __init__(self, client: docker.DockerClient, session_id: str, prefix: str = "hstest-"):
        self.client = client
        self.session_id = session_id
        self.prefix = f"{prefix}{session_id[:6]}-"
        self.created: list[TestContainer] = []
        self._counter = itertools.count(1)

    def create_sync(
        self,
        image: str,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> TestContainer:
        """Create (not start) a container; blocking, for sync code or worker threads."""
        port = port if port is not None else free_port()
        name = name or f"{self.prefix}{next(self._counter)}-{uuid.uuid4().hex[:6]}"
        container = self.client.containers.create(
            image,
            name=name,
            network_mode="host",
            environment={"PORT": str(port), **(env or {})},
            labels={SESSION_LABEL: self.session_id, **(labels or {})},
            **kwargs,
        )
        created = TestContainer(container, port)
        self.created.append(created)
        return created

    async def create(self, image: str, **kwargs: Any) -> TestContainer:
        """Create (not start) a container; see create_sync for the arguments."""
        return await trio.to_thread.run_sync(partial(self.create_sync, image, **kwargs))

    async def run(self, image: str, **kwargs: Any) -> TestContainer:
        """Create and start a container; does not wait for anything."""
        created = await self.create(image, **kwargs)
        await created.start()
        return created

    async def run_healthy(self, image: str, **kwargs: Any) -> TestContainer:
        """Create and start a container, return once Docker reports it healthy.

        Raises ContainerExited if it dies first; the caller owns the deadline.
        """
        created = await self.create(image, **kwargs)
        async with container_events(self.client, created.id) as events:
            await created.start()
            await wait_for_health(events, "healthy")
        return created

    def remove_all(self) -> None:
        """Force-remove every container this factory created (blocking; teardown)."""
        for created in self.created:
            try:
                created.container.remove(force=True)
            except docker.errors.NotFound:
                pass
        self.created.clear()


def remove_session_containers(client: docker.DockerClient, session_id: str) -> None:
    """Force-remove leftovers of this test session (anything with our session label)."""
    leftovers = client.containers.list(all=True, filters={"label": f"{SESSION_LABEL}={session_id}"})
    for container in leftovers:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass


@asynccontextmanager
async def container_events(
    client: docker.DockerClient, container_id: str
) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
    """Docker events of one container, live, as a trio channel.

    Open it before starting the container so no event can be missed. A worker
    thread reads the blocking SDK stream; leaving the block closes the stream,
    which ends the thread.
    """
    stream = await trio.to_thread.run_sync(
        partial(client.events, decode=True, filters={"container": container_id})
    )
    send, receive = trio.open_memory_channel[dict[str, Any]](16)

    def pump() -> None:
        try:
            for event in stream:
                trio.from_thread.run(send.send, event)
        except BaseException:  # stream closed under us, or the trio side is gone
            pass
        finally:
            try:
                trio.from_thread.run_sync(send.close)
            except BaseException:
                pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.to_thread.run_sync, pump, abandon_on_cancel=True))
        try:
            yield receive
        finally:
            stream.close()
            nursery.cancel_scope.cancel()


def event_action(event: Mapping[str, Any]) -> str:
    return str(event.get("Action") or event.get("status") or "")


async def wait_for_event(
    events: trio.MemoryReceiveChannel[dict[str, Any]], action: str
) -> dict[str, Any]:
    """The next event whose action is `action` (e.g. "die", "health_status: unhealthy")."""
    async for event in events:
        if event_action(event) == action:
            return event
    raise RuntimeError("docker events stream ended")


async def wait_for_health(
    events: trio.MemoryReceiveChannel[dict[str, Any]], status: str = "healthy"
) -> dict[str, Any]:
    """The next `health_status: <status>` event; ContainerExited if a die comes first."""
    async for event in events:
        action = event_action(event)
        if action == f"health_status: {status}":
            return event
        if action == "die":
            code = event.get("Actor", {}).get("Attributes", {}).get("exitCode")
            raise ContainerExited(int(code) if code is not None else None, event)
    raise RuntimeError("docker events stream ended")


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names (last value wins)
    body: bytes


async def http_request(
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    host: str = "localhost",
) -> Response:
    """One HTTP/1.1 exchange with 127.0.0.1:port over a trio socket and h11."""
    stream = await trio.open_tcp_stream(LOOPBACK, port)
    async with stream:
        conn = h11.Connection(our_role=h11.CLIENT)
        head = [("Host", host), ("Connection", "close"), *(headers or {}).items()]
        if body or method not in ("GET", "HEAD"):
            head.append(("Content-Length", str(len(body))))
        data = conn.send(h11.Request(method=method, target=path, headers=head))
        data += conn.send(h11.Data(data=body)) if body else b""
        data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)
        status, resp_headers, chunks = 0, {}, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                resp_headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return Response(status, resp_headers, b"".join(chunks))
