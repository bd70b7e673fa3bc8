"""Progress of one deploy: its events, its result, and the handle callers follow it with.

Every phase a deploy goes through is one ProgressEvent. The same record is
logged (logger `hotswap.deploy.progress`, key=value) and kept in the deploy's
history, from which any number of readers replay it (`DeployHandle.events()`).
The history is a list plus an Event, never a bounded channel: a slow reader
(an admin client on a bad network) can never stall the deploy.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any

import trio

log = logging.getLogger(__name__)


class Phase(enum.StrEnum):
    QUEUED = "queued"  # another deploy of the domain runs; waiting for the lock
    PULLING = "pulling"
    CREATING = "creating"
    STARTING = "starting"
    WAITING = "waiting"  # readiness without a healthcheck (delay, http)
    HEALTH = "health"  # a Docker health status change of the new container
    READY = "ready"
    SWITCHED = "switched"
    DRAINING = "draining"  # in-flight count of the old backend going down
    DRAINED = "drained"
    STABILIZING = "stabilizing"  # drained; the new container is still being watched
    STOPPING = "stopping"
    STOPPED = "stopped"
    SKIPPED = "skipped"  # the image id equals the running container's; "done" follows
    ROLLED_BACK = "rolled_back"  # the new container died after the switch; routed back
    DONE = "done"  # final
    FAILED = "failed"  # final


# The stream of every deploy ends with one of these (the admin API's contract); a
# skipped deploy ends with "done" whose data says result "skipped".
FINAL_PHASES = frozenset({Phase.DONE, Phase.FAILED})
_WARNING_PHASES = frozenset({Phase.FAILED, Phase.ROLLED_BACK})


class Outcome(enum.StrEnum):
    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class ProgressEvent:
    deploy_id: str
    domain: str
    phase: Phase
    time: float  # unix time
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """One NDJSON line of the admin API's progress stream ("event" is the phase)."""
        out: dict[str, Any] = {
            "event": self.phase.value,
            "deploy": self.deploy_id,
            "domain": self.domain,
            "time": round(self.time, 6),
            "message": self.message,
            "data": dict(self.data),
        }
        if self.phase is Phase.FAILED:
            out["error"] = str(self.data.get("error") or self.message)
        return out

    def log_line(self) -> str:
        context = " ".join(
            f"{k}={_compact(v)}" for k, v in self.data.items() if v not in (None, "")
        )
        return (
            f"deploy phase={self.phase.value} deploy={self.deploy_id} domain={self.domain}"
            + (f" {context}" if context else "")
            + (
                f" message={self.message!r}"
                if self.message and self.message != self.data.get("error")
                else ""
            )
        )


def _compact(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return repr(text) if " " in text or not text else text


@dataclass(frozen=True)
class DeployResult:
    deploy_id: str
    domain: str
    outcome: Outcome
    image: str
    error: str = ""
    container_id: str = ""
    container_name: str = ""
    started: float = 0.0  # unix time
    finished: float = 0.0
    duration: float = 0.0  # wall time of the whole deploy, queueing included
    healthy_to_switch: float | None = None  # Docker's healthy event (or readiness) -> switch
    idle_to_stop: float | None = None  # last in-flight response on the old -> old stopped
    drain: float | None = None  # the old backend's drain (None: there was no old backend)

    @property
    def ok(self) -> bool:
        return self.outcome is not Outcome.FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.deploy_id,
            "result": self.outcome.value,
            "image": self.image,
            "error": self.error,
            "container_id": self.container_id,
            "container_name": self.container_name,
            "when": self.finished,
            "started": self.started,
            "duration": round(self.duration, 3),
            "healthy_to_switch": _rounded(self.healthy_to_switch),
            "idle_to_stop": _rounded(self.idle_to_stop),
            "drain": _rounded(self.drain),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class DeployHandle:
    """Follow one deploy: replay and stream its events, await its result.

    The deployer writes through `emit()` and `finish()`; readers only read.
    """

    def __init__(self, deploy_id: str, domain: str, image: str, reason: str) -> None:
        self.id = deploy_id
        self.domain = domain
        self.image = image
        self.reason = reason
        self.created = time.time()
        self.history: list[ProgressEvent] = []
        self.cancel_scope = trio.CancelScope()  # the deploy's own scope
        self._changed = trio.Event()
        self._finished = trio.Event()
        self._result: DeployResult | None = None

    @property
    def phase(self) -> Phase | None:
        return self.history[-1].phase if self.history else None

    @property
    def result(self) -> DeployResult | None:
        return self._result

    def emit(self, phase: Phase, message: str = "", **data: Any) -> ProgressEvent:
        """Record (and log) one progress event; wakes every reader."""
        if self._finished.is_set():
            raise RuntimeError(f"deploy {self.id} already finished; cannot emit {phase}")
        event = ProgressEvent(self.id, self.domain, phase, time.time(), message, data)
        self.history.append(event)
        level = logging.WARNING if phase in _WARNING_PHASES else logging.INFO
        log.log(level, "%s", event.log_line())
        changed, self._changed = self._changed, trio.Event()
        changed.set()
        return event

    def finish(self, result: DeployResult) -> None:
        """Set the result; emits the final event (done / failed) if not yet emitted."""
        if self._finished.is_set():
            return
        if self.phase not in FINAL_PHASES:
            phase = {
                Outcome.OK: Phase.DONE,
                Outcome.SKIPPED: Phase.DONE,
                Outcome.FAILED: Phase.FAILED,
            }[result.outcome]
            self.emit(phase, result.error, **result.to_json())
        self._result = result
        self._finished.set()

    def cancel(self) -> bool:
        """Cancel the deploy if it has not switched yet (its new container is removed).

        Once traffic has switched, the deploy finishes (drain, stop the old one): returns
        False and does nothing.
        """
        if any(event.phase is Phase.SWITCHED for event in self.history):
            log.info("deploy already switched; not cancelling deploy=%s", self.id)
            return False
        self.cancel_scope.cancel()
        return True

    async def events(self) -> AsyncGenerator[ProgressEvent, None]:
        """Every event from the start, then live ones; ends after the final event."""
        sent = 0
        while True:
            while sent < len(self.history):
                event = self.history[sent]
                sent += 1
                yield event
                if event.phase in FINAL_PHASES:
                    return
            if self._finished.is_set():
                return
            await self._changed.wait()

    async def wait(self) -> DeployResult:
        await self._finished.wait()
        assert self._result is not None
        return self._result

    def __repr__(self) -> str:
        return f"DeployHandle({self.id!r}, {self.domain!r}, phase={self.phase})"
