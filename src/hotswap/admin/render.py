"""What the CLI prints: deploy progress lines, the one-line summary, the status table. No I/O.

Progress: one line per phase with the time elapsed since the deploy started.
In a terminal, repeated updates of the same phase (health checks, the in-flight
count going down while draining) redraw one line; piped, each update that says
something new is its own plain line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

TERMINAL_EVENTS = frozenset({"done", "failed"})  # the stream ends after each
# Phases whose repeated events update one line in a terminal.
REDRAWN_PHASES = frozenset({"pulling", "waiting", "health", "draining"})
ERASE_LINE = "\r\x1b[K"

_PHASE_TEXT = {
    "queued": "another deploy of this domain is running; waiting for it",
    "pulling": "pulling the image",
    "creating": "creating the new container",
    "starting": "starting the new container",
    "waiting": "waiting for the new container to be ready",
    "health": "waiting for healthy",
    "ready": "the new container is ready",
    "switched": "switched traffic to the new container",
    "draining": "draining the old container",
    "drained": "old container drained",
    "stabilizing": "watching the new container before stopping the old one",
    "stopping": "stopping the old container",
    "stopped": "old container stopped and removed",
    "skipped": "skipped",
    "rolled_back": "the new container died after the switch; routed back to the old one",
    "done": "done",
    "failed": "failed",
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    return data if isinstance(data, Mapping) else {}


def _in_flight(event: Mapping[str, Any]) -> int | None:
    data = _data(event)
    for key in ("in_flight", "inflight", "remaining"):
        value = data.get(key, event.get(key))
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def describe(event: Mapping[str, Any]) -> str:
    """The text of one progress event: the server's message, else a description of the phase."""
    phase = str(event.get("event", ""))
    message = str(event.get("message") or "").strip()
    if phase == "failed" and not message:
        message = str(event.get("error") or "")
    text = message or _PHASE_TEXT.get(phase, phase)
    count = _in_flight(event)
    if phase == "draining" and count is not None and str(count) not in text:
        text = f"{text} ({count} in flight)"
    return text


