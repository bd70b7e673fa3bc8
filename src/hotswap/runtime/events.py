"""The one task that reads Docker's events stream and fans events out to subscribers.

The stream is a blocking HTTP response, read in a worker thread; each event is
parsed there and handed to the Trio thread with `trio.from_thread.run_sync`,
where it goes to the matching subscriptions with `send_nowait`. A subscription
is a small memory channel: a subscriber that falls behind (its buffer full) is
marked lost instead of blocking the stream for everybody.

When the stream breaks (the daemon restarted, the connection dropped) every
open subscription is marked lost: its receive() returns what was buffered, then
raises EventStreamLost, so a deploy waiting for "healthy" fails with a clear
error instead of hanging. The task reconnects with backoff, asking Docker to
replay the events since the break, so subscriptions made during the gap miss
nothing Docker still remembers.

On cancellation the stream's socket is shut down from the Trio side, which ends
the worker thread's blocking read at once; the thread is never abandoned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

import trio

from hotswap.errors import EventStreamLost
from hotswap.runtime.base import ContainerEvent, ImageEvent
from hotswap.runtime.parse import ImageRefEvent, container_event, image_event

log = logging.getLogger(__name__)

SUBSCRIPTION_BUFFER = 64  # a deploy sees a handful of events per container
ALL_CONTAINERS_BUFFER = 1024  # every container's events: a busy host's burst
RECONNECT_INITIAL = 0.1
RECONNECT_MAX = 5.0

# What we ask Docker for (the `event` filter matches "health_status: healthy" too).
EVENT_FILTERS: dict[str, list[str]] = {
    "type": ["container", "image"],
    "event": ["start", "die", "health_status", "destroy", "tag", "pull"],
}

T = TypeVar("T")


class EventStream(Protocol):
    """A blocking iterator of decoded event dicts that another thread can close()."""

    def __iter__(self) -> Iterator[Mapping[str, Any]]: ...

    def close(self) -> None: ...


# Open a stream (blocking; runs in a worker thread). Argument: replay events since this
# unix time, or None for new events only.
Connect = Callable[[float | None], EventStream]
# Look up the image id a ref points at (blocking; runs in the worker thread), None if unknown.
ResolveImage = Callable[[str], str | None]


class Subscription(Generic[T]):
    """The receiving end handed to a subscriber (implements base.EventReceiver)."""

    def __init__(self, description: str, buffer: int = SUBSCRIPTION_BUFFER) -> None:
        self.description = description
        self._send, self._receive = trio.open_memory_channel[T](buffer)
        self._lost_reason: str | None = None

    @property
    def lost(self) -> bool:
        return self._lost_reason is not None

    async def receive(self) -> T:
        """The next event; EventStreamLost once the buffered ones are used up after a loss."""
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise EventStreamLost(
                f"{self._lost_reason} (while waiting for events of {self.description})"
            ) from None

    def push(self, item: T) -> None:
        if self._lost_reason is not None:
            return
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            used = self._receive.statistics().current_buffer_used
            self.lose(f"event subscriber fell behind ({used} events buffered)")
        except trio.BrokenResourceError:  # the subscriber closed its end
            pass

    def lose(self, reason: str) -> None:
        if self._lost_reason is None:
            self._lost_reason = reason
            self._send.close()

    def close(self) -> None:
        self._send.close()
        self._receive.close()


class EventHub:
    """Subscriptions by container id (and for image events), and the task feeding them."""

    def __init__(self, *, buffer: int = SUBSCRIPTION_BUFFER) -> None:
        self._buffer = buffer
        self._containers: dict[str, set[Subscription[ContainerEvent]]] = {}
        self._images: set[Subscription[ImageEvent]] = set()
        self._all_containers: set[Subscription[ContainerEvent]] = set()
        self._stream: EventStream | None = None
        self._connected = trio.Event()
        # Its own limiter: the stream holds a thread for its whole life, and must not
        # take a slot from the runtime's SDK calls.
        self._limiter = trio.CapacityLimiter(1)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Return once the events stream is (again) connected."""
        await self._connected.wait()

    @contextmanager
    def subscribe(self, container_id: str) -> Iterator[Subscription[ContainerEvent]]:
        """Events of one container while the context is open (works before the stream is up)."""
        sub: Subscription[ContainerEvent] = Subscription(
            f"container {container_id[:12]}", self._buffer
        )
        subs = self._containers.setdefault(container_id, set())
        subs.add(sub)
        try:
            yield sub
        finally:
            subs.discard(sub)
            if not subs and self._containers.get(container_id) is subs:
                del self._containers[container_id]
            sub.close()

    @contextmanager
    def subscribe_images(self) -> Iterator[Subscription[ImageEvent]]:
        """Image events (a ref now points at an image: tag, pull) while the context is open."""
        sub: Subscription[ImageEvent] = Subscription("images", self._buffer)
        self._images.add(sub)
        try:
            yield sub
        finally:
            self._images.discard(sub)
            sub.close()

    @contextmanager
    def subscribe_containers(
        self, buffer: int = ALL_CONTAINERS_BUFFER
    ) -> Iterator[Subscription[ContainerEvent]]:
        """Every container's events while the context is open (the restart watch)."""
        sub: Subscription[ContainerEvent] = Subscription("all containers", buffer)
        self._all_containers.add(sub)
        try:
            yield sub
        finally:
            self._all_containers.discard(sub)
            sub.close()

    def disconnect(self) -> None:
        """Close the current stream connection, as if the daemon went away; the task marks
        subscriptions lost and reconnects. For tests and diagnostics."""
        if self._stream is not None:
            _close_quietly(self._stream)

    def deliver(self, event: ContainerEvent | ImageEvent) -> None:
        """Hand one event to its subscribers (on the Trio thread; never blocks)."""
        if isinstance(event, ContainerEvent):
            for sub in list(self._containers.get(event.container_id, ())):
                sub.push(event)
            for sub in list(self._all_containers):
                sub.push(event)
        else:
            for image_sub in list(self._images):
                image_sub.push(event)

    def lose_all(self, reason: str) -> None:
        """Mark every open subscription lost; later subscriptions are unaffected."""
        for subs in self._containers.values():
            for sub in subs:
                sub.lose(reason)
        for image_sub in self._images:
            image_sub.lose(reason)
        for sub in self._all_containers:
            sub.lose(reason)

    async def run(
        self,
        connect: Connect,
        resolve_image: ResolveImage,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Read the stream forever, reconnecting with backoff; started() once connected."""
        backoff = RECONNECT_INITIAL
        since: float | None = None
        started = False
        while True:
            try:
                stream = await self._connect(connect, since)
            except Exception as exc:  # the SDK raises docker and requests errors alike
                log.warning(
                    "docker events stream: connect failed retry_in=%.1fs error=%s", backoff, exc
                )
                await trio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX)
                continue
            backoff = RECONNECT_INITIAL
            self._stream = stream
            self._connected.set()
            log.info("docker events stream connected replay_since=%s", since)
            if not started:
                task_status.started()
                started = True
            try:
                reason = await self._pump(stream, resolve_image)
            finally:
                self._stream = None
                _close_quietly(stream)
            since = time.time()
            self._connected = trio.Event()
            message = f"Docker's events stream was lost ({reason})"
            log.warning("docker events stream lost reason=%s", reason)
            self.lose_all(message)
            await trio.sleep(backoff)

    async def _connect(self, connect: Connect, since: float | None) -> EventStream:
        """Open the stream in a thread. Cancellable (a remote daemon may not answer): if
        cancelled, whichever side finishes last closes the stream, so none leaks."""
        lock = threading.Lock()
        opened: list[EventStream] = []
        abandoned = False

        def open_stream() -> EventStream:
            stream = connect(since)
            with lock:
                opened.append(stream)
                if abandoned:
                    _close_quietly(stream)
            return stream

        try:
            return await trio.to_thread.run_sync(
                open_stream, abandon_on_cancel=True, limiter=self._limiter
            )
        except trio.Cancelled:
            with lock:
                abandoned = True
                for stream in opened:
                    _close_quietly(stream)
            raise

    async def _pump(self, stream: EventStream, resolve_image: ResolveImage) -> str:
        """Feed events until the stream ends; return why it ended."""

        def read() -> str:
            try:
                for event in _parse(stream, resolve_image):
                    trio.from_thread.run_sync(self.deliver, event)
            except Exception as exc:
                return f"{type(exc).__name__}: {exc}"
            return "the connection to the daemon closed"

        async def close_on_cancel() -> None:
            try:
                await trio.sleep_forever()
            finally:
                _close_quietly(stream)  # ends the thread's blocking read

        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_on_cancel)
            # Not abandoned on cancel: close_on_cancel makes it return promptly instead.
            reason = await trio.to_thread.run_sync(
                read, abandon_on_cancel=False, limiter=self._limiter
            )
            nursery.cancel_scope.cancel()
        return reason


def _parse(
    stream: Iterable[Mapping[str, Any]], resolve_image: ResolveImage
) -> Iterator[ContainerEvent | ImageEvent]:
    for raw in stream:
        cont = container_event(raw)
        if cont is not None:
            yield cont
            continue
        img = image_event(raw)
        if img is not None:
            resolved = _resolve(img, resolve_image)
            if resolved is not None:
                yield resolved


def _resolve(event: ImageRefEvent, resolve_image: ResolveImage) -> ImageEvent | None:
    if event.image_id:
        return event.resolved(event.image_id)
    try:
        image_id = resolve_image(event.ref)
    except Exception as exc:
        log.warning("image event: cannot resolve ref=%s error=%s", event.ref, exc)
        return None
    return event.resolved(image_id) if image_id else None


def _close_quietly(stream: EventStream) -> None:
    try:
        stream.close()
    except Exception as exc:  # already closed / half torn down by the SDK
        log.debug("closing docker events stream failed error=%s", exc)
