"""A Deployer over the real engine with the proxy in front, for the deploy tests.

Every route gets a unique domain under `.deploy.test`; at teardown every managed
container of those domains is removed (other helpers' containers are untouched).
Traffic goes only to the proxy on 127.0.0.1, with the route's domain as Host.
"""

from __future__ import annotations

import dataclasses
import functools
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

from hotswap.config import (
    Address,
    Config,
    DeployConfig,
    DockerConfig,
    NetworkMode,
    PullPolicy,
    Route,
    ServerConfig,
)
from hotswap.deploy import Deployer, DeployHandle, DeployResult, ProgressEvent
from hotswap.deploy.restarts import RestartWatch
from hotswap.proxy.routes import BackendState, RouteTable
from hotswap.proxy.server import ProxyServer, TlsSide, serve_proxy
from hotswap.runtime import ContainerInfo, DockerRuntime

LOOPBACK = "127.0.0.1"

# Short everything: the test images answer /up within ~1 s and report healthy at ~1-2 s.
TEST_DEPLOY = DeployConfig(
    pull_policy=PullPolicy.IF_NOT_PRESENT,
    health_timeout=20.0,
    readiness_delay=0.5,
    drain_timeout=10.0,
    drain_delay=0.2,
    stop_timeout=2.0,
    watch_images=False,
    stabilization=0.3,
)


@dataclass
class Deployed:
    result: DeployResult
    events: list[ProgressEvent]

    @property
    def phases(self) -> list[str]:
        return [e.phase.value for e in self.events]

    def first(self, phase: str) -> ProgressEvent:
        return next(e for e in self.events if e.phase.value == phase)


@dataclass
class Harness:
    runtime: DockerRuntime
    routes: RouteTable
    deployer: Deployer
    proxy: ProxyServer
    config: Config
    images: dict[str, str]
    suffix: str = field(default_factory=lambda: f"{uuid.uuid4().hex[:8]}.deploy.test")

    def add_route(self, name: str, image: str = "app_v1", **route: Any) -> str:
        """Add a route for test image `image` (a key of test_images); returns its domain."""
        domain = f"{name}-{self.suffix}"
        routes = dict(self.config.routes)
        routes[domain] = Route(domain=domain, image=self.images.get(image, image), **route)
        self.set_config(dataclasses.replace(self.config, routes=routes))
        return domain

    def set_deploy(self, **settings: Any) -> None:
        self.set_config(
            dataclasses.replace(
                self.config, deploy=dataclasses.replace(self.config.deploy, **settings)
            )
        )

    def set_config(self, config: Config) -> None:
        self.config = config
        self.deployer.update_config(config)

    def image(self, name: str) -> str:
        return self.images[name]

    async def deploy(
        self, domain: str, image: str | None = None, *, force: bool = False
    ) -> Deployed:
        handle = self.deployer.start_deploy(
            domain, self.images.get(image, image) if image else None, force=force
        )
        return await follow(handle)

    async def managed(self, domain: str) -> list[ContainerInfo]:
        return [c for c in await self.runtime.list_managed() if c.domain == domain]

    async def running(self, domain: str) -> list[ContainerInfo]:
        return [c for c in await self.managed(domain) if c.running]

    async def get(self, domain: str, path: str = "/") -> tuple[int, bytes]:
        async with KeepAliveClient.connect(self.proxy.port) as client:
            return await client.get(domain, path)

    async def wait_route(self, domain: str, up: bool, restarts: int = 0) -> None:
        """Until the route of `domain` is up (or down), event-driven (RouteTable changes);
        `restarts`: and its container has restarted at least that often."""
        while True:
            changed = self.routes.next_change()
            backend = self.routes.get(domain)
            info = self.deployer.container(backend.container_id or "") if backend else None
            if (
                backend is not None
                and (backend.state is BackendState.UP) == up
                and (info is not None and info.restart_count >= restarts)
            ):
                return
            await changed.wait()

    async def cleanup(self) -> None:
        for _, backend in self.routes:
            backend.close()  # its pooled upstream connections
        for info in await self.runtime.list_managed():
            # A route key may carry a path ("x.deploy.test/api"): match its domain part.
            if info.domain.partition("/")[0].endswith(self.suffix):
                await self.runtime.remove(info.id)


async def wait_phase(handle: DeployHandle, phase: str) -> ProgressEvent:
    """Return once `handle` has reported `phase` (its events replay from the start)."""
    async with aclosing(handle.events()) as events:
        async for event in events:
            if event.phase.value == phase:
                return event
    raise AssertionError(f"deploy ended without phase {phase}: {handle.history}")


async def follow(handle: DeployHandle) -> Deployed:
    events = [event async for event in handle.events()]
    return Deployed(await handle.wait(), events)


@asynccontextmanager
async def open_harness(
    images: dict[str, str],
    *,
    like: Harness | None = None,
    network_mode: NetworkMode = NetworkMode.HOST,
    tls: TlsSide | None = None,
) -> AsyncIterator[Harness]:
    """A running runtime + deployer + restart watch + proxy. `like`: same routes and
    settings (a restart). Bridge mode: send no traffic (the engine's bridge networks
    have private addresses)."""
    config = Config(docker=DockerConfig(network_mode=network_mode), deploy=TEST_DEPLOY)
    if like is not None:
        config = like.config
    runtime = DockerRuntime(config.docker)
    routes = RouteTable()
    deployer = Deployer(config, runtime, routes)
    server_config = ServerConfig(listen=Address(LOOPBACK, 0), admin_listen=Address(LOOPBACK, 1))
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(runtime.run)
            watch = RestartWatch(
                runtime, routes, known=deployer.container, on_info=deployer.observe_container
            )
            await nursery.start(watch.run)
            await nursery.start(deployer.run)
            proxy = await nursery.start(
                functools.partial(serve_proxy, tls=tls), lambda: server_config, routes
            )
            harness = Harness(runtime, routes, deployer, proxy, config, images)
            if like is not None:
                harness.suffix = like.suffix
            try:
                yield harness
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(30):
                    if like is None:  # the original harness removes the containers
                        await harness.cleanup()
                    else:
                        for _, backend in harness.routes:
                            backend.close()
                nursery.cancel_scope.cancel()
    finally:
        runtime.close()


class KeepAliveClient:
    """An h11 client over one connection to the proxy; requests reuse it (keep-alive)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, port: int, tls: ssl.SSLContext | None = None, server_name: str = ""
    ) -> AsyncIterator[KeepAliveClient]:
        """A connection to the proxy; with `tls`, HTTPS with SNI `server_name`."""
        stream: trio.abc.Stream = await trio.open_tcp_stream(LOOPBACK, port)
        async with stream:
            if tls is not None:
                stream = trio.SSLStream(stream, tls, server_hostname=server_name)
                await stream.do_handshake()
            yield cls(stream)

    async def get(self, host: str, path: str = "/") -> tuple[int, bytes]:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        request = h11.Request(method="GET", target=path, headers=[("Host", host)])
        await self.stream.send_all(self.conn.send(request) + (self.conn.send(h11.EndOfMessage())))
        status, chunks = 0, []
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return status, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the proxy closed the connection")


def now() -> float:
    return time.time()
