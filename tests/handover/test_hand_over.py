"""Both sides of a takeover in one process: the protocol over a real Unix socket, with a
stand-in for the running app (what the old side needs of it: handover.Predecessor)."""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path

import pytest
import trio
import trio.testing

from hotswap.config import Config, parse_config
from hotswap.deploy.gate import DeployGate
from hotswap.errors import DeployError, TakeoverError, TakeoverRefused
from hotswap.handover import HandoverServer, ListenSockets, request_takeover
from hotswap.handover.channel import listen
from hotswap.handover.protocol import DeployNote, listen_addresses


def config(listen: str = "127.0.0.1:0") -> Config:
    text = f'[server]\nlisten = "{listen}"\nadmin_listen = "127.0.0.1:0"\n'
    return parse_config(tomllib.loads(text), Path("/etc/hotswap.toml"))


class OldApp:
    """The running serve: one listening socket, a deploy gate, a record of the hand-over."""

    def __init__(self, sockets: ListenSockets) -> None:
        self.sockets = sockets
        self.gate = DeployGate()
        self.stopping = False
        self.handed_to: int | None = None
        self.asked_for_deploys = trio.Event()

    def deploys_in_progress(self) -> list[DeployNote]:
        self.asked_for_deploys.set()
        return [DeployNote("app.test", "d1", "health")]

    def offer(self) -> tuple[dict[str, str], list[str], list[int]]:
        names, fds = self.sockets.fds()
        return listen_addresses(config()), names, fds

    def hand_over(self, successor: int) -> tuple[int, int]:
        self.handed_to = successor
        return 3, 1


async def old_app(nursery: trio.Nursery, path: Path) -> tuple[OldApp, trio.CancelScope]:
    sockets = ListenSockets()
    await sockets.bind_missing(config())
    app = OldApp(sockets)
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await HandoverServer(app, path).run(task_status=task_status)

    await nursery.start(run)
    return app, scope


def port_of(sockets: ListenSockets, name: str) -> int:
    listeners = sockets.get(name)
    assert listeners
    return int(listeners[0].socket.getsockname()[1])


async def test_the_sockets_pass_and_the_old_side_hands_over_once_the_new_one_is_ready(
    state_dir: Path,
) -> None:
    path = state_dir / "t.sock"
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            app, scope = await old_app(nursery, path)
            assert path.stat().st_mode & 0o777 == 0o600
            takeover = await request_takeover(config(), path, deploy_wait=5)
            assert takeover.old_pid == os.getpid()
            # The same listening socket: a connection to it is accepted on our descriptor.
            port = port_of(takeover.sockets, "proxy")
            assert port == port_of(app.sockets, "proxy")
            with socket.create_connection(("127.0.0.1", port)):
                listener = takeover.sockets.get("proxy")
                assert listener is not None
                accepted = await listener[0].accept()
                await accepted.aclose()
            assert app.gate.held is not None  # no deploy starts on the old side now
            with pytest.raises(DeployError, match="being taken over"):
                app.gate.check()
            await takeover.confirm()
            assert app.handed_to == os.getpid()
            scope.cancel()  # the old process exits: its end of the connection closes
            await takeover.wait_gone()
            takeover.close()
            takeover.sockets.close()
            app.sockets.close()


async def test_a_takeover_waits_for_the_deploys_running_on_the_old_side(
    state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = state_dir / "t.sock"
    caplog.set_level("INFO")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            app, scope = await old_app(nursery, path)
            app.gate.enter()  # a deploy is running
            got = []

            async def take() -> None:
                got.append(await request_takeover(config(), path, deploy_wait=5))

            nursery.start_soon(take)
            await app.asked_for_deploys.wait()
            await trio.testing.wait_all_tasks_blocked()
            assert not got
            app.gate.leave()  # it finished
            while not got:
                await trio.testing.wait_all_tasks_blocked()
            (takeover,) = got
            takeover.close()
            takeover.sockets.close()
            await trio.testing.wait_all_tasks_blocked()
            assert app.gate.held is None  # the new side left before it was ready: released
            assert app.handed_to is None
            scope.cancel()
            app.sockets.close()
    waited = [r.getMessage() for r in caplog.records if "finish its deploys" in r.getMessage()]
    assert waited and "app.test (deploy d1, health)" in waited[0]


async def test_a_takeover_gives_up_when_the_deploys_take_too_long(state_dir: Path) -> None:
    path = state_dir / "t.sock"
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            app, scope = await old_app(nursery, path)
            app.gate.enter()
            with pytest.raises(TakeoverRefused, match=r"did not finish within 0\.2s"):
                await request_takeover(config(), path, deploy_wait=0.2)
            await trio.testing.wait_all_tasks_blocked()
            assert app.gate.held is None
            scope.cancel()
            app.sockets.close()


async def test_a_second_takeover_at_the_same_time_is_refused(state_dir: Path) -> None:
    path = state_dir / "t.sock"
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            app, scope = await old_app(nursery, path)
            first = await request_takeover(config(), path, deploy_wait=5)
            with pytest.raises(TakeoverRefused, match="another takeover of this process"):
                await request_takeover(config(), path, deploy_wait=5)
            first.close()
            first.sockets.close()
            scope.cancel()
            app.sockets.close()


async def test_nothing_listening_is_a_clear_error(state_dir: Path) -> None:
    with pytest.raises(TakeoverError, match="nothing to take over"):
        await request_takeover(config(), state_dir / "none.sock", deploy_wait=1)
    long = state_dir / ("x" * 120)
    with pytest.raises(TakeoverError, match="path too long"):
        await request_takeover(config(), long, deploy_wait=1)


async def test_a_stale_socket_file_is_replaced_and_only_our_own_file_is_removed(
    state_dir: Path,
) -> None:
    path = state_dir / "sub" / "t.sock"
    stale = await listen(path)
    stale.socket.close()  # a killed process left its file
    first = await listen(path)  # replaces it
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    second = await listen(path)  # a successor takes the name while we still run
    first.close()
    assert path.exists()  # not ours any more: left alone
    second.close()
    assert not path.exists()


async def test_held_deploys_are_refused_and_deferred_ones_wait() -> None:
    gate = DeployGate()
    gate.check()
    gate.hold("busy handing over")
    with pytest.raises(DeployError, match="busy handing over"):
        gate.check()
    gate.release()
    gate.check()
    gate.defer("the old process drains")
    waited = []

    async def deploy() -> None:
        await gate.wait_undeferred()
        waited.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(deploy)
        await trio.testing.wait_all_tasks_blocked()
        assert not waited
        gate.undefer()
    assert waited == [True]
