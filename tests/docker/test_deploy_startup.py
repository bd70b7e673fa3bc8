"""Start-up adoption after a restart, and how deploys of one or two domains interleave."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import h11
import pytest
import trio
from deploy_harness import Deployed, Harness, KeepAliveClient, follow, open_harness, wait_phase

from hotswap.deploy import Outcome


@pytest.fixture
async def h(test_images: dict[str, str]) -> AsyncIterator[Harness]:
    async with open_harness(test_images) as harness:
        yield harness


async def test_a_restart_adopts_the_running_containers_without_redeploying(
    h: Harness, test_images: dict[str, str]
) -> None:
    with trio.fail_after(90):
        kept = h.add_route("kept", "app_v1")
        assert (await h.deploy(kept)).result.ok
        [running] = await h.running(kept)
        # A second container for the same domain, newer (another hotswap's deploy, say).
        async with open_harness(test_images, like=h) as other:
            newer = await other.deploy(kept, "app_v2")
            assert newer.result.ok, newer.result.error
        assert len(await h.running(kept)) == 2
        dropped = h.add_route("dropped", "app_v1")
        assert (await h.deploy(dropped)).result.ok
        fresh = h.add_route("fresh", "app_v2")  # no container yet
        # The restarted hotswap no longer has the "dropped" route.
        routes = {d: r for d, r in h.config.routes.items() if d != dropped}
        h.config = dataclasses.replace(h.config, routes=routes)
        async with open_harness(test_images, like=h) as restarted:
            await restarted.deployer.start_up()
            [adopted] = await restarted.running(kept)
            assert adopted.id == newer.result.container_id  # the newest healthy one
            assert adopted.id != running.id
            assert [c.id for c in await restarted.managed(kept)] == [adopted.id]
            assert await restarted.get(kept) == (200, b"v2\n")
            assert await restarted.get(fresh) == (200, b"v2\n")  # deployed at start-up
            status = restarted.deployer.status()
            assert status["domains"][kept]["container_id"] == adopted.id
            assert status["domains"][kept]["last_deploy"] is None  # adopted, not deployed
            ours = [u["domain"] for u in status["unmanaged"] if u["domain"].endswith(h.suffix)]
            assert ours == [dropped]  # (other test sessions may have containers too)
            assert len(await restarted.running(dropped)) == 1  # left running
            # Nothing deployed for an adopted route: the next deploy of the same image skips.
            again = await restarted.deploy(kept, "app_v2")
            assert again.result.outcome is Outcome.SKIPPED


async def test_two_deploys_of_one_domain_are_serialised(h: Harness) -> None:
    with trio.fail_after(90):
        domain = h.add_route("serial", "app_v1")
        assert (await h.deploy(domain)).result.ok
        first = h.deployer.start_deploy(domain, h.image("app_v2"))
        second = h.deployer.start_deploy(domain, h.image("app_v1"), force=True)
        a, b = await follow(first), await follow(second)
        assert a.result.ok and b.result.ok, (a.result.error, b.result.error)
        assert "queued" not in a.phases
        assert b.phases[0] == "queued"
        assert b.first("pulling").time >= a.events[-1].time
        assert await h.get(domain) == (200, b"v1\n")
        assert len(await h.managed(domain)) == 1


async def test_deploys_of_two_domains_run_in_parallel(h: Harness) -> None:
    with trio.fail_after(90):
        one = h.add_route("par-one", "app_v1")
        two = h.add_route("par-two", "app_v1")
        handles = [h.deployer.start_deploy(d) for d in (one, two)]
        results: list[Deployed] = [await follow(handle) for handle in handles]
        for deployed in results:
            assert deployed.result.outcome is Outcome.OK, deployed.result.error
            assert "queued" not in deployed.phases
        # Their lifetimes overlap: each started before the other finished.
        starts = [d.first("pulling").time for d in results]
        ends = [d.events[-1].time for d in results]
        assert max(starts) < min(ends)
        assert await h.get(one) == (200, b"v1\n")
        assert await h.get(two) == (200, b"v1\n")


async def test_a_deploy_cancelled_after_the_switch_is_adopted_correctly_at_the_next_start(
    h: Harness, test_images: dict[str, str]
) -> None:
    domain = h.add_route("cancelled", "app_v1")

    async def slow_request(port: int) -> None:
        try:
            async with KeepAliveClient.connect(port) as client:
                await client.get(domain, "/slow?s=60")
        except (OSError, ConnectionError, trio.BrokenResourceError, h11.ProtocolError):
            pass  # cut when the first hotswap stops

    with trio.fail_after(120):
        assert (await h.deploy(domain)).result.ok
        async with trio.open_nursery() as clients:
            async with open_harness(test_images, like=h) as first:
                await first.deployer.start_up()
                old = first.routes.get(domain)
                assert old is not None
                clients.start_soon(slow_request, first.proxy.port)
                while old.inflight.requests == 0:
                    await old.inflight.wait_change()
                handle = first.deployer.start_deploy(domain, first.image("app_v2"))
                await wait_phase(handle, "draining")  # switched; the drain waits for /slow
            # Leaving the harness cancels its deployer mid-drain: hotswap stopping.
            clients.cancel_scope.cancel()
        result = await handle.wait()
        assert not result.ok and "cancelled" in (result.error or "")
        assert len(await h.running(domain)) == 2  # both left running after the switch
        async with open_harness(test_images, like=h) as restarted:
            await restarted.deployer.start_up()
            [adopted] = await restarted.managed(domain)  # the old one removed
            assert adopted.image == test_images["app_v2"] and adopted.running
            assert await restarted.get(domain) == (200, b"v2\n")
            again = await restarted.deploy(domain, "app_v2")
            assert again.result.outcome is Outcome.SKIPPED  # nothing left half-done
