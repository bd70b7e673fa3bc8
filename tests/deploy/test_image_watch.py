"""Image watch: a moved tag deploys each route using it once, after the burst settles."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio
import trio.testing

from hotswap.config import PullPolicy
from hotswap.deploy.watch import ImageWatch, watch_images
from hotswap.errors import EventStreamLost, UnknownDomainError
from hotswap.runtime.base import ImageEvent, ImageInfo

ROUTES = {"a.com": "app:latest", "b.com": "app", "c.com": "other:1"}


def test_a_moved_tag_deploys_every_route_that_uses_it_once_settled() -> None:
    watch = ImageWatch(debounce=1.0)
    watch.seed("app:latest", "sha256:old")
    watch.observe("app:latest", "sha256:new", now=10.0)
    assert watch.due(10.5, ROUTES) == []
    assert watch.next_due() == 11.0
    assert watch.due(11.0, ROUTES) == [
        ("a.com", "app:latest", "sha256:new"),
        ("b.com", "app", "sha256:new"),
    ]
    assert watch.next_due() is None


def test_a_burst_of_events_is_one_deploy_after_the_last_one() -> None:
    watch = ImageWatch(debounce=1.0)
    watch.seed("app", "sha256:old")
    watch.observe("app:latest", "sha256:x", now=0.0)
    watch.observe("docker.io/library/app:latest", "sha256:y", now=0.8)
    assert watch.due(1.5, ROUTES) == []
    assert [d[0] for d in watch.due(1.8, ROUTES)] == ["a.com", "b.com"]
    assert watch.known["app:latest"] == "sha256:y"


def test_the_same_id_again_is_no_change() -> None:
    watch = ImageWatch(debounce=1.0)
    watch.seed("app:latest", "sha256:old")
    watch.observe("app:latest", "sha256:old", now=0.0)
    assert watch.next_due() is None
    watch.observe("app:latest", "sha256:new", now=0.0)
    watch.observe("app:latest", "sha256:old", now=0.5)  # moved back before it settled
    assert watch.next_due() is None
    assert watch.due(5.0, ROUTES) == []


def test_an_unused_reference_deploys_nothing_and_digests_are_ignored() -> None:
    watch = ImageWatch(debounce=1.0)
    watch.observe("unrelated:2", "sha256:x", now=0.0)
    assert watch.due(2.0, ROUTES) == []
    watch.observe("app@sha256:abc", "sha256:abc", now=0.0)
    assert watch.next_due() is None


class FakeReceiver:
    def __init__(self, receive: trio.MemoryReceiveChannel[ImageEvent | None]) -> None:
        self._receive = receive

    async def receive(self) -> ImageEvent:
        item = await self._receive.receive()
        if item is None:
            raise EventStreamLost("docker events stream broke")
        return item


class FakeRuntime:
    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[ImageEvent | None](10)
        self.images = {"app:latest": "sha256:old", "other:1": "sha256:o1"}
        self.subscriptions = 0

    async def image_info(self, ref: str) -> ImageInfo | None:
        image_id = self.images.get(ref)
        return ImageInfo(ref, image_id, 8000, True) if image_id else None

    @contextmanager
    def subscribe_images(self) -> Iterator[FakeReceiver]:
        self.subscriptions += 1
        yield FakeReceiver(self.receive)

    async def ensure_image(self, ref: str, policy: PullPolicy) -> ImageInfo:
        raise NotImplementedError


class FakeDeployer:
    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []

    def start_deploy(
        self, domain: str, image: str | None = None, *, force: bool = False, reason: str = "manual"
    ) -> object:
        if domain == "gone.com":
            raise UnknownDomainError("gone.com")
        self.started.append((domain, reason))
        return object()


@pytest.fixture
def routes() -> dict[str, str]:
    return {"a.com": "app:latest", "c.com": "other:1"}


async def test_watch_deploys_after_a_tag_event_and_survives_a_lost_stream(
    autojump_clock: trio.testing.MockClock, routes: dict[str, str]
) -> None:
    runtime, deployer = FakeRuntime(), FakeDeployer()
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_images, runtime, deployer, lambda: routes)  # type: ignore[arg-type]
            await trio.sleep(0.1)
            await runtime.send.send(ImageEvent("app:latest", "sha256:old", 0.0))  # not a change
            await runtime.send.send(ImageEvent("app:latest", "sha256:new", 0.0))
            await runtime.send.send(ImageEvent("app:latest", "sha256:new", 0.0))
            await trio.sleep(5)
            assert deployer.started == [("a.com", "image-watch")]

            # The stream breaks; meanwhile the tag moves. Resubscribing catches up.
            runtime.images["app:latest"] = "sha256:newer"
            await runtime.send.send(None)
            await trio.sleep(5)
            assert runtime.subscriptions == 2
            assert deployer.started == [("a.com", "image-watch")] * 2
            nursery.cancel_scope.cancel()


async def test_a_deploy_that_cannot_start_is_logged_and_the_watch_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    runtime, deployer = FakeRuntime(), FakeDeployer()
    routes = {"gone.com": "app:latest", "c.com": "other:1"}
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_images, runtime, deployer, lambda: routes)  # type: ignore[arg-type]
            await trio.sleep(0.1)
            await runtime.send.send(ImageEvent("app:latest", "sha256:new", 0.0))
            await trio.sleep(5)
            await runtime.send.send(ImageEvent("other:1", "sha256:o2", 0.0))
            await trio.sleep(5)
            nursery.cancel_scope.cancel()
    assert deployer.started == [("c.com", "image-watch")]
    assert "cannot deploy domain=gone.com" in caplog.text


def test_a_moved_tag_deploys_a_path_route_by_its_route_key() -> None:
    watch = ImageWatch(debounce=1.0)
    watch.seed("api:3", "sha256:old")
    watch.observe("api:3", "sha256:new", now=0.0)
    routes = {"a.com": "app:latest", "a.com/api": "api:3"}
    assert watch.due(1.0, routes) == [("a.com/api", "api:3", "sha256:new")]
