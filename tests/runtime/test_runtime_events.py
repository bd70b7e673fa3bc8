"""EventHub: fan-out, overflow, loss and reconnect, cancellation (a fake stream, no Docker)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import trio

from hotswap.errors import EventStreamLost
from hotswap.runtime.base import EventKind, Health, ImageEvent
from hotswap.runtime.events import EventHub

A, B = "a" * 64, "b" * 64
IMAGE_ID = "sha256:" + "1" * 64


def event(cid: str, action: str, **attributes: str) -> dict[str, Any]:
    return {
        "Type": "container",
        "Action": action,
        "time": 1,
        "Actor": {"ID": cid, "Attributes": attributes},
    }


class FakeStream:
    """Blocks in a worker thread like the SDK's stream until fed or closed."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
        self.closed = False
        self.closed_event = threading.Event()

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        while (item := self._queue.get()) is not None:
            yield item

    def feed(self, *events: Mapping[str, Any]) -> None:
        for item in events:
            self._queue.put(item)

    def end(self) -> None:  # the daemon went away
        self._queue.put(None)

    def close(self) -> None:
        self.closed = True
        self.closed_event.set()
        self._queue.put(None)


class FakeDocker:
    def __init__(self, fail_first: int = 0) -> None:
        self.streams: list[FakeStream] = []
        self.since: list[float | None] = []
        self.fail_first = fail_first

    def connect(self, since: float | None) -> FakeStream:
        if self.fail_first:
            self.fail_first -= 1
            raise ConnectionError("daemon down")
        self.since.append(since)
        self.streams.append(FakeStream())
        return self.streams[-1]

    def resolve(self, ref: str) -> str | None:
        return IMAGE_ID if ref == "app:v2" else None


async def test_events_reach_the_subscribers_of_their_container() -> None:
    hub, fake = EventHub(), FakeDocker()
    with trio.fail_after(10):
        with hub.subscribe(A) as a1, hub.subscribe(A) as a2, hub.subscribe(B) as b:
            async with trio.open_nursery() as nursery:
                await nursery.start(hub.run, fake.connect, fake.resolve)
                fake.streams[0].feed(
                    event(A, "start"),
                    event(B, "die", exitCode="3"),
                    event(A, "health_status: healthy"),
                )
                for sub in (a1, a2):
                    assert (await sub.receive()).kind is EventKind.START
                    assert (await sub.receive()).health is Health.HEALTHY
                died = await b.receive()
                assert (died.kind, died.exit_code) == (EventKind.DIE, 3)
                nursery.cancel_scope.cancel()
    assert fake.streams[0].closed  # cancellation closed the stream, so the thread ended


async def test_image_events_resolve_pulled_refs() -> None:
    hub, fake = EventHub(), FakeDocker()
    tag = {
        "Type": "image",
        "Action": "tag",
        "time": 5,
        "Actor": {"ID": IMAGE_ID, "Attributes": {"name": "app:v3"}},
    }
    pull = {"Type": "image", "Action": "pull", "time": 6, "Actor": {"ID": "app:v2"}}
    unknown = {"Type": "image", "Action": "pull", "time": 7, "Actor": {"ID": "gone:1"}}
    with trio.fail_after(10), hub.subscribe_images() as images:
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run, fake.connect, fake.resolve)
            fake.streams[0].feed(tag, unknown, pull)
            assert await images.receive() == ImageEvent("app:v3", IMAGE_ID, 5.0)
            assert await images.receive() == ImageEvent("app:v2", IMAGE_ID, 6.0)
            nursery.cancel_scope.cancel()


async def test_a_full_subscriber_is_marked_lost_without_blocking_others() -> None:
    hub, fake = EventHub(buffer=2), FakeDocker()
    with trio.fail_after(10), hub.subscribe(A) as slow, hub.subscribe(B) as other:
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run, fake.connect, fake.resolve)
            fake.streams[0].feed(*(event(A, "start") for _ in range(3)), event(B, "start"))
            assert (await other.receive()).kind is EventKind.START
            assert (await slow.receive()).kind is EventKind.START
            assert (await slow.receive()).kind is EventKind.START
            with pytest.raises(EventStreamLost, match="fell behind"):
                await slow.receive()
            nursery.cancel_scope.cancel()


async def test_lost_stream_fails_waiters_and_reconnects_replaying_since_the_loss() -> None:
    hub, fake = EventHub(), FakeDocker()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run, fake.connect, fake.resolve)
            with hub.subscribe(A) as waiting:
                fake.streams[0].feed(event(A, "start"))
                fake.streams[0].end()
                assert (await waiting.receive()).kind is EventKind.START  # buffered first
                with pytest.raises(EventStreamLost, match="Docker's events stream was lost"):
                    await waiting.receive()
            # Subscribed during the gap: served by the next connection.
            with hub.subscribe(B) as later:
                await hub.wait_connected()
                assert len(fake.streams) == 2
                assert fake.since[0] is None and fake.since[1] is not None
                fake.streams[1].feed(event(B, "die", exitCode="0"))
                assert (await later.receive()).exit_code == 0
            nursery.cancel_scope.cancel()


async def test_started_waits_for_the_first_connection_and_retries() -> None:
    hub, fake = EventHub(), FakeDocker(fail_first=2)
    with trio.fail_after(10), hub.subscribe(A) as early:
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run, fake.connect, fake.resolve)
            assert hub.connected and len(fake.streams) == 1
            fake.streams[0].feed(event(A, "start"))
            assert (await early.receive()).kind is EventKind.START
            nursery.cancel_scope.cancel()


async def test_disconnect_closes_the_current_stream() -> None:
    hub, fake = EventHub(), FakeDocker()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.run, fake.connect, fake.resolve)
            with hub.subscribe(A) as waiting:
                hub.disconnect()
                with pytest.raises(EventStreamLost):
                    await waiting.receive()
            assert fake.streams[0].closed
            await hub.wait_connected()
            nursery.cancel_scope.cancel()


async def test_cancelling_a_slow_connect_closes_the_stream_it_opens_later() -> None:
    hub, fake, stream = EventHub(), FakeDocker(), FakeStream()
    entered, release = threading.Event(), threading.Event()

    def slow_connect(since: float | None) -> FakeStream:
        entered.set()
        release.wait(10)
        return stream

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hub.run, slow_connect, fake.resolve)
            await trio.to_thread.run_sync(entered.wait)
            nursery.cancel_scope.cancel()
        release.set()
        # The abandoned thread finishes on its own, then closes what it opened.
        assert await trio.to_thread.run_sync(stream.closed_event.wait, 5)
