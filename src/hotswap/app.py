"""The running server: one root nursery holding every long-lived task.

    root nursery
    ├── docker events task        (runtime.run)
    ├── restart watch             (routes follow their containers across Docker's restarts)
    ├── deployer                  (deploy nursery: one task per deploy)
    ├── tls manager               (one task per ACME order: issue, renew, back off)
    ├── proxy server              (handler nursery: one task per client connection)
    ├── admin server              (handler nursery: one task per admin connection)
    ├── image watch               (when deploy.watch_images)
    ├── takeover server           (hands the listening sockets to a `serve --takeover`)
    └── signal handler            (SIGTERM/SIGINT: graceful stop; SIGHUP: reload)

`serve` stopping never stops app containers: the next `serve` adopts them.

Listening sockets are bound here, or inherited (handover/): from systemd (LISTEN_FDS),
or with `takeover` from the running `serve` of the same config, which drains and
exits once this one accepts. A process that was taken over drains like a stop, but
keeps idle keep-alive connections for their next request (see ProxyServer.shutdown).
"""

from __future__ import annotations

import functools
import logging
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING

import trio

from hotswap.config import Config, ExternalRoute, ServerConfig, WebSocketDrain, load_config
from hotswap.controls_store import controls_file, load_controls, save_controls
from hotswap.errors import UnknownDomainError
from hotswap.handover.listeners import ADMIN, HTTPS, PROXY, ListenSockets
from hotswap.handover.protocol import DeployNote, listen_addresses
from hotswap.metrics import Metrics
from hotswap.proxy.controls import Maintenance, RouteControls
from hotswap.proxy.routes import Backend, RouteTable

if TYPE_CHECKING:
    from hotswap.deploy.gate import DeployGate
    from hotswap.deploy.progress import DeployResult
    from hotswap.handover.take_over import Takeover

log = logging.getLogger(__name__)


def external_backend(route: ExternalRoute) -> Backend:
    return Backend(route.address, name=f"external:{route.address}")


def route_hosts(config: Config) -> dict[str, tuple[str, ...]]:
    """Each route's extra names (hosts), for RouteTable.set_names(): every route is listed,
    so its domain stays its own while it has no container yet (external routes too: the
    domain of an external path route is no wildcard's either)."""
    hosts = {domain: route.hosts for domain, route in config.routes.items()}
    hosts.update({key: () for key in config.external_routes if key not in hosts})
    return hosts


def strip_prefixes(config: Config) -> list[str]:
    """The path routes whose prefix is removed upstream, for RouteTable.set_strip_prefixes()."""
    return [key for key, route in config.routes.items() if route.strip_prefix]


# How long the old process of a takeover has to exit after its drain_timeout before
# our deploys stop waiting for it (its shutdown closes WebSockets, then exits).
PREDECESSOR_EXIT_MARGIN = 15.0
# A takeover waits for the old process's deploys at most the time one can take, plus this.
TAKEOVER_DEPLOY_MARGIN = 120.0


def takeover_deploy_wait(config: Config) -> float:
    """How long `serve --takeover` waits for the old process's deploys to finish."""
    d = config.deploy
    deploy_time = d.health_timeout + d.drain_timeout + d.stop_timeout + d.stabilization
    return deploy_time + TAKEOVER_DEPLOY_MARGIN


