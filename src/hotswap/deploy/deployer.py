"""The Deployer: runs deploys as tasks of the deploy nursery, one domain at a time.

Deploys of one domain are serialised by a per-domain lock (a deploy waiting for it
reports "queued"); different domains deploy in parallel. Each deploy runs in its own
cancel scope in the deploy nursery, never in the request that asked for it, so a
client going away does not cancel it. The steps themselves are in steps.py.

The deployer also remembers which container serves each domain (for the skip rule,
rollback and status), adopts running containers at start-up (adopt.py), and
retires the container of a route removed from the config.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Final

import trio

from hotswap.config import Config, Route
from hotswap.deploy.adopt import AdoptionPlan, plan_adoption
from hotswap.deploy.gate import DeployGate
from hotswap.deploy.progress import DeployHandle, DeployResult, Outcome, Phase
from hotswap.deploy.queue import DomainQueue, Ticket
from hotswap.deploy.steps import DeployRun
from hotswap.errors import DeployError, HotswapError, UnknownDomainError
from hotswap.proxy.routes import Backend, RouteTable
from hotswap.routekey import is_path_route, normalize_route_key
from hotswap.runtime.base import LABEL_PREVIOUS_IMAGE, ContainerInfo, ContainerRuntime

log = logging.getLogger(__name__)

# `hotswap status` waits at most this long for Docker to report the containers' health.
STATUS_REFRESH_TIMEOUT: Final = 2.0
REFRESH_TIMEOUT = 10.0  # inspecting the new container once it serves (for status)


def new_deploy_id() -> str:
    return uuid.uuid4().hex[:12]


class Deployer:
    """Starts deploys, rollbacks and the start-up adoption; reports status."""

    def __init__(self, config: Config, runtime: ContainerRuntime, routes: RouteTable) -> None:
        self._config = config
        self._runtime = runtime
        self._routes = routes
        self._nursery: trio.Nursery | None = None
        self._queues: defaultdict[str, DomainQueue] = defaultdict(DomainQueue)
        self._current: dict[str, ContainerInfo] = {}  # domain -> container serving it
        self._running: dict[str, DeployHandle] = {}  # domain -> deploy holding its lock
        self._runs: dict[str, DeployRun] = {}  # domain -> its running deploy's steps
        self._last: dict[str, DeployResult] = {}
        self._unknown: list[ContainerInfo] = []
        self.gate = DeployGate()  # held / deferred around a takeover of hotswap itself
        # Called with every finished deploy's result (e.g. the app feeds its metrics).
        self.on_result: Callable[[DeployResult], None] | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the deploy nursery until cancelled; started() once deploys can be started."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def update_config(self, config: Config) -> None:
        """New settings and routes apply to the deploys that start after this."""
        self._config = config

    # -- deploys -------------------------------------------------------------------

    def start_deploy(
        self, domain: str, image: str | None = None, *, force: bool = False, reason: str = "manual"
    ) -> DeployHandle:
        """Start deploying `image` (default: the route's) to `domain`; returns at once."""
        route = self._route(domain)
        nursery = self._require_nursery()
        self.gate.check()
        handle = DeployHandle(new_deploy_id(), route.domain, image or route.image, reason)
        log.info(
            "deploy requested deploy=%s domain=%s image=%s force=%s reason=%s",
            handle.id,
            handle.domain,
            handle.image,
            force,
            reason,
        )
        ticket = self._take(handle.domain)  # now: requests are served in order
        if ticket.must_wait:
            holder = self._running.get(handle.domain)
            handle.emit(
                Phase.QUEUED,
                "another deploy of this domain is running"
                + (f" ({holder.id}); waiting for it" if holder else "; waiting for it"),
                waiting_for=holder.id if holder else None,
            )
        nursery.start_soon(self._run_deploy, handle, ticket, force, name=f"deploy {handle.id}")
        return handle

    def start_rollback(self, domain: str) -> DeployHandle:
        """Deploy the image that ran before the last deploy of `domain`."""
        route = self._route(domain)
        current = self._current.get(route.domain)
        previous = current.labels.get(LABEL_PREVIOUS_IMAGE, "") if current else ""
        if not previous:
            raise DeployError(
                f"nothing to roll back to for {route.domain}: its container records no "
                "previous image"
            )
        return self.start_deploy(route.domain, previous, reason="rollback")

    async def _run_deploy(self, handle: DeployHandle, ticket: Ticket, force: bool) -> None:
        """One deploy task: wait its turn, run, record; never raises except Cancelled."""
        domain = handle.domain
        result: DeployResult | None = None
        try:
            with handle.cancel_scope:
                try:
                    await self._wait_undeferred(handle)
                    await ticket.wait_turn()
                    self._running[domain] = handle
                    try:
                        result = await self._deploy_locked(handle, force)
                    finally:
                        del self._running[domain]
                finally:
                    self._release(ticket)
            if result is None:
                result = self._failed(handle, "cancelled")
        except HotswapError as exc:
            result = self._failed(handle, str(exc))
        except Exception as exc:
            log.exception("deploy crashed deploy=%s domain=%s", handle.id, domain)
            result = self._failed(handle, f"internal error: {type(exc).__name__}: {exc}")
        except BaseException:  # Cancelled: the deployer is stopping
            handle.finish(self._failed(handle, "cancelled: hotswap is stopping"))
            raise
        self._last[domain] = result
        handle.finish(result)
        if self.on_result is not None:
            self.on_result(result)

    async def _deploy_locked(self, handle: DeployHandle, force: bool) -> DeployResult:
        route = self._route(handle.domain)  # the config may have changed while queued
        run = DeployRun(
            runtime=self._runtime,
            routes=self._routes,
            config=self._config,
            route=route,
            handle=handle,
            current=self._current.get(route.domain),
            force=force,
        )
        self._runs[route.domain] = run
        try:
            return await run.run()
        finally:
            del self._runs[route.domain]
            # Even if cancelled after the switch (hotswap stopping): it is what serves now.
            if run.serving is not None:
                self._current[route.domain] = run.serving
                with trio.CancelScope(shield=True), trio.move_on_after(REFRESH_TIMEOUT):
                    self._current[route.domain] = await self._refresh(run.serving)

    async def _refresh(self, info: ContainerInfo) -> ContainerInfo:
        try:
            return await self._runtime.inspect(info.id)
        except HotswapError as exc:
            log.warning("inspect of the new container failed container=%s error=%s", info.name, exc)
            return info

    def _failed(self, handle: DeployHandle, error: str) -> DeployResult:
        now = time.time()
        return DeployResult(
            deploy_id=handle.id,
            domain=handle.domain,
            outcome=Outcome.FAILED,
            image=handle.image,
            error=error,
            started=handle.created,
            finished=now,
            duration=now - handle.created,
        )

    # -- start-up ------------------------------------------------------------------

    async def start_up(self) -> None:
        """Adopt the running managed container of each route; deploy routes with none.

        Waits for those deploys. Containers of unknown domains are left running, reported.
        """
        plan = await self.adopt()
        await self.finish_start_up(plan)

    async def adopt(self) -> AdoptionPlan:
        """Route each domain to its running managed container (one Docker call).

        Run before the proxy listens, so a restart of hotswap never answers 404 for an
        app that is running; the slow part of start-up is finish_start_up().
        """
        containers = await self._runtime.list_managed()
        plan = plan_adoption(self._config.routes, containers)
        for domain, info in plan.adopt.items():
            assert info.address is not None
            backend = Backend(info.address, name=info.name, container_id=info.id, image=info.image)
            previous = self._routes.switch(domain, backend)
            if previous is not None:
                previous.close()
            self._current[domain] = info
            log.info(
                "adopted container=%s name=%s domain=%s image=%s address=%s health=%s",
                info.id[:12],
                info.name,
                domain,
                info.image,
                info.address,
                info.health,
            )
        self._unknown = plan.unknown
        for info in plan.unknown:
            log.warning(
                "managed container of a domain not in the config, left running "
                "container=%s name=%s domain=%s image=%s",
                info.id[:12],
                info.name,
                info.domain,
                info.image,
            )
        return plan

    async def finish_start_up(self, plan: AdoptionPlan) -> None:
        """Remove the extra containers of the routes, deploy the routes with none; waits."""
        for info in plan.remove:
            log.info(
                "removing an extra container of a route container=%s name=%s domain=%s",
                info.id[:12],
                info.name,
                info.domain,
            )
            try:
                await self._runtime.stop(info.id, self._config.deploy.stop_timeout)
                await self._runtime.remove(info.id)
            except HotswapError as exc:
                log.warning("could not remove container=%s error=%s", info.name, exc)
        # A reload meanwhile may have removed a route; one it deployed already is
        # skipped by the deploy itself (same image id), queued behind it.
        missing = [d for d in plan.deploy if d in self._config.routes]
        handles = [self.start_deploy(domain, reason="start-up") for domain in missing]
        for handle in handles:
            result = await handle.wait()
            if not result.ok:
                log.error("start-up deploy failed domain=%s error=%s", handle.domain, result.error)

    async def retire(self, domain: str, replacement: Backend | None = None) -> None:
        """A route was removed: drain its backend, then stop and remove its container.

        With `replacement` (the route became an external route) the domain switches to
        it instead of disappearing; in both cases under the domain's lock, after any
        deploy of it, so no deploy can route it back to a container afterwards.
        """
        ticket = self._take(domain)
        try:
            await self.gate.wait_undeferred()
            await ticket.wait_turn()
            if replacement is None:
                backend = self._routes.remove(domain)
            else:
                backend = self._routes.switch(domain, replacement)
            info = self._current.pop(domain, None)
            if backend is not None:
                with trio.move_on_after(self._config.deploy.drain_timeout):
                    await backend.inflight.wait_idle()
                backend.close()
            container_id = info.id if info else backend.container_id if backend else None
            if container_id is None:
                return
            log.info(
                "retiring the container of a removed route domain=%s container=%s",
                domain,
                container_id[:12],
            )
            try:
                await self._runtime.stop(container_id, self._config.deploy.stop_timeout)
                await self._runtime.remove(container_id)
            except HotswapError as exc:  # Docker failing here must not stop hotswap
                log.warning(
                    "could not stop the container of a removed route domain=%s "
                    "container=%s error=%s",
                    domain,
                    container_id[:12],
                    exc,
                )
        finally:
            self._release(ticket)

    # -- status --------------------------------------------------------------------

    async def refresh(self) -> None:
        """Re-read the state and health of each serving container (for status); bounded.

        A container a deploy replaced meanwhile is left alone: only the entry that was
        inspected is updated. One that cannot be inspected keeps what was known.
        """

        async def one(domain: str, info: ContainerInfo) -> None:
            try:
                fresh = await self._runtime.inspect(info.id)
            except HotswapError as exc:
                log.debug("status: inspect failed container=%s error=%s", info.name, exc)
                return
            if self._current.get(domain) is info:
                self._current[domain] = fresh

        with trio.move_on_after(STATUS_REFRESH_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for domain, info in list(self._current.items()):
                    nursery.start_soon(one, domain, info)

    def status(self) -> dict[str, Any]:
        """JSON-able: {"domains": {domain: {...}}, "unmanaged": [...]}."""
        domains: dict[str, Any] = {}
        for domain in sorted(set(self._config.routes) | set(self._current) | set(self._last)):
            info = self._serving(domain)
            entry: dict[str, Any] = {
                "image": info.image if info else None,
                "image_id": info.image_id if info else None,
                "container_id": info.id if info else None,
                "container_name": info.name if info else None,
                "state": info.status if info else "none",
                "health": info.health.value if info else None,
                "address": str(info.address) if info and info.address else None,
                "previous_image": info.labels.get(LABEL_PREVIOUS_IMAGE) if info else None,
                "restarts": info.restart_count if info else 0,
                "restart_policy": info.restart_policy if info else None,
                "volumes": list(info.mounts) if info else [],
                "networks": list(info.networks) if info else [],
            }
            running = self._running.get(domain)
            if running is not None:
                entry["deploying"] = {
                    "id": running.id,
                    "image": running.image,
                    "phase": running.phase,
                }
            last = self._last.get(domain)
            entry["last_deploy"] = last.to_json() if last else None
            domains[domain] = entry
        unmanaged = [
            {"id": i.id, "name": i.name, "domain": i.domain, "image": i.image}
            for i in self._unknown
        ]
        return {"domains": domains, "unmanaged": unmanaged}

    def container(self, container_id: str) -> ContainerInfo | None:
        """What is known of a serving container (for the restart watch)."""
        for info in self._current.values():
            if info.id == container_id:
                return info
        return None

    def observe_container(self, info: ContainerInfo) -> None:
        """A serving container was inspected again (it restarted): keep status current."""
        for domain, known in list(self._current.items()):
            if known.id == info.id:
                self._current[domain] = info

    def in_progress(self) -> list[tuple[str, str, str]]:
        """(domain, deploy id, phase) of each deploy holding its domain's turn, for a
        takeover waiting for them (see gate.busy for the queued ones too)."""
        return [
            (domain, handle.id, handle.phase.value if handle.phase else "starting")
            for domain, handle in sorted(self._running.items())
        ]

    # -- helpers -------------------------------------------------------------------

    def _take(self, domain: str) -> Ticket:
        ticket = self._queues[domain].take()
        self.gate.enter()
        return ticket

    def _release(self, ticket: Ticket) -> None:
        if not ticket.done.is_set():
            ticket.release()
            self.gate.leave()

    async def _wait_undeferred(self, handle: DeployHandle) -> None:
        reason = self.gate.deferred
        if reason is not None:
            handle.emit(Phase.QUEUED, reason)
            await self.gate.wait_undeferred()

    def _serving(self, domain: str) -> ContainerInfo | None:
        """The container serving `domain`: a running deploy's new one from its switch on."""
        run = self._runs.get(domain)
        if run is not None and run.serving is not None:
            return run.serving
        return self._current.get(domain)

    def _route(self, domain: str) -> Route:
        try:
            key = normalize_route_key(domain)
        except ValueError:
            key = domain
        route = self._config.routes.get(key)
        if route is None:
            external = self._config.external_routes.get(key)
            if external is not None:
                raise UnknownDomainError(
                    f"{key} is an external route (to {external.address}): hotswap proxies "
                    "it but does not deploy it; only [routes] entries have containers"
                )
            what = "route" if is_path_route(key) else "domain"
            raise UnknownDomainError(f"unknown {what} {domain}: no route in the config")
        return route

    def _require_nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise DeployError("the deployer is not running")
        return self._nursery
