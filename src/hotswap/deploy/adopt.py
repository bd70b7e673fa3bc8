"""Start-up adoption: which running managed containers keep serving after a restart.

Restarting hotswap must never redeploy or interrupt an app. For each route the
running managed container labelled with its domain is adopted (the newest
healthy one if several; the others are stopped and removed); routes with none
are deployed. Containers of domains no longer in the config are left running and
reported: a later reload decides.

`plan_adoption` decides without I/O; the deployer carries the plan out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hotswap.runtime.base import ContainerInfo, Health

# Better first: running, then healthy (or no healthcheck), then newest.
_HEALTH_RANK = {Health.HEALTHY: 2, Health.NONE: 2, Health.STARTING: 1, Health.UNHEALTHY: 0}


@dataclass
class AdoptionPlan:
    adopt: dict[str, ContainerInfo] = field(default_factory=dict)  # domain -> container
    remove: list[ContainerInfo] = field(default_factory=list)  # extra containers of a route
    deploy: list[str] = field(default_factory=list)  # routes with nothing to adopt
    unknown: list[ContainerInfo] = field(default_factory=list)  # domains not in the config


def _rank(info: ContainerInfo) -> tuple[int, int, float]:
    return (int(info.serving), _HEALTH_RANK.get(info.health, 0), info.created)


def plan_adoption(domains: Iterable[str], containers: Iterable[ContainerInfo]) -> AdoptionPlan:
    """Decide, for the configured `domains`, what to do with the managed `containers`."""
    wanted = sorted(set(domains))
    by_domain: dict[str, list[ContainerInfo]] = {}
    plan = AdoptionPlan()
    for info in containers:
        if info.domain in wanted:
            by_domain.setdefault(info.domain, []).append(info)
        elif info.running:
            plan.unknown.append(info)
        # A stopped container of an unknown domain is nobody's business here.
    for domain in wanted:
        candidates = sorted(by_domain.get(domain, []), key=_rank, reverse=True)
        best = candidates[0] if candidates else None
        if best is None or not best.serving or best.address is None:
            plan.deploy.append(domain)
            plan.remove.extend(candidates)
            continue
        plan.adopt[domain] = best
        plan.remove.extend(candidates[1:])
    return plan