class App:
    """Holds the live state a reload or the admin API acts on."""

    def __init__(self, config: Config, *, takeover: bool = False) -> None:
        from hotswap.deploy.deployer import Deployer
        from hotswap.deploy.restarts import RestartWatch
        from hotswap.runtime.docker import DockerRuntime
        from hotswap.tls.manager import TlsManager

        self.config = config
        self.metrics = Metrics()
        self.routes = RouteTable()
        self.runtime = DockerRuntime(config.docker)
        self.deployer = Deployer(config, self.runtime, self.routes)
        self.restarts = RestartWatch(
            self.runtime,
            self.routes,
            known=self.deployer.container,
            on_info=self.deployer.observe_container,
            on_restart=self.metrics.observe_restart,
        )
        self.proxy: object | None = None  # ProxyServer once started
        self.admin_port: int | None = None
        self.tls = TlsManager(config)  # certificates (files, ACME); status and metrics read it
        self.controls = RouteControls()  # pause and maintenance, kept on disk
        self.controls_path = controls_file(config.path)
        self.deployer.on_result = self._observe_deploy
        self._reload_lock = trio.Lock()
        self._nursery: trio.Nursery | None = None
        self._starting = trio.CancelScope()  # cancelled by a signal during start-up
        self._started = False
        self._stop = trio.Event()
        self._watch_scope: trio.CancelScope | None = None  # the image watch, when running
        self.takeover = takeover  # take the sockets of the running serve of this config
        self.sockets = ListenSockets()  # the listening sockets, once bound or inherited
        self._listen_addresses = listen_addresses(config)  # as bound; a reload moves none
        self._handed_over = False  # a takeover took our sockets: drain and exit
        self._admin_scope = trio.CancelScope()
        self._tls_scope = trio.CancelScope()
        self.routes.set_strip_prefixes(strip_prefixes(config))
        for domain, route in config.external_routes.items():
            self.routes.switch(domain, external_backend(route))
        self.routes.set_names(route_hosts(config), config.redirects)

    # -- pause and maintenance (admin API) -----------------------------------------------

    def _check_route(self, route: str) -> None:
        if route not in self.config.routes and route not in self.config.external_routes:
            raise UnknownDomainError(f"unknown route {route}: no route in the config")

    def pause(self, route: str, timeout: float) -> None:
        """Hold the route's new requests until resume (each at most `timeout`)."""
        self._check_route(route)
        self.controls.pause(route, timeout)
        log.info("route paused route=%s timeout=%gs", route, timeout)
        self._save_controls()

    def resume(self, route: str) -> bool:
        """Release the route's held requests; False if it was not paused."""
        self._check_route(route)
        resumed = self.controls.resume(route)
        log.info("route resumed route=%s was_paused=%s", route, resumed)
        self._save_controls()
        return resumed

    def set_maintenance(self, route: str, maintenance: Maintenance | None) -> None:
        """Answer the route with 503 and a page (None: serve it again)."""
        self._check_route(route)
        self.controls.set_maintenance(route, maintenance)
        log.info("route maintenance route=%s on=%s", route, maintenance is not None)
        self._save_controls()

    def _save_controls(self) -> None:
        try:
            save_controls(self.controls_path, self.controls.snapshot())
        except OSError as exc:
            log.error(
                "cannot save pause/maintenance state path=%s error=%s", self.controls_path, exc
            )

    def _restore_controls(self) -> None:
        state, problem = load_controls(self.controls_path)
        if problem is not None:
            log.warning("pause/maintenance state ignored: %s", problem)
        for line in self.controls.restore(state):
            log.info("restored %s", line)

    def server_config(self) -> ServerConfig:
        """The current [server] settings; read per connection so reloads apply."""
        return self.config.server

    async def reload(self) -> list[str]:
        """Re-read the config file and apply it; the running config stays on error.

        Returns one line per change applied.
        """
        async with self._reload_lock:
            self.deployer.gate.check()  # a takeover in progress: its successor reloads
            if self.config.path is None:
                return ["no config file to reload"]
            new = await trio.to_thread.run_sync(load_config, self.config.path)
            changes = self._apply(new)
            log.info("reloaded path=%s changes=%d", new.path, len(changes))
            for line in changes:
                log.info("reload: %s", line)
            return changes

    def _apply(self, new: Config) -> list[str]:
        old = self.config
        changes: list[str] = []
        if new.server != old.server:
            changed = _changed_keys(old.server.__dict__, new.server.__dict__)
            if new.server.listen != old.server.listen or (
                new.server.admin_listen != old.server.admin_listen
            ):
                changes.append("listen addresses changed: they apply at the next restart")
            changes.append(f"server settings changed: {', '.join(changed)}")
        if new.deploy != old.deploy:
            changed = _changed_keys(old.deploy.__dict__, new.deploy.__dict__)
            changes.append(f"deploy settings changed: {', '.join(changed)}")
        if new.docker != old.docker:
            changes.append("docker settings changed: they apply at the next restart")
        if new.tls.listen != old.tls.listen or new.tls.certs_dir != old.tls.certs_dir:
            changes.append("tls.listen / tls.certs_dir changed: they apply at the next restart")
        changes.extend(self.tls.apply(new))
        self.config = new
        self.deployer.update_config(new)
        prefixes = strip_prefixes(new)
        if prefixes != strip_prefixes(old):
            self.routes.set_strip_prefixes(prefixes)
            changes.append("strip_prefix of path routes updated")
        hosts, old_hosts = route_hosts(new), route_hosts(old)
        if hosts != old_hosts or new.redirects != old.redirects:
            self.routes.set_names(hosts, new.redirects)
            if _extra_names(hosts) != _extra_names(old_hosts) or (new.redirects != old.redirects):
                changes.append("names (routes' hosts, redirects) updated")
        nursery = self._nursery
        assert nursery is not None
        if new.deploy.watch_images and self._watch_scope is None:
            self._watch_scope = trio.CancelScope()
            nursery.start_soon(self._watch_images, self._watch_scope)
            changes.append("image watch started")
        elif not new.deploy.watch_images and self._watch_scope is not None:
            self._watch_scope.cancel()
            self._watch_scope = None
            changes.append("image watch stopped")
        # External routes: switch at once; the old backend drains in the background.
        for domain, ext in new.external_routes.items():
            if old.external_routes.get(domain) == ext:
                continue
            if domain in old.routes:
                # A managed route becomes external: switched under the domain's deploy
                # lock, then its container is drained, stopped and removed.
                changes.append(
                    f"route {domain} is now external -> {ext.address}: "
                    "stopping its container once drained"
                )
                nursery.start_soon(self._retire_route, domain, external_backend(ext))
                continue
            previous = self.routes.switch(domain, external_backend(ext))
            changes.append(f"external route {domain} -> {ext.address}")
            if previous is not None:
                nursery.start_soon(self._retire_backend, previous)
        for domain in old.external_routes.keys() - new.external_routes.keys():
            if domain in new.routes:
                continue
            previous = self.routes.remove(domain)
            changes.append(f"external route {domain} removed")
            if previous is not None:
                nursery.start_soon(self._retire_backend, previous)
        # Managed routes: deploy added and changed ones, retire removed ones.
        for domain, route in new.routes.items():
            before = old.routes.get(domain)
            if before is None:
                changes.append(f"route {domain} added: deploying {route.image}")
                self.deployer.start_deploy(domain, reason="reload")
            elif before.container_settings() != route.container_settings():
                changes.append(f"route {domain} changed: deploying {route.image}")
                self.deployer.start_deploy(domain, force=True, reason="reload")
        for domain in old.routes.keys() - new.routes.keys() - new.external_routes.keys():
            changes.append(f"route {domain} removed: draining and stopping its container")
            nursery.start_soon(self._retire_route, domain)
        return changes

    async def _retire_backend(self, backend: Backend) -> None:
        with trio.move_on_after(self.config.deploy.drain_timeout):
            await backend.inflight.wait_idle()
        backend.close()

    async def _retire_route(self, domain: str, replacement: Backend | None = None) -> None:
        await self.deployer.retire(domain, replacement)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            # Signals first: SIGTERM during start-up (e.g. waiting for Docker) must work.
            await nursery.start(self._signals)
            with self._starting:
                await self._start(nursery)
            # cancel_called, not cancelled_caught: a signal after the last checkpoint of
            # the start-up cancels nothing, and must still stop hotswap.
            if self._starting.cancel_called:
                log.info("stopped during start-up")
                nursery.cancel_scope.cancel()
                return
            self._started = True
            task_status.started()
            await self._stop.wait()
            await self._shutdown()
            nursery.cancel_scope.cancel()

    async def _start(self, nursery: trio.Nursery) -> None:
        from hotswap.handover import inherit_from_systemd

        predecessor = None
        if self.takeover:
            predecessor = await self._take_over()
        if predecessor is not None:
            self.sockets = predecessor.sockets
        else:
            self.sockets = inherit_from_systemd(self.config) or ListenSockets()
        try:
            await self._start_serving(nursery, predecessor)
        except BaseException:
            if predecessor is not None:
                predecessor.close()  # before it was confirmed: the old process goes on
            raise
        await self._listen_for_takeovers(nursery)

    async def _take_over(self) -> Takeover | None:
        """The running serve's sockets (takeover), or None when it went away first."""
        from hotswap.errors import PredecessorGone
        from hotswap.handover import request_takeover, socket_path
        from hotswap.statedir import default_state_dir

        path = socket_path(default_state_dir(), self.config.path)
        wait = takeover_deploy_wait(self.config)
        log.info("taking over the running hotswap path=%s", path)
        try:
            predecessor = await request_takeover(self.config, path, deploy_wait=wait)
        except PredecessorGone as exc:
            # It went away without passing its sockets: nothing serves them now.
            log.warning("takeover: %s; binding the listen addresses instead", exc)
            return None
        # Until it has exited, stopping an old container would cut its requests.
        self.deployer.gate.defer(
            f"waiting for the hotswap process this one took over (pid {predecessor.old_pid}) "
            "to finish its requests"
        )
        return predecessor

    async def _start_serving(self, nursery: trio.Nursery, predecessor: Takeover | None) -> None:
        from hotswap.proxy.server import serve_proxy

        plan = None
        if self.config.routes:
            # Managed routes need Docker before the proxy listens: their running
            # containers are adopted first, so no request meets a 404 while hotswap
            # restarts (the extra containers and the missing routes come after).
            await nursery.start(self.runtime.run)
            plan = await self.deployer.adopt()
            # After the adoption: the watch subscribes, then inspects every container the
            # routes serve, so an exit since the adoption listed them is seen either way
            # (an exit it heard of before the switch would concern no route yet).
            await nursery.start(self.restarts.run)
        else:
            # External routes only: serve at once, whether or not Docker answers.
            nursery.start_soon(self.runtime.run)
            await nursery.start(self.restarts.run)
        await nursery.start(self.deployer.run)
        # Stored certificates are loaded before the proxy listens; ACME orders wait for the
        # plain listener, which answers the CA's challenges.
        await nursery.start(self._run_tls)
        self._restore_controls()  # before the proxy listens: a paused route stays paused
        await self.sockets.bind_missing(self.config)
        self.proxy = await nursery.start(
            functools.partial(
                serve_proxy,
                observe=self.metrics.observe_request,
                tls=self.tls,
                on_handshake_failure=self.metrics.observe_tls_handshake_failure,
                controls=self.controls,
                listeners=self.sockets.get(PROXY),
                tls_listeners=self.sockets.get(HTTPS),
            ),
            self.server_config,
            self.routes,
        )
        self.tls.release_orders()  # the plain listener answers the CA's challenges now
        self.admin_port = await nursery.start(self._serve_admin)
        if self.config.deploy.watch_images:
            # Before start_up: a tag moving during the start-up deploys is seen.
            self._watch_scope = trio.CancelScope()
            await nursery.start(self._watch_images, self._watch_scope)
        if predecessor is not None:
            await predecessor.confirm()  # we accept: the old process stops, drains, exits
            nursery.start_soon(self._wait_for_predecessor, predecessor)
        if plan is not None:
            await self.deployer.finish_start_up(plan)
        else:
            # Nothing to adopt, but managed containers left from an earlier config are
            # still listed (status: unmanaged) once Docker answers.
            nursery.start_soon(self._start_up_without_routes)
        log.info(
            "serving proxy=%s admin=%s routes=%d external_routes=%d",
            self.config.server.listen,
            self.config.server.admin_listen,
            len(self.config.routes),
            len(self.config.external_routes),
        )

    async def _run_tls(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with self._tls_scope:  # cancelled when a takeover's successor takes over ACME
            await self.tls.run(hold_orders=True, task_status=task_status)

    async def _serve_admin(
        self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        from hotswap.admin.server import serve_admin

        with self._admin_scope:  # cancelled when a takeover's successor serves the API
            await serve_admin(self, listeners=self.sockets.get(ADMIN), task_status=task_status)

    async def _wait_for_predecessor(self, predecessor: Takeover) -> None:
        """Deploys wait until the process we took over has exited (bounded)."""
        bound = self.config.deploy.drain_timeout + PREDECESSOR_EXIT_MARGIN
        try:
            with trio.move_on_after(bound) as scope:
                await predecessor.wait_gone()
        finally:
            predecessor.close()
            self.deployer.gate.undefer()
        if scope.cancelled_caught:
            log.warning(
                "takeover: pid=%d still runs after %gs; deploys go ahead",
                predecessor.old_pid,
                bound,
            )
        else:
            log.info("takeover complete: pid=%d has exited", predecessor.old_pid)

    async def _listen_for_takeovers(self, nursery: trio.Nursery) -> None:
        from hotswap.errors import TakeoverError
        from hotswap.handover import HandoverServer, socket_path
        from hotswap.statedir import default_state_dir

        try:
            path = socket_path(default_state_dir(), self.config.path)
            await nursery.start(HandoverServer(self, path).run)
        except (TakeoverError, OSError) as exc:
            log.warning("takeovers are not possible: %s", exc)

    # -- what a takeover of this process uses (handover.Predecessor) -----------------

    @property
    def gate(self) -> DeployGate:
        return self.deployer.gate

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def deploys_in_progress(self) -> list[DeployNote]:
        return [DeployNote(*entry) for entry in self.deployer.in_progress()]

    def offer(self) -> tuple[dict[str, str], list[str], list[int]]:
        names, fds = self.sockets.fds()
        return dict(self._listen_addresses), names, fds

    def hand_over(self, successor: int) -> tuple[int, int]:
        """Our sockets are the successor's: stop accepting, drain, exit (see _shutdown)."""
        from hotswap.proxy.server import ProxyServer

        self._handed_over = True
        self._admin_scope.cancel()
        self._tls_scope.cancel()  # ACME orders and renewals: the successor's now
        if self._watch_scope is not None:
            self._watch_scope.cancel()
            self._watch_scope = None
        connections = tunnels = 0
        proxy = self.proxy
        if isinstance(proxy, ProxyServer):
            proxy.stop_accepting()
            connections = proxy.open_connections
            tunnels = sum(1 for conn in proxy.connections if conn.tunnel is not None)
        log.info("taken over by pid=%d; stopping", successor)
        self._stop.set()
        return connections, tunnels

    async def _start_up_without_routes(self) -> None:
        from hotswap.errors import HotswapError

        try:
            await self.deployer.start_up()
        except HotswapError as exc:
            log.warning("cannot list managed containers (is Docker up?) error=%s", exc)

    async def _signals(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """SIGHUP reloads; SIGTERM/SIGINT stop gracefully, a second one at once."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
            task_status.started()
            async for signum in sigs:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    if self._started:
                        assert self._nursery is not None
                        self._nursery.start_soon(self._reload_from_signal)
                    else:
                        log.warning("reload ignored: hotswap is still starting signal=%s", name)
                elif not self._started:
                    log.info("stopping during start-up signal=%s", name)
                    self._starting.cancel()
                elif not self._stop.is_set():
                    log.info("stopping signal=%s", name)
                    self._stop.set()
                else:
                    log.info("stopping now, not waiting for requests signal=%s", name)
                    assert self._nursery is not None
                    self._nursery.cancel_scope.cancel()

    async def _watch_images(
        self,
        scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The image watch, in `scope`: a reload with deploy.watch_images = false cancels it."""
        from hotswap.deploy.watch import watch_images

        with scope:
            await watch_images(
                self.runtime, self.deployer, self._routes_now, task_status=task_status
            )

    def _observe_deploy(self, result: DeployResult) -> None:
        self.metrics.observe_deploy(result.domain, result.outcome.value, result.duration)
        if result.drain is not None:
            self.metrics.observe_drain(result.drain)

    def _routes_now(self) -> Mapping[str, str]:
        return {domain: route.image for domain, route in self.config.routes.items()}

    async def _reload_from_signal(self) -> None:
        from hotswap.errors import HotswapError

        try:
            await self.reload()
        except HotswapError as exc:
            log.error("reload rejected, the running config stays:\n%s", exc)

    async def _shutdown(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), leave containers running."""
        proxy = self.proxy
        deploy = self.config.deploy
        if proxy is not None and self._handed_over:
            # The client of an idle keep-alive connection may be sending on it right now:
            # its next request is answered (Connection: close), the reconnect reaches the
            # new process. WebSockets follow websocket_drain, as in a deploy.
            await proxy.shutdown(  # type: ignore[attr-defined]
                deploy.drain_timeout,
                keep_idle=True,
                close_tunnels=deploy.websocket_drain is WebSocketDrain.CLOSE,
            )
        elif proxy is not None:
            await proxy.shutdown(deploy.drain_timeout)  # type: ignore[attr-defined]
        log.info("stopped; app containers keep running")


def _extra_names(hosts: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {domain: names for domain, names in hosts.items() if names}


def _changed_keys(old: Mapping[str, object], new: Mapping[str, object]) -> list[str]:
    return [key for key in new if old.get(key) != new[key]]


def serve(config: Config, *, takeover: bool = False) -> int:
    """Run hotswap until SIGTERM/SIGINT (or taken over); the CLI's `serve`.

    `takeover`: take over the running `serve` of the same config file (handover/).
    """
    from hotswap.deploy.unwrap import first_error
    from hotswap.errors import HotswapError

    try:
        trio.run(functools.partial(App(config, takeover=takeover).run))
    except BaseExceptionGroup as group:
        error = first_error(group)
        if isinstance(error, HotswapError):
            raise error from None
        raise
    return 0
