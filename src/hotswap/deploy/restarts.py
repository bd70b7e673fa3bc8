"""Following app containers that Docker restarts (their restart policy), through its events.

    die      the route's backend is marked down: requests get 502 at once, saying why
    start    the container is inspected again (bridge mode: Docker may have published
             another host port) and the route goes back to it, at its address now:
             traffic resumes with no command
    destroy  marked down: it was removed behind hotswap's back; the next deploy replaces it

Only the containers that routes serve right now are followed (RouteTable.serving), so
a container hotswap stops for a deploy changes nothing: the route left it at the
switch, and `docker stop` keeps the restart policy from starting it again. A route is
moved back to a restarted container only if it still routes to that container
(RouteTable.replace), so a late event never undoes a deploy.

One subscription to every container's events, opened after the start-up adoption and
followed by one inspection of every serving container (an exit between the adoption's
listing and the subscription is seen by that inspection); when the events stream is
lost, the watch subscribes again and inspects them again, so a restart during the gap
is not missed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from hotswap.errors import EventStreamLost, HotswapError
from hotswap.proxy.routes import Backend, BackendState, RouteTable
from hotswap.runtime.base import ContainerEvent, ContainerInfo, ContainerRuntime, EventKind

log = logging.getLogger(__name__)

# Docker restarts a container that exited by itself under these policies (on-failure: not
# after exit code 0); `docker stop` keeps any of them from restarting it.
_ALWAYS_RESTARTED = frozenset({"always", "unless-stopped"})


def down_reason(info: ContainerInfo | None, name: str, exit_code: int | None) -> str:
    """What status and the log say about a container that exited (the 502 page does not:
    a container's name and exit code are not for the public)."""
    code = "?" if exit_code is None else str(exit_code)
    reason = f"the app's container {name} exited with code {code}"
    policy = info.restart_policy if info is not None else ""
    if policy in _ALWAYS_RESTARTED or (policy == "on-failure" and exit_code != 0):
        return f"{reason}; Docker is restarting it (restart policy {policy})"
    if policy:
        return f'{reason}; it stays down until the next deploy (restart policy "{policy}")'
    return reason


class RestartWatch:
    """The task that keeps routes on their containers across Docker's restarts."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        routes: RouteTable,
        *,
        known: Callable[[str], ContainerInfo | None] = lambda container_id: None,
        on_info: Callable[[ContainerInfo], None] = lambda info: None,
        on_restart: Callable[[str], None] = lambda domain: None,
    ) -> None:
        self._runtime = runtime
        self._routes = routes
        self._known = known  # the last ContainerInfo of a container id, if any
        self._on_info = on_info  # a serving container was inspected again
        self._on_restart = on_restart  # a route's container runs again after an exit

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Follow the events until cancelled; started() once subscribed."""
        started = False
        while True:
            with self._runtime.subscribe_containers() as events:
                if not started:
                    task_status.started()
                    started = True
                await self.resync()
                try:
                    while True:
                        await self.handle(await events.receive())
                except EventStreamLost as exc:
                    log.warning("restart watch: events lost, subscribing again error=%s", exc)

    async def handle(self, event: ContainerEvent) -> None:
        serving = self._routes.serving(event.container_id)
        if not serving:
            return
        if event.kind is EventKind.DIE:
            info = self._known(event.container_id)
            for domain, backend in serving:
                reason = down_reason(info, backend.name, event.exit_code)
                self._routes.mark_down(backend, reason)
                log.warning(
                    "app container exited domain=%s container=%s exit_code=%s restart=%s",
                    domain,
                    backend.name,
                    event.exit_code,
                    info.restart_policy if info is not None else "?",
                )
        elif event.kind is EventKind.DESTROY:
            for domain, backend in serving:
                reason = f"the app's container {backend.name} was removed; deploy to replace it"
                self._routes.mark_down(backend, reason)
                log.warning("app container removed domain=%s container=%s", domain, backend.name)
        elif event.kind is EventKind.START:
            await self._refresh(event.container_id)

    async def resync(self) -> None:
        """Inspect every serving container once (after a subscription: missed events)."""
        ids = {backend.container_id for _, backend in self._routes}
        for container_id in sorted(i for i in ids if i is not None):
            await self._refresh(container_id)

    async def _refresh(self, container_id: str) -> None:
        try:
            info = await self._runtime.inspect(container_id)
        except HotswapError as exc:
            log.warning("restart watch: inspect failed container=%s error=%s", container_id, exc)
            return
        self._on_info(info)
        for domain, backend in self._routes.serving(container_id):
            if info.serving and info.address is not None:
                self._running_again(domain, backend, info)
            elif backend.state is BackendState.UP:
                reason = down_reason(info, backend.name, info.exit_code)
                self._routes.mark_down(backend, reason)

    def _running_again(self, domain: str, backend: Backend, info: ContainerInfo) -> None:
        was_down = backend.state is BackendState.DOWN
        if info.address != backend.address:
            # Bridge mode: a restart may publish the container port on another host port.
            assert info.address is not None
            fresh = Backend(
                info.address,
                name=backend.name,
                container_id=backend.container_id,
                image=backend.image,
            )
            fresh.stats = backend.stats  # one container, one set of counters
            if not self._routes.replace(domain, backend, fresh):
                return  # a deploy switched the route meanwhile
            backend.close()
        elif was_down:
            self._routes.mark_up(backend)
        if was_down:
            self._on_restart(domain)
            log.info(
                "app container running again domain=%s container=%s address=%s restarts=%d",
                domain,
                info.name,
                info.address,
                info.restart_count,
            )
