"""`hotswap logs`: the route's container log as NDJSON, following the route across deploys
and restarts (fake log source; the real engine is in tests/docker/test_apps.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
from admin_fakes import start

from hotswap.admin.logs import NoContainerError, parse_log_query, route_logs
from hotswap.admin.router import HttpError
from hotswap.config import Address
from hotswap.errors import AdminClientError
from hotswap.proxy.routes import Backend, RouteTable
from hotswap.runtime.base import LogLine


class FakeLogs:
    """Each container's lines; a container's log ends (as when it stops) on `stop(id)`."""

    def __init__(self) -> None:
        self.lines: dict[str, list[LogLine]] = {}
        self.stopped: dict[str, trio.Event] = {}
        self.opened: list[tuple[str, int | None, float | None]] = []

    def add(self, container_id: str, second: int, text: str) -> None:
        self.lines.setdefault(container_id, []).append(LogLine((second, 0), text))

    def stop(self, container_id: str) -> None:
        self.stopped.setdefault(container_id, trio.Event()).set()

    @asynccontextmanager
    async def open_logs(
        self, container_id: str, *, follow: bool, tail: int | None, since: float | None
    ) -> AsyncIterator[AsyncIterator[LogLine]]:
        self.opened.append((container_id, tail, since))
        stopped = self.stopped.setdefault(container_id, trio.Event())
        lines = list(self.lines.get(container_id, []))
        if since is not None:
            lines = [line for line in lines if line.stamp[0] >= since]
        if tail is not None:
            lines = lines[-tail:] if tail else []

        send, receive = trio.open_memory_channel[LogLine](len(lines) + 1)
        for line in lines:
            send.send_nowait(line)

        async def end() -> None:
            if follow:
                await stopped.wait()
            send.close()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(end)
            with receive:
                yield receive
            nursery.cancel_scope.cancel()


def backend(container_id: str, name: str) -> Backend:
    return Backend(Address("127.0.0.1", 1), name=name, container_id=container_id, image="app:1")


@asynccontextmanager
async def following(
    routes: RouteTable, logs: FakeLogs, *, follow: bool = True, tail: int | None = None
) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
    """route_logs in a task; what it emits arrives on the channel."""
    send, receive = trio.open_memory_channel[dict[str, Any]](100)

    async def run() -> None:
        async with send:
            await route_logs(
                routes, logs, "app.test", follow=follow, tail=tail, since=None, emit=send.send
            )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        yield receive
        nursery.cancel_scope.cancel()


async def take(items: trio.MemoryReceiveChannel[dict[str, Any]], count: int) -> list[Any]:
    return [
        (item := await items.receive()).get("line", item.get("container")) for _ in range(count)
    ]


async def test_without_follow_the_current_containers_last_lines_then_the_end() -> None:
    routes, logs = RouteTable(), FakeLogs()
    routes.switch("app.test", backend("c1", "app-1"))
    for second, text in enumerate(["a", "b", "c"]):
        logs.add("c1", second, text)
    with trio.fail_after(5):
        async with following(routes, logs, follow=False, tail=2) as items:
            got = [item async for item in items]
    assert got[0] == {"event": "container", "container": "app-1", "id": "c1", "image": "app:1"}
    assert [i["line"] for i in got[1:]] == ["b", "c"]


async def test_follow_goes_on_with_the_new_container_after_a_deploy() -> None:
    routes, logs = RouteTable(), FakeLogs()
    routes.switch("app.test", backend("c1", "app-1"))
    logs.add("c1", 1, "v1 up")
    logs.add("c2", 2, "v2 starting")  # logged during readiness, before the switch
    with trio.fail_after(5):
        async with following(routes, logs) as items:
            assert await take(items, 2) == ["app-1", "v1 up"]
            routes.switch("app.test", backend("c2", "app-2"))
            logs.stop("c1")  # the deploy stops the old container: its log ends
            assert await take(items, 2) == ["app-2", "v2 starting"]


async def test_follow_resumes_a_restarted_container_where_it_stopped() -> None:
    routes, logs = RouteTable(), FakeLogs()
    b1 = backend("c1", "app-1")
    routes.switch("app.test", b1)
    logs.add("c1", 10, "before the crash")
    with trio.fail_after(5):
        async with following(routes, logs) as items:
            assert await take(items, 2) == ["app-1", "before the crash"]
            routes.mark_down(b1, "exited")
            logs.stop("c1")
            logs.stopped["c1"] = trio.Event()  # running again
            logs.add("c1", 11, "after the restart")
            routes.mark_up(b1)
            assert await take(items, 1) == ["after the restart"]
    assert logs.opened[-1] == ("c1", None, 10.0)


async def test_follow_with_tail_never_replays_older_lines_when_a_quiet_container_restarts() -> None:
    routes, logs = RouteTable(), FakeLogs()
    b1 = backend("c1", "app-1")
    routes.switch("app.test", b1)
    now = int(time.time())
    logs.add("c1", now - 3600, "an hour ago")
    with trio.fail_after(5):
        async with following(routes, logs, tail=0) as items:  # only new lines
            assert await take(items, 1) == ["app-1"]
            await trio.testing.wait_all_tasks_blocked()  # following its (quiet) log
            routes.mark_down(b1, "exited")  # it exits before it logs anything new
            logs.stop("c1")
            logs.stopped["c1"] = trio.Event()  # running again
            logs.add("c1", now + 3600, "after the restart")
            routes.mark_up(b1)
            assert await take(items, 1) == ["after the restart"]


async def ignore(item: dict[str, Any]) -> None:
    await trio.lowlevel.checkpoint()


async def test_a_route_without_a_container_has_no_logs() -> None:
    with pytest.raises(NoContainerError, match=r"no container serves app\.test"):
        await route_logs(
            RouteTable(),
            FakeLogs(),
            "app.test",
            follow=False,
            tail=None,
            since=None,
            emit=ignore,
        )


def test_the_query_gives_follow_tail_and_since() -> None:
    query = parse_log_query("/v1/logs/app.test?follow=1&tail=50&since=10m", now=1000.0)
    assert (query.follow, query.tail, query.since) == (True, 50, 400.0)
    assert parse_log_query("/v1/logs/a").since is None
    with pytest.raises(HttpError, match="tail: expected a number of lines"):
        parse_log_query("/v1/logs/a?tail=x")
    with pytest.raises(HttpError, match="tail: expected a number of lines"):
        parse_log_query("/v1/logs/a?tail=%C2%B2")  # "²" is a digit to str.isdigit()
    with pytest.raises(HttpError, match="since:"):
        parse_log_query("/v1/logs/a?since=10")


async def test_the_admin_api_streams_the_logs_with_the_token_and_refuses_unknown_routes() -> None:
    logs = FakeLogs()
    logs.add("c" * 64, 1, "hello from the app")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            h.app.runtime = logs  # type: ignore[attr-defined]
            events = await trio.to_thread.run_sync(
                lambda: list(h.client().logs("app.example.com", tail=10))
            )
            with pytest.raises(AdminClientError, match="requires an admin token"):
                await trio.to_thread.run_sync(lambda: list(h.client("").logs("app.example.com")))
            with pytest.raises(AdminClientError, match="is an external route"):
                await trio.to_thread.run_sync(lambda: list(h.client().logs("legacy.example.com")))
            nursery.cancel_scope.cancel()
    assert events[0]["event"] == "container"
    assert [e["line"] for e in events[1:]] == ["hello from the app"]
    assert logs.opened == [("c" * 64, 10, None)]


async def test_the_logs_of_a_path_route_are_asked_for_by_its_encoded_route_key() -> None:
    logs = FakeLogs()
    logs.add("a" * 64, 1, "hello from the api")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            h.app.runtime = logs  # type: ignore[attr-defined]
            api = Backend(Address("127.0.0.1", 40002), name="hotswap-api-1", container_id="a" * 64)
            h.app.routes.switch("app.example.com/api", api)
            events = await trio.to_thread.run_sync(
                lambda: list(h.client().logs("app.example.com/api"))
            )
            with pytest.raises(AdminClientError, match=r"unknown route app\.example\.com/nope"):
                await trio.to_thread.run_sync(lambda: list(h.client().logs("app.example.com/nope")))
            nursery.cancel_scope.cancel()
    assert [e.get("line") for e in events] == [None, "hello from the api"]
    assert events[0]["container"] == "hotswap-api-1"