class ProgressRenderer:
    """Turns progress events into text to write; remembers how the deploy ended."""

    def __init__(self, *, tty: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.tty = tty
        self.clock = clock
        self.outcome: str | None = None  # "done", "failed" or "skipped"
        self._skipped: str | None = None  # why, when a "skipped" event came
        self.last_event: Mapping[str, Any] | None = None
        self._start: float | None = None  # event time of the first event
        self._local_start = clock()
        self._open_phase: str | None = None  # tty: the phase of the line not yet ended
        self._last_line = ""

    def elapsed(self, event: Mapping[str, Any]) -> float:
        when = _number(event.get("time"))
        if when is None:
            return self.clock() - self._local_start
        if self._start is None:
            self._start = when
        return max(0.0, when - self._start)

    def feed(self, event: Mapping[str, Any]) -> str:
        """The text to write for `event` (may be "" when it says nothing new)."""
        phase = str(event.get("event", ""))
        self.last_event = event
        if phase == "skipped":
            self._skipped = describe(event)
        if phase in TERMINAL_EVENTS:
            self.outcome = phase
            if phase == "done" and (_data(event).get("result") == "skipped" or self._skipped):
                self.outcome = "skipped"
        body = f"{phase:<9} {describe(event)}".rstrip()
        line = f"{self.elapsed(event):6.1f}s  {body}"
        if phase in TERMINAL_EVENTS:
            return self._end_line() + self.summary() + "\n"
        if not self.tty:
            if body == self._last_line:
                return ""
            self._last_line = body
            return line + "\n"
        if self._open_phase == phase and phase in REDRAWN_PHASES:
            return ERASE_LINE + line
        out = self._end_line() + line
        self._open_phase = phase
        return out

    def finish(self) -> str:
        """Text to write once the stream ended (ends a redrawn line)."""
        return self._end_line()

    def _end_line(self) -> str:
        if self._open_phase is None:
            return ""
        self._open_phase = None
        return "\n"

    def summary(self) -> str:
        """The one-line summary of how the deploy ended."""
        event = self.last_event or {}
        data = _data(event)
        domain = str(event.get("domain") or data.get("domain") or "")
        image = data.get("image") or event.get("image")
        seconds = _number(data.get("duration", event.get("duration")))
        took = f" in {seconds:.1f}s" if seconds is not None else f" in {self.elapsed(event):.1f}s"
        if self.outcome == "done":
            what = f"deployed {image} to {domain}" if image else f"deployed {domain}"
            container = data.get("container") or data.get("container_name")
            return f"✓ {what}{took}" + (f" (container {container})" if container else "")
        if self.outcome == "skipped":
            return f"= skipped {domain}: {self._skipped or describe(event)}"
        if self.outcome == "failed":
            error = str(event.get("error") or data.get("error") or describe(event))
            first, *rest = error.strip().splitlines() or [""]
            # The error may carry the last lines of the container's log: indent them.
            return f"✗ deploy of {domain} failed{took}: {first}" + "".join(
                f"\n    {line}" for line in rest
            )
        return f"? the progress stream of {domain} ended without a result"


def exit_code(outcome: str | None) -> int:
    """0 for a deploy that succeeded or was skipped, 1 otherwise."""
    return 0 if outcome in ("done", "skipped") else 1


# -- status ----------------------------------------------------------------------------


def _pick(mapping: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return value
    return None


def age(seconds: float) -> str:
    """ "12s", "5m", "3h", "2d" ago."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def last_deploy_text(last: Any, now: float) -> str:
    if not isinstance(last, Mapping):
        return "-"
    result = str(_pick(last, "result", "outcome", "state") or "?")
    when = _number(_pick(last, "when", "time", "finished", "started"))
    duration = _number(_pick(last, "duration", "seconds"))
    text = result
    if when is not None:
        text += f" {age(now - when)}"
    if duration is not None:
        text += f" ({duration:.1f}s)"
    return text


def status_rows(document: Mapping[str, Any], now: float) -> list[list[str]]:
    rows = []
    for route in document.get("routes", []):
        backend = route.get("backend") or {}
        deploy = route.get("deploy") or {}
        if route.get("kind") == "external":
            image = f"→ {backend.get('address', '?')}"
            container, state = "-", "external"
        else:
            image = str(_pick(deploy, "image") or backend.get("image") or route.get("image") or "-")
            cid = _pick(deploy, "container_id", "container") or backend.get("container_id") or ""
            container = str(cid)[:12] or "-"
            state = str(_pick(deploy, "state", "status") or ("routed" if backend else "none"))
            health = _pick(deploy, "health")
            if health and health not in ("none", state):
                state = f"{state} ({health})"
            if route.get("up") is False:
                state = "down"
            if route.get("kind") == "removed":
                state = f"removed, {state}"
        in_flight = f"{route.get('in_flight', 0)}"
        if route.get("tunnels"):
            in_flight += f" +{route['tunnels']}ws"
        last = _pick(deploy, "last_deploy", "last")
        rows.append(
            [
                str(route.get("domain", "?")),
                image,
                container,
                state,
                in_flight,
                str(deploy.get("restarts") or 0) if route.get("kind") != "external" else "-",
                str(route.get("requests", 0)),
                last_deploy_text(last, now),
            ]
        )
    return rows


STATUS_HEADERS = (
    "DOMAIN",
    "IMAGE",
    "CONTAINER",
    "STATE",
    "IN FLIGHT",
    "RESTARTS",
    "REQUESTS",
    "LAST DEPLOY",
)


def route_details(route: Mapping[str, Any]) -> list[str]:
    """The lines under a route's row: why it is down, its other names, volumes, networks."""
    deploy = route.get("deploy") or {}
    lines = []
    if route.get("up") is False and route.get("down_reason"):
        lines.append(f"down: {route['down_reason']}")
    paused = route.get("paused")
    if isinstance(paused, Mapping):
        lines.append(f"paused: new requests wait up to {paused.get('timeout', 0):g}s, then 503")
    maintenance = route.get("maintenance")
    if isinstance(maintenance, Mapping):
        message = maintenance.get("message") or "(no message)"
        retry = maintenance.get("retry_after", 0)
        lines.append(f"maintenance: 503, Retry-After {retry:g}s: {message}")
    for label, values in (
        ("names", route.get("hosts")),
        ("volumes", deploy.get("volumes")),
        ("networks", deploy.get("networks")),
    ):
        if isinstance(values, list) and values:
            lines.append(f"{label}: {', '.join(str(v) for v in values)}")
    return lines


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [list(headers), *rows]
    ]
    return "\n".join(lines) + "\n"


TLS_HEADERS = ("DOMAIN", "CERTIFICATE", "ISSUER", "NOT AFTER", "ACME")


def until(seconds: float) -> str:
    """ "in 12d", "in 5h", "expired"."""
    if seconds <= 0:
        return "expired"
    return "in " + age(seconds).removesuffix(" ago")


def _acme_text(acme: Any, now: float) -> str:
    if not isinstance(acme, Mapping):
        return "-"
    state = str(acme.get("state") or "?")
    failures = acme.get("failures")
    if state == "failed" and isinstance(failures, int):
        state = f"failed {failures}x"
    retry = _number(acme.get("next_attempt"))
    renew = _number(acme.get("renew_at"))
    if state.startswith("failed") and retry is not None:
        return f"{state}, retry {until(retry - now)}"
    if state == "valid" and renew is not None:
        return f"valid, renews {until(renew - now)}"
    return state


def tls_rows(document: Mapping[str, Any], now: float) -> tuple[list[list[str]], list[str]]:
    """(a row per route with HTTPS or ACME, the last ACME error of each domain that has one)."""
    rows: list[list[str]] = []
    errors: list[str] = []
    summary = document.get("tls")
    listening = isinstance(summary, Mapping) and bool(summary.get("listen"))
    for route in document.get("routes", []):
        tls = route.get("tls")
        if not isinstance(tls, Mapping):
            continue
        domain = str(route.get("domain", "?"))
        certificate = tls.get("certificate")
        acme = tls.get("acme")
        if tls.get("off"):
            rows.append([domain, "off (plain HTTP)", "-", "-", "-"])
            continue
        if isinstance(certificate, Mapping):
            not_after = _number(certificate.get("not_after"))
            expires = "-"
            if not_after is not None:
                stamp = time.strftime("%Y-%m-%d", time.gmtime(not_after))
                expires = f"{stamp} ({until(not_after - now)})"
            source = str(certificate.get("source") or "?")
            rows.append(
                [
                    domain,
                    source,
                    str(certificate.get("issuer") or "?"),
                    expires,
                    _acme_text(acme, now),
                ]
            )
        elif isinstance(acme, Mapping):
            rows.append([domain, "none yet", "-", "-", _acme_text(acme, now)])
        elif listening:
            rows.append([domain, "none (plain HTTP)", "-", "-", "-"])
        if isinstance(acme, Mapping) and acme.get("last_error"):
            when = _number(acme.get("last_error_at"))
            ago = f" ({age(now - when)})" if when is not None else ""
            errors.append(f"  {domain}: last ACME error{ago}: {acme['last_error']}")
    return rows, errors


def render_status(document: Mapping[str, Any], now: float | None = None) -> str:
    """The `hotswap status` table (and a line per unmanaged container, if any)."""
    now = time.time() if now is None else now
    rows = status_rows(document, now)
    if not rows:
        return "no routes configured\n"
    out = _with_details(table(STATUS_HEADERS, rows), document.get("routes", []))
    redirects = document.get("redirects")
    if isinstance(redirects, Mapping) and redirects:
        out += "\nredirects (308):\n"
        out += "".join(f"  {name} -> {origin}\n" for name, origin in redirects.items())
    certificates, errors = tls_rows(document, now)
    if certificates:
        out += "\n" + table(TLS_HEADERS, certificates)
        out += "".join(f"{line}\n" for line in errors)
    other = document.get("other") or {}
    unmanaged = other.get("unmanaged") if isinstance(other, Mapping) else None
    if isinstance(unmanaged, list) and unmanaged:
        out += "\nmanaged containers of domains not in the config (left running):\n"
        for item in unmanaged:
            if isinstance(item, Mapping):
                name = item.get("name") or item.get("id", "?")
                out += f"  {name}  {item.get('domain', '?')}  {item.get('image', '')}\n"
            else:
                out += f"  {item}\n"
    return out


def _with_details(text: str, routes: Sequence[Mapping[str, Any]]) -> str:
    """The status table with each route's detail lines under its row."""
    header, *lines = text.splitlines()
    out = [header]
    for line, route in zip(lines, routes, strict=True):
        out.append(line)
        out += [f"    {detail}" for detail in route_details(route)]
    return "\n".join(out) + "\n"
