"""Progress events, the deploy handle (replay + live, slow readers), the per-domain queue."""

from __future__ import annotations

import json

import trio
import trio.testing

from hotswap.deploy.progress import DeployHandle, DeployResult, Outcome, Phase
from hotswap.deploy.queue import DomainQueue, Ticket


def result(handle: DeployHandle, outcome: Outcome, error: str = "") -> DeployResult:
    return DeployResult(handle.id, handle.domain, outcome, handle.image, error=error)


def test_an_event_is_json_with_the_phase_as_event() -> None:
    handle = DeployHandle("d1", "a.com", "app:2", "manual")
    event = handle.emit(Phase.DRAINING, "2 in flight", in_flight=2)
    line = event.to_json()
    assert line["event"] == "draining" and line["deploy"] == "d1" and line["domain"] == "a.com"
    assert line["data"] == {"in_flight": 2}
    json.dumps(line)
    assert "phase=draining" in event.log_line() and "in_flight=2" in event.log_line()


def test_finish_emits_the_final_event_with_the_error() -> None:
    handle = DeployHandle("d1", "a.com", "app:2", "manual")
    handle.finish(result(handle, Outcome.FAILED, "container exited with code 3"))
    last = handle.history[-1].to_json()
    assert last["event"] == "failed"
    assert last["error"] == "container exited with code 3"
    handle.finish(result(handle, Outcome.OK))  # idempotent: the first result stays
    assert handle.result is not None and handle.result.outcome is Outcome.FAILED


def test_a_skip_ends_with_done_saying_skipped_and_is_not_a_failure() -> None:
    handle = DeployHandle("d1", "a.com", "app:2", "manual")
    handle.emit(Phase.SKIPPED, "same image")
    handle.finish(result(handle, Outcome.SKIPPED))
    assert [e.phase for e in handle.history] == [Phase.SKIPPED, Phase.DONE]
    last = handle.history[-1].to_json()
    assert last["event"] == "done"
    assert last["data"]["result"] == "skipped"
    assert handle.result is not None and handle.result.ok


async def test_readers_replay_from_the_start_then_follow_live_and_end_after_the_final() -> None:
    handle = DeployHandle("d1", "a.com", "app:2", "manual")
    handle.emit(Phase.PULLING)
    seen: list[list[str]] = [[], []]

    async def read(i: int) -> None:
        async for event in handle.events():
            seen[i].append(event.phase.value)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read, 0)
        await trio.testing.wait_all_tasks_blocked()
        handle.emit(Phase.STARTING)
        handle.emit(Phase.SWITCHED)  # two at once: nothing is lost
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(read, 1)  # a late reader replays everything
        handle.finish(result(handle, Outcome.OK))
    assert seen[0] == seen[1] == ["pulling", "starting", "switched", "done"]
    assert (await handle.wait()).outcome is Outcome.OK


async def test_a_reader_that_never_reads_does_not_block_the_deploy() -> None:
    handle = DeployHandle("d1", "a.com", "app:2", "manual")
    events = handle.events()  # never iterated
    for _ in range(10_000):
        handle.emit(Phase.DRAINING, in_flight=1)  # emit is synchronous: it cannot block
    handle.finish(result(handle, Outcome.OK))
    await events.aclose()
    assert len(handle.history) == 10_001


async def test_deploys_of_a_domain_take_their_turn_in_request_order() -> None:
    queue = DomainQueue()
    order: list[str] = []
    tickets = [(name, queue.take()) for name in "abc"]
    assert [t.must_wait for _, t in tickets] == [False, True, True]

    async def run(name: str, ticket: Ticket) -> None:
        await ticket.wait_turn()
        order.append(name)
        await trio.sleep(0.01)
        ticket.release()

    async with trio.open_nursery() as nursery:
        for name, ticket in reversed(tickets):  # started in the "wrong" order
            nursery.start_soon(run, name, ticket)
    assert order == ["a", "b", "c"]
    assert len(queue) == 0


async def test_a_cancelled_queued_deploy_does_not_let_a_later_one_overtake() -> None:
    queue = DomainQueue()
    first, second, third = queue.take(), queue.take(), queue.take()
    second.release()  # cancelled while queued
    assert third.must_wait  # still behind the first
    with trio.move_on_after(0.01):
        await third.wait_turn()
        raise AssertionError("overtook a running deploy")
    first.release()
    await third.wait_turn()
