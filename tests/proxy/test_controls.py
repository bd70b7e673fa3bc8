"""Route controls without sockets: the order a resume releases held requests in, timeouts,
and the state kept on disk."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from hotswap.controls_store import controls_file, load_controls, save_controls
from hotswap.proxy.controls import Maintenance, RouteControls


async def test_resume_releases_held_requests_one_at_a_time_in_arrival_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controls = RouteControls()
    controls.pause("app.test", timeout=60)
    control = controls.get("app.test")
    assert control is not None
    acquired: list[int] = []

    async def request(i: int) -> None:
        assert await control.hold()
        acquired.append(i)  # what forward() does next: acquire, with no checkpoint between

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(request, i)
            await trio.testing.wait_all_tasks_blocked()
        assert control.waiting == 20 and acquired == []
        controls.resume("app.test")
        # a request arriving after the resume waits behind the ones held before it
        nursery.start_soon(request, 20)
    assert acquired == list(range(21))


async def test_a_held_request_gives_up_at_the_timeout_and_the_others_keep_their_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    controls = RouteControls()
    controls.pause("app.test", timeout=10)
    control = controls.get("app.test")
    assert control is not None
    results: dict[str, bool] = {}

    async def request(name: str) -> None:
        results[name] = await control.hold()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request, "early")
        await trio.sleep(8)
        nursery.start_soon(request, "late")
        await trio.sleep(3)  # "early" timed out at 10 s
        assert results == {"early": False}
        controls.resume("app.test")
    assert results == {"early": False, "late": True}


def test_pause_and_maintenance_survive_on_disk(tmp_path: Path) -> None:
    path = controls_file(tmp_path / "hotswap.toml", tmp_path / "state")
    controls = RouteControls()
    controls.pause("a.test", 45)
    controls.set_maintenance("b.test", Maintenance("upgrading the database", 600))
    save_controls(path, controls.snapshot())
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    state, problem = load_controls(path)
    assert problem is None
    again = RouteControls()
    assert again.restore(state) == ["a.test: paused (timeout 45s)", "b.test: in maintenance"]
    assert again.snapshot() == controls.snapshot()


def test_an_unreadable_state_file_is_reported_and_ignored(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text("{not json")
    state, problem = load_controls(path)
    assert state == {} and problem is not None and str(path) in problem
    assert load_controls(tmp_path / "missing.json") == ({}, None)
    assert RouteControls().restore({"x": {"paused": {"timeout": "bad"}}, "y": 3}) == []
