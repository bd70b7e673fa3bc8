"""One deploy of one domain, step by step (issue 4, steps 1-7).

    1 ensure the image          (skip if its id is the running container's, unless forced)
    2 create + start            (subscribed to the container's events before the start)
    3 readiness                 (readiness.py; health_timeout is a cancel scope here)
    4 switch                    (one RouteTable.switch; old idle upstream connections closed)
    5 drain the old backend     (drain.py)          } concurrently
    6 stabilisation             (the new one dying  } -> route back, remove it, fail)
    7 stop and remove the old container

Until the switch, any failure or cancellation stops and removes the new container
(shielded, with its own deadline) and the old one keeps serving. After the
switch the new container serves: a cancellation (hotswap stopping) leaves both
containers running, and the next start-up adopts the newest healthy one.

The Deployer (deployer.py) runs this under the domain's lock in its own cancel scope.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Final

import trio

from hotswap.config import Config, NetworkMode, ReadinessMode, Route
from hotswap.config_values import key_part
from hotswap.deploy.drain import DrainResult, drain
from hotswap.deploy.options import check_options, container_spec, load_env
from hotswap.deploy.progress import DeployHandle, DeployResult, Outcome, Phase
from hotswap.deploy.readiness import (
    Probe,
    ReadinessState,
    Strategy,
    choose_strategy,
    failure,
    wait_ready,
)
from hotswap.deploy.unwrap import first_error
from hotswap.errors import DeployError, EventStreamLost, HotswapError, ImageError
from hotswap.proxy.routes import Backend, BackendState, RouteTable
from hotswap.runtime.base import (
    LABEL_PREVIOUS_IMAGE,
    ContainerEvent,
    ContainerInfo,
    ContainerRuntime,
    ContainerSpec,
    EventKind,
    EventReceiver,
    Health,
    ImageInfo,
)

log = logging.getLogger(__name__)
# A stabilisation wait shorter than this after the drain is not worth a progress line.
STABILIZING_REPORT_MIN: Final = 0.1

CLEANUP_TIMEOUT = 30.0  # removing a failed new container, shielded from cancellation


@dataclass
class DeployRun:
    """Everything one deploy needs; `run()` does it and says how it went."""

    runtime: ContainerRuntime
    routes: RouteTable
    config: Config  # snapshot taken when the deploy got the domain's lock
    route: Route
    handle: DeployHandle
    current: ContainerInfo | None  # the container serving the domain now, if known
    force: bool
    # Set by run() at the switch: the container now serving the domain (None: unchanged;
    # set back to None if it died during stabilisation and traffic was routed back).
    serving: ContainerInfo | None = None

    @property
    def domain(self) -> str:
        return self.route.domain

    def report(self, phase: str, message: str = "", **data: Any) -> None:
        self.handle.emit(Phase(phase), message, **data)

    def result(self, outcome: Outcome, **fields: Any) -> DeployResult:
        now = time.time()
        return DeployResult(
            deploy_id=self.handle.id,
            domain=self.domain,
            outcome=outcome,
            image=self.handle.image,
            started=self.handle.created,
            finished=now,
            duration=now - self.handle.created,
            **fields,
        )

    async def run(self) -> DeployResult:
        # Before anything is pulled or created: the env file, networks, mounts, limits.
        env = await load_env(self.route)
        await check_options(self.runtime, self.route, self._spec(env, None, None, {}))
        image = await self._ensure_image()
        current = self.current
        if (
            current is not None
            and current.image_id == image.id
            and not self.force
            and not self._down(current)
        ):
            message = (
                f"image {self.handle.image} ({image.id[:19]}) is already running in "
                f"{current.name}; nothing to deploy (force to redeploy)"
            )
            self.handle.emit(Phase.SKIPPED, message, image=self.handle.image)
            return self.result(Outcome.SKIPPED, error=message)
        container_id = await self._create(image, env)
        switched = False
        try:
            with self.runtime.subscribe(container_id) as events:
                new, ready_at = await self._start_and_wait(container_id, image, events)
                backend = Backend(
                    new.address or _no_address(new),
                    name=new.name,
                    container_id=new.id,
                    image=self.handle.image,
                )
                old = self.routes.switch(self.domain, backend)
                switched_at = time.time()
                switched = True
                self.serving = new
                healthy_to_switch = None if ready_at is None else max(0.0, switched_at - ready_at)
                self.report(
                    "switched",
                    f"traffic now goes to {new.name}",
                    container=new.name,
                    address=str(backend.address),
                    previous=old.name if old is not None else None,
                    healthy_to_switch=healthy_to_switch,
                )
                if old is not None:
                    old.close()  # its idle pooled connections: no new request goes to them
                drained = await self._drain_and_stabilise(new, backend, old, events)
        except BaseException:
            if not switched:
                await self._remove_new(container_id)
            raise
        idle_to_stop = await self._stop_old(old, drained)
        return self.result(
            Outcome.OK,
            container_id=new.id,
            container_name=new.name,
            healthy_to_switch=healthy_to_switch,
            idle_to_stop=idle_to_stop,
            drain=None if drained is None else drained.duration,
        )

    def _down(self, current: ContainerInfo) -> bool:
        """`current` exited (or was removed) and does not run again (restart = "no", or
        "on-failure" after exit 0): the same image is deployed anew, not skipped as
        "already running"."""
        backend = self.routes.get(self.domain)
        return (
            backend is not None
            and backend.container_id == current.id
            and backend.state is BackendState.DOWN
        )

    async def _ensure_image(self) -> ImageInfo:
        policy = self.config.deploy.pull_policy
        ref = self.handle.image
        self.report("pulling", f"ensuring image {ref} (pull_policy={policy})", image=ref)
        return await self.runtime.ensure_image(ref, policy)

    async def _create(self, image: ImageInfo, env: dict[str, str]) -> str:
        port = self.route.port if self.route.port is not None else image.port
        mode = self.config.docker.network_mode
        if port is None and mode is NetworkMode.BRIDGE:
            raise ImageError(
                f"no port: set routes.{key_part(self.domain)}.port or label the image "
                "hotswap.port "
                f"(image {image.ref})"
            )
        labels = {}
        previous = self._previous_image(image)
        if previous:
            labels[LABEL_PREVIOUS_IMAGE] = previous
        spec = self._spec(env, image, port, labels)
        self.report("creating", f"creating a container of {image.ref}", image_id=image.id[:19])
        return await self.runtime.create(spec)

    def _spec(
        self,
        env: dict[str, str],
        image: ImageInfo | None,
        port: int | None,
        labels: dict[str, str],
    ) -> ContainerSpec:
        network_mode = self.config.docker.network_mode
        image_id = image.id if image is not None else ""
        return container_spec(self.route, self.handle, network_mode, env, image_id, port, labels)

    def _previous_image(self, image: ImageInfo) -> str:
        """What `rollback` should deploy after this deploy: the image running now.

        The same reference with a new id (a moved tag) is recorded by the old image's id,
        the only name left for it; a forced redeploy of the same image keeps the record.
        """
        current = self.current
        if current is None:
            return ""
        if current.image != self.handle.image:
            return current.image
        if current.image_id and current.image_id != image.id:
            return current.image_id
        return current.labels.get(LABEL_PREVIOUS_IMAGE, "")

    async def _start_and_wait(
        self, container_id: str, image: ImageInfo, events: EventReceiver[ContainerEvent]
    ) -> tuple[ContainerInfo, float | None]:
        """Start the container and wait until it is ready; returns it and when it got ready."""
        self.report("starting", "starting the new container", container_id=container_id[:12])
        info = await self.runtime.start(container_id)
        settings = self.config.deploy
        has_healthcheck = info.health is not Health.NONE or image.has_healthcheck
        state = ReadinessState(choose_strategy(settings.readiness_mode, has_healthcheck))
        probe = None
        if state.strategy is Strategy.HTTP:
            probe = Probe(
                info.address or _no_address(info),
                health_target(self.route),
                self.route.health_host or self.route.host,
            )
        mode = settings.readiness_mode
        self.report(
            "waiting",
            f"readiness {state.strategy}" + (" (auto)" if mode is ReadinessMode.AUTO else ""),
            container=info.name,
            strategy=state.strategy.value,
            address=str(info.address),
        )
        deadline = float("inf") if state.strategy is Strategy.DELAY else settings.health_timeout
        with trio.move_on_after(deadline) as scope:
            await wait_ready(
                self.runtime,
                info,
                events,
                state,
                readiness_delay=settings.readiness_delay,
                probe=probe,
                report=self.report,
            )
        if scope.cancelled_caught:
            raise await failure(
                self.runtime,
                container_id,
                f"not ready within health_timeout={deadline:g}s ({state.describe()})",
            )
        self.report("ready", f"{info.name} is ready", container=info.name, health=state.health)
        return info, state.ready_event_time

    async def _drain_and_stabilise(
        self,
        new: ContainerInfo,
        backend: Backend,
        old: Backend | None,
        events: EventReceiver[ContainerEvent],
    ) -> DrainResult | None:
        """Drain `old` while watching the new container for `stabilization`; if it dies,
        route back to the old container and fail."""
        settings = self.config.deploy
        drained: DrainResult | None = None
        died: ContainerEvent | None = None
        stable_at = trio.current_time() + settings.stabilization

        async def drain_old(old: Backend) -> None:
            nonlocal drained
            drained = await drain(old, settings, self.report, container=old.name)
            self.report(
                "drained",
                "old container drained" + (" (timed out)" if drained.timed_out else ""),
                container=old.name,
                timed_out=drained.timed_out,
                in_flight=drained.requests_left,
                tunnels=drained.tunnels_left,
                tunnels_closed=drained.tunnels_closed,
            )
            left = stable_at - trio.current_time()
            if left >= STABILIZING_REPORT_MIN:
                self.report(
                    "stabilizing",
                    f"watching {new.name} for {left:.1f}s more (deploy.stabilization) "
                    f"before stopping {old.name}",
                    remaining=round(left, 3),
                )

        try:
            async with trio.open_nursery() as nursery:
                if old is not None:
                    nursery.start_soon(drain_old, old)
                died = await _watch_stabilization(events, settings.stabilization, new)
                if died is not None:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        if died is not None:
            await self._route_back(new, backend, old, died)
        return drained

    async def _route_back(
        self, new: ContainerInfo, backend: Backend, old: Backend | None, died: ContainerEvent
    ) -> None:
        if self.routes.get(self.domain) is backend:
            if old is not None:
                # The old backend was retired at the switch (pool closed): route to a fresh one.
                again = Backend(
                    old.address, name=old.name, container_id=old.container_id, image=old.image
                )
                # A container that was down (exited, not restarted) stays down: 502 at once.
                again.state, again.down_reason = old.state, old.down_reason
                self.routes.switch(self.domain, again)
            else:
                self.routes.remove(self.domain)
        backend.close()
        self.serving = None
        code = "unknown" if died.exit_code is None else str(died.exit_code)
        error = await failure(
            self.runtime,
            new.id,
            f"exited with code {code} within stabilization={self.config.deploy.stabilization:g}s "
            "after the switch",
        )
        self.report(
            "rolled_back",
            f"{new.name} died after the switch; traffic is back on "
            + (old.name if old is not None else "nothing (no previous container)"),
            container=new.name,
            exit_code=died.exit_code,
        )
        await self._remove_new(new.id)
        head, _, tail = str(error).partition("\n")
        back = "the previous container" if old is not None else "no container (none before)"
        raise DeployError(f"{head}; traffic routed back to {back}" + (f"\n{tail}" if tail else ""))

    async def _stop_old(self, old: Backend | None, drained: DrainResult | None) -> float | None:
        """Stop and remove the old container; returns last-in-flight -> stopped seconds."""
        if old is None or old.container_id is None:
            return None
        grace = self.config.deploy.stop_timeout
        self.report("stopping", f"stopping {old.name}", container=old.name, grace=grace)
        try:
            await self.runtime.stop(old.container_id, grace)
            stopped_at = time.time()
            await self.runtime.remove(old.container_id)
        except HotswapError as exc:
            # The new container serves; a stuck old one is worth a warning, not a failure.
            log.warning(
                "could not stop or remove the old container container=%s error=%s", old.name, exc
            )
            self.report("stopped", f"could not stop {old.name}: {exc}", container=old.name)
            return None
        idle_to_stop = None
        if drained is not None and drained.idle_at is not None:
            idle_to_stop = max(0.0, stopped_at - drained.idle_at)
        self.report(
            "stopped",
            f"{old.name} stopped and removed",
            container=old.name,
            idle_to_stop=idle_to_stop,
        )
        return idle_to_stop

    async def _remove_new(self, container_id: str) -> None:
        """Remove the new container after a failure; shielded, with its own deadline."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(CLEANUP_TIMEOUT) as scope:
                try:
                    await self.runtime.remove(container_id)
                except HotswapError as exc:
                    log.error(
                        "could not remove the failed new container container=%s deploy=%s error=%s",
                        container_id[:12],
                        self.handle.id,
                        exc,
                    )
                    return
            if scope.cancelled_caught:
                log.error(
                    "removing the failed new container timed out container=%s timeout=%gs",
                    container_id[:12],
                    CLEANUP_TIMEOUT,
                )
                return
        log.info(
            "removed the failed new container container=%s deploy=%s domain=%s",
            container_id[:12],
            self.handle.id,
            self.domain,
        )


async def _watch_stabilization(
    events: EventReceiver[ContainerEvent], period: float, new: ContainerInfo
) -> ContainerEvent | None:
    """The die event of the new container within `period`, else None."""
    if period <= 0:
        return None
    with trio.move_on_after(period):
        try:
            while True:
                event = await events.receive()
                if event.kind in (EventKind.DIE, EventKind.DESTROY):
                    return event
        except EventStreamLost as exc:
            log.warning(
                "cannot watch the new container during stabilization container=%s error=%s",
                new.name,
                exc,
            )
    return None


def health_target(route: Route) -> str:
    """The path the http readiness probe asks the container for: health_path, which is
    under a path route's prefix as a client would ask for it through the proxy (it
    reaches the app as /api/up, or /up with strip_prefix)."""
    if not route.path or route.strip_prefix:
        return route.health_path
    return route.path + route.health_path


def _no_address(info: ContainerInfo) -> Any:
    raise DeployError(f"container {info.name}: Docker reports no address to route to")
