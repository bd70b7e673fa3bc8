"""Start-up adoption decisions: the newest healthy container per route, no redeploy."""

from __future__ import annotations

import dataclasses

from hotswap.config import Address
from hotswap.deploy.adopt import plan_adoption
from hotswap.runtime.base import ContainerInfo, Health

ADDRESS = Address("127.0.0.1", 9000)


def container(
    cid: str,
    domain: str,
    created: float,
    *,
    running: bool = True,
    health: Health = Health.HEALTHY,
    address: Address | None = ADDRESS,
) -> ContainerInfo:
    return ContainerInfo(
        id=cid,
        name=f"hotswap-{cid}",
        domain=domain,
        image="app:1",
        image_id="sha256:1",
        deploy_id=cid,
        created=created,
        running=running,
        status="running" if running else "exited",
        health=health,
        health_log="",
        exit_code=None if running else 0,
        address=address,
    )


def test_the_newest_healthy_container_is_adopted_and_the_others_removed() -> None:
    plan = plan_adoption(
        ["a.com"],
        [
            container("old", "a.com", 1),
            container("new", "a.com", 3),
            container("newest-unhealthy", "a.com", 4, health=Health.UNHEALTHY),
            container("stopped", "a.com", 5, running=False),
        ],
    )
    assert plan.adopt["a.com"].id == "new"
    assert sorted(c.id for c in plan.remove) == ["newest-unhealthy", "old", "stopped"]
    assert plan.deploy == [] and plan.unknown == []


def test_a_container_without_healthcheck_counts_as_healthy() -> None:
    plan = plan_adoption(["a.com"], [container("x", "a.com", 1, health=Health.NONE)])
    assert plan.adopt["a.com"].id == "x"


def test_routes_without_a_running_container_are_deployed() -> None:
    plan = plan_adoption(
        ["a.com", "b.com", "c.com"],
        [
            container("dead", "b.com", 1, running=False),
            container("noaddr", "c.com", 1, address=None),
        ],
    )
    assert plan.adopt == {}
    assert plan.deploy == ["a.com", "b.com", "c.com"]
    assert sorted(c.id for c in plan.remove) == ["dead", "noaddr"]


def test_containers_of_unknown_domains_are_left_alone_and_reported() -> None:
    plan = plan_adoption(
        ["a.com"],
        [container("gone", "gone.com", 1), container("gone-stopped", "gone.com", 2, running=False)],
    )
    assert [c.id for c in plan.unknown] == ["gone"]
    assert plan.remove == []
    assert plan.deploy == ["a.com"]


def test_a_restarting_container_is_not_adopted_over_a_running_one() -> None:
    old = container("old", "a.com", 1.0)
    crashing = container("new", "a.com", 2.0)  # newer, but crash-looping
    crashing = dataclasses.replace(crashing, status="restarting", exit_code=1)
    plan = plan_adoption(["a.com"], [old, crashing])
    assert plan.adopt["a.com"].id == "old"
    assert [c.id for c in plan.remove] == ["new"]


def test_a_route_whose_only_container_is_restarting_is_deployed() -> None:
    crashing = dataclasses.replace(container("c", "a.com", 1.0), status="restarting")
    plan = plan_adoption(["a.com"], [crashing])
    assert plan.adopt == {}
    assert plan.deploy == ["a.com"]
    assert [c.id for c in plan.remove] == ["c"]


def test_each_route_key_adopts_the_container_its_label_names_whatever_the_name() -> None:
    # "example.com/api" and the domain "example-com.api" both give containers named
    # hotswap-example-com-api-<id>: adoption reads the hotswap.domain label only.
    site = container("site", "example.com", 1)
    api = dataclasses.replace(
        container("api", "example.com/api", 2), name="hotswap-example-com-api-1"
    )
    other = dataclasses.replace(
        container("other", "example-com.api", 3), name="hotswap-example-com-api-2"
    )
    plan = plan_adoption(["example.com", "example.com/api", "example-com.api"], [other, api, site])
    assert {key: info.id for key, info in plan.adopt.items()} == {
        "example.com": "site",
        "example.com/api": "api",
        "example-com.api": "other",
    }
    assert plan.remove == [] and plan.deploy == []
