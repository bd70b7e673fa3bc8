"""Reload and the app keys: names apply at once, container settings redeploy (no Docker)."""

from __future__ import annotations

import dataclasses
from typing import Any

import trio

from hotswap.app import App
from hotswap.config import Address, Config, DeployConfig, Route, Volume
from hotswap.proxy.routes import Backend

ROUTE = Route("app.test", "app:1", hosts=("www.app.test",))
QUIET = DeployConfig(watch_images=False)


class FakeDeployer:
    def __init__(self) -> None:
        self.deploys: list[tuple[str, bool]] = []

    def update_config(self, config: Config) -> None:
        pass

    def start_deploy(self, domain: str, *, force: bool = False, **kw: Any) -> None:
        self.deploys.append((domain, force))


def app_with(config: Config) -> tuple[App, FakeDeployer]:
    app = App(config)
    deployer = FakeDeployer()
    app.deployer = deployer  # type: ignore[assignment]
    return app, deployer


async def test_new_names_and_redirects_apply_at_once_without_a_deploy() -> None:
    app, deployer = app_with(Config(deploy=QUIET, routes={"app.test": ROUTE}))
    assert app.routes.resolve("www.app.test") == ("app.test", None)
    renamed = dataclasses.replace(ROUTE, hosts=("api.app.test",))
    new = Config(
        deploy=QUIET, routes={"app.test": renamed}, redirects={"old.test": "https://app.test"}
    )
    async with trio.open_nursery() as nursery:
        app._nursery = nursery
        changes = app._apply(new)
        nursery.cancel_scope.cancel()
    assert deployer.deploys == []
    assert changes == ["names (routes' hosts, redirects) updated"]
    assert app.routes.resolve("www.app.test") is None
    assert app.routes.resolve("api.app.test") == ("app.test", None)
    assert app.routes.resolve("old.test") is not None


async def test_a_changed_volume_redeploys_the_route() -> None:
    app, deployer = app_with(Config(deploy=QUIET, routes={"app.test": ROUTE}))
    changed = dataclasses.replace(ROUTE, volumes=(Volume("data", "/data"),))
    async with trio.open_nursery() as nursery:
        app._nursery = nursery
        changes = app._apply(Config(deploy=QUIET, routes={"app.test": changed}))
        nursery.cancel_scope.cancel()
    assert deployer.deploys == [("app.test", True)]
    assert changes == ["route app.test changed: deploying app:1"]


async def test_a_route_without_a_container_keeps_its_domain_from_another_routes_wildcard() -> None:
    wide = dataclasses.replace(ROUTE, hosts=("*.test",))
    app, _ = app_with(Config(deploy=QUIET, routes={"app.test": wide}))
    assert app.routes.resolve("api.test") == ("app.test", None)
    added = {"app.test": wide, "api.test": Route("api.test", "api:1")}
    async with trio.open_nursery() as nursery:
        app._nursery = nursery
        changes = app._apply(Config(deploy=QUIET, routes=added))
        nursery.cancel_scope.cancel()
    assert changes == ["route api.test added: deploying api:1"]
    assert app.routes.resolve("api.test") == ("api.test", None)  # 404 until it is deployed


async def test_a_path_route_added_by_reload_leaves_its_paths_to_the_site_until_deployed() -> None:
    app, deployer = app_with(Config(deploy=QUIET, routes={"app.test": ROUTE}))
    site = Backend(Address("127.0.0.1", 1), name="site")
    app.routes.switch("app.test", site)
    api = Route("app.test/api", "api:1")
    async with trio.open_nursery() as nursery:
        app._nursery = nursery
        changes = app._apply(Config(deploy=QUIET, routes={"app.test": ROUTE, api.domain: api}))
        nursery.cancel_scope.cancel()
    assert changes == ["route app.test/api added: deploying api:1"]
    assert deployer.deploys == [("app.test/api", False)]
    assert app.routes.acquire("www.app.test", b"/api/x") is site  # no 404 meanwhile


async def test_strip_prefix_alone_applies_at_reload_without_a_deploy() -> None:
    api = Route("app.test/api", "api:1")
    app, deployer = app_with(Config(deploy=QUIET, routes={"app.test": ROUTE, api.domain: api}))
    backend = Backend(Address("127.0.0.1", 2), name="api")
    app.routes.switch(api.domain, backend)
    assert backend.strip_prefix == b""
    stripped = dataclasses.replace(api, strip_prefix=True)
    async with trio.open_nursery() as nursery:
        app._nursery = nursery
        changes = app._apply(Config(deploy=QUIET, routes={"app.test": ROUTE, api.domain: stripped}))
        nursery.cancel_scope.cancel()
    assert changes == ["strip_prefix of path routes updated"]
    assert deployer.deploys == []
    assert backend.strip_prefix == b"/api"
