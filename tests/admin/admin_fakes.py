"""A fake app and deployer for the admin server tests (real sockets, no Docker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

from hotswap.admin.client import AdminClient
from hotswap.admin.server import serve_admin
from hotswap.config import Address, Config, ExternalRoute, Route, ServerConfig
from hotswap.errors import ConfigError, DeployError, UnknownDomainError
from hotswap.metrics import Metrics
from hotswap.proxy.controls import Maintenance, RouteControls
from hotswap.proxy.routes import Backend, RouteTable

TOKEN = "s3cret-token"


@dataclass
class FakeEvent:
    phase: str
    domain: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"event": self.phase, "domain": self.domain, "message": "", "data": self.data}


class FakeHandle:
    def __init__(self, deploy_id: str, domain: str) -> None:
        self.id = deploy_id
        self.domain = domain
        self.log: list[FakeEvent] = []
        self.changed = trio.Event()
        self.finished = trio.Event()

    def emit(self, phase: str, **data: Any) -> None:
        self.log.append(FakeEvent(phase, self.domain, data))
        self.changed.set()
        self.changed = trio.Event()
        if phase in ("done", "failed"):
            self.finished.set()

    async def events(self) -> AsyncIterator[FakeEvent]:
        sent = 0
        while True:
            while sent < len(self.log):
                event = self.log[sent]
                sent += 1
                yield event
                if event.phase in ("done", "failed"):
                    return
            await self.changed.wait()


class FakeDeployer:
    """Runs each 'deploy' in its own nursery (the deploy nursery), gated by `release`."""

    def __init__(self, nursery: trio.Nursery, domains: set[str]) -> None:
        self.nursery = nursery
        self.domains = domains
        self.handles: list[FakeHandle] = []
        self.release = trio.Event()
        self.calls: list[tuple[str, str | None, bool, str]] = []

    def start_deploy(
        self, domain: str, image: str | None = None, *, force: bool = False, reason: str = "manual"
    ) -> FakeHandle:
        if domain not in self.domains:
            raise UnknownDomainError(f"unknown domain {domain}: no route in the config")
        self.calls.append((domain, image, force, reason))
        handle = FakeHandle(f"d{len(self.handles) + 1}", domain)
        self.handles.append(handle)
        self.nursery.start_soon(self._run, handle, image or "app:2")
        return handle

    def start_rollback(self, domain: str) -> FakeHandle:
        if not self.handles:
            raise DeployError(f"nothing to roll back to for {domain}")
        return self.start_deploy(domain, "app:1", reason="rollback")

    async def _run(self, handle: FakeHandle, image: str) -> None:
        handle.emit("pulling")
        handle.emit("starting")
        await self.release.wait()
        if image == "app:bad":
            handle.emit("failed", error="container exited with code 3")
            return
        handle.emit("switched")
        handle.emit("draining", in_flight=2)
        handle.emit("draining", in_flight=0)
        handle.emit("stopped")
        handle.emit("done", image=image)

    async def refresh(self) -> None:
        await trio.lowlevel.checkpoint()

    def status(self) -> Mapping[str, Any]:
        return {"app.example.com": {"state": "running", "health": "healthy"}, "unmanaged": []}


class FakeApp:
    def __init__(self, config: Config, deployer: FakeDeployer) -> None:
        self.config = config
        self.routes = RouteTable()
        self.deployer = deployer
        self.proxy = None
        self.metrics = Metrics()
        self.controls = RouteControls()
        self.reload_result: list[str] | ConfigError = ["route b.example.com added"]

    async def reload(self) -> list[str]:
        if isinstance(self.reload_result, ConfigError):
            raise self.reload_result
        return self.reload_result

    def _check(self, route: str) -> None:
        if route not in self.config.routes and route not in self.config.external_routes:
            raise UnknownDomainError(f"unknown route {route}: no route in the config")

    def pause(self, route: str, timeout: float) -> None:
        self._check(route)
        self.controls.pause(route, timeout)

    def resume(self, route: str) -> bool:
        self._check(route)
        return self.controls.resume(route)

    def set_maintenance(self, route: str, maintenance: Maintenance | None) -> None:
        self._check(route)
        self.controls.set_maintenance(route, maintenance)


def make_config(token: str = TOKEN) -> Config:
    return Config(
        server=ServerConfig(admin_listen=Address("127.0.0.1", 0), admin_token=token),
        routes={"app.example.com": Route("app.example.com", "app:latest")},
        external_routes={
            "legacy.example.com": ExternalRoute("legacy.example.com", Address("127.0.0.1", 9))
        },
    )


class Harness:
    def __init__(self, app: FakeApp, port: int) -> None:
        self.app = app
        self.port = port

    def client(self, token: str = TOKEN) -> AdminClient:
        return AdminClient(Address("127.0.0.1", self.port), token)


async def start(nursery: trio.Nursery, token: str = TOKEN) -> Harness:
    app = FakeApp(make_config(token), FakeDeployer(nursery, {"app.example.com"}))
    backend = Backend(Address("127.0.0.1", 40001), name="hotswap-app-1", container_id="c" * 64)
    app.routes.switch("app.example.com", backend)
    backend.inflight.begin_request()
    port = await nursery.start(serve_admin, app)
    return Harness(app, port)
