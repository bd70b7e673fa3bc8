"""Image watch: redeploy a route when its image reference points at a new image id.

Docker reports `tag` (a `docker build -t`, a `docker tag`) and `pull` events;
the runtime turns them into ImageEvent(ref, image_id). A burst of events for
one reference (a pull tags, a build may tag twice) is debounced: the deploy
starts once the reference has been quiet for DEBOUNCE seconds, and only if the
id differs from the last one seen for it. The deployer's skip-if-same-image rule
stops any deploy that would change nothing.

ImageWatch is the decision, without I/O; `watch_images` is the Trio task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import trio

from hotswap.errors import EventStreamLost, HotswapError
from hotswap.runtime.base import ContainerRuntime, EventReceiver, ImageEvent
from hotswap.runtime.images import is_digest_ref, normalize_ref

log = logging.getLogger(__name__)

DEBOUNCE = 1.0
RESUBSCRIBE_DELAY = 1.0  # after the events stream broke (the runtime reconnects meanwhile)


class StartsDeploys(Protocol):
    def start_deploy(
        self, domain: str, image: str | None = None, *, force: bool = False, reason: str = ...
    ) -> object: ...


@dataclass
class _Pending:
    image_id: str
    due: float


class ImageWatch:
    """Which routes to redeploy after which image events (no I/O, times passed in)."""

    def __init__(self, debounce: float = DEBOUNCE) -> None:
        self.debounce = debounce
        self.known: dict[str, str] = {}  # normalised ref -> image id last seen
        self.pending: dict[str, _Pending] = {}  # normalised ref -> change waiting to settle

    def seed(self, ref: str, image_id: str) -> None:
        """Remember the id `ref` points at now (at start-up), so it is not taken as a change."""
        self.known.setdefault(normalize_ref(ref), image_id)

    def observe(self, ref: str, image_id: str, now: float) -> None:
        """An event says `ref` points at `image_id`; (re)start its debounce period."""
        key = normalize_ref(ref)
        if is_digest_ref(key):
            return  # a digest reference cannot move
        if self.known.get(key) == image_id:
            self.pending.pop(key, None)  # moved back before it settled: nothing changed
            return
        self.pending[key] = _Pending(image_id, now + self.debounce)

    def next_due(self) -> float | None:
        """When the earliest pending change settles, or None."""
        return min((p.due for p in self.pending.values()), default=None)

    def due(self, now: float, routes: Mapping[str, str]) -> list[tuple[str, str, str]]:
        """The settled changes as (domain, ref, image id) to deploy; forgets them.

        `routes`: domain -> image reference, as configured right now.
        """
        settled = [key for key, p in self.pending.items() if p.due <= now]
        deploys: list[tuple[str, str, str]] = []
        for key in settled:
            change = self.pending.pop(key)
            self.known[key] = change.image_id
            for domain, image in sorted(routes.items()):
                if normalize_ref(image) == key:
                    deploys.append((domain, image, change.image_id))
        return deploys


async def watch_images(
    runtime: ContainerRuntime,
    deployer: StartsDeploys,
    routes: Callable[[], Mapping[str, str]],
    *,
    debounce: float = DEBOUNCE,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Deploy routes whose image tag moved, until cancelled. `routes()`: domain -> image ref.

    Signals started() once subscribed to image events: start it before the start-up
    deploys, so a tag that moves while they run is not missed.
    """
    watch = ImageWatch(debounce)
    started = False
    while True:
        try:
            with runtime.subscribe_images() as events:
                # Subscribed first, then seeded: a tag that moves in between is still seen.
                await _seed(runtime, watch, routes())
                if not started:
                    log.info("image watch started routes=%d", len(routes()))
                    task_status.started()
                    started = True
                while True:
                    await _next(events, watch, deployer, routes)
        except EventStreamLost as exc:
            log.warning("image watch: docker events lost, resubscribing error=%s", exc)
        await trio.sleep(RESUBSCRIBE_DELAY)


async def _seed(runtime: ContainerRuntime, watch: ImageWatch, routes: Mapping[str, str]) -> None:
    """Learn what each route's reference points at; after a lost stream, catch up on moves."""
    for ref in sorted(set(routes.values())):
        try:
            info = await runtime.image_info(ref)
        except HotswapError as exc:
            log.warning("image watch: cannot inspect ref=%s error=%s", ref, exc)
            continue
        if info is None:
            continue
        if normalize_ref(ref) in watch.known:
            watch.observe(ref, info.id, trio.current_time())  # moved while we were deaf?
        else:
            watch.seed(ref, info.id)


async def _next(
    events: EventReceiver[ImageEvent],
    watch: ImageWatch,
    deployer: StartsDeploys,
    routes: Callable[[], Mapping[str, str]],
) -> None:
    """Wait for the next image event or the next settled change, whichever comes first."""
    due = watch.next_due()
    with trio.move_on_at(due if due is not None else float("inf")):
        event = await events.receive()
        watch.observe(event.ref, event.image_id, trio.current_time())
        log.debug("image event ref=%s id=%s", event.ref, event.image_id[:19])
    for domain, ref, image_id in watch.due(trio.current_time(), routes()):
        log.info(
            "image watch: tag moved, deploying domain=%s image=%s id=%s", domain, ref, image_id[:19]
        )
        try:
            deployer.start_deploy(domain, reason="image-watch")
        except HotswapError as exc:
            log.error("image watch: cannot deploy domain=%s error=%s", domain, exc)
