"""The route table: domain -> Backend. A switch is one assignment.

`acquire()` resolves a route and counts the request in flight on the backend in
one synchronous step, with no checkpoint in between, so no request can slip
past a drain that starts right after a switch.

A request's host resolves, in this order (issue 11):
    1. a route's domain (its key)
    2. an exact extra name: a route's `hosts` entry, or a [redirects] key
    3. a wildcard "*.example.com", which matches exactly one more label (like a TLS
       wildcard certificate and Caddy; nginx's "*.example.com" would also take
       "a.b.example.com"): the host minus its first label is looked up
A name resolving to a redirect gives a Redirect; a route whose backend is down (its
container exited and is not running again yet) gives Unavailable, not counted in
flight: the proxy answers 502 at once instead of trying to connect.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import trio

from hotswap.config import Address
from hotswap.proxy.inflight import InFlight
from hotswap.proxy.upstream import UpstreamPool


@dataclasses.dataclass
class BackendStats:
    """Counters of one backend (read by status and metrics)."""

    requests: int = 0  # exchanges started on this backend
    errors: int = 0  # exchanges that failed because of the backend (502/504, broken body)
    client_aborts: int = 0  # the client went away mid-exchange (logged as 499)
    connect_errors: int = 0  # subset of errors: could not connect


WILDCARD_PREFIX: Final = "*."


class BackendState(enum.StrEnum):
    UP = "up"
    DOWN = "down"  # its container is not running: answer 502 at once


class Backend:
    """One upstream address (a container or an external route) and its state."""

    def __init__(
        self,
        address: Address,
        *,
        name: str,
        container_id: str | None = None,
        image: str | None = None,
    ) -> None:
        self.address = address
        self.name = name
        self.container_id = container_id
        self.image = image
        self.inflight = InFlight()
        self.stats = BackendStats()
        self.pool = UpstreamPool(address)
        self.route = ""  # the route key it serves; set by RouteTable.switch()
        self.state = BackendState.UP
        self.down_reason = ""  # why it is down, for status and the log

    def close(self) -> None:
        """Retire this backend: close its idle upstream connections at once.

        Connections in use finish their exchange and are then closed instead of
        being returned to the pool.
        """
        self.pool.close()

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, {self.address})"


@dataclasses.dataclass(frozen=True, slots=True)
class Redirect:
    """A name of [redirects]: answer 308 to `origin`, the request's path and query kept."""

    name: str  # the [redirects] key (exact or wildcard)
    origin: str  # "https://app.example.com"


@dataclasses.dataclass(frozen=True, slots=True)
class Unavailable:
    """The route's backend is down (Backend.down_reason says why): 502 at once."""

    backend: Backend


Target = str | Redirect  # what an extra name resolves to: a route key, or a redirect


class RouteTable:
    """domain -> Backend, looked up for every request; extra names and redirects."""

    def __init__(self) -> None:
        self._routes: dict[str, Backend] = {}
        self._names: dict[str, Target] = {}  # exact extra name -> target
        self._wildcards: dict[str, Target] = {}  # "example.com" of "*.example.com" -> target
        self._changed = trio.Event()

    def get(self, domain: str) -> Backend | None:
        return self._routes.get(domain)

    def set_names(self, hosts: Mapping[str, Iterable[str]], redirects: Mapping[str, str]) -> None:
        """Replace the extra names: `hosts` maps every route key to its names, `redirects` a
        name to an origin. Names are normalised and unique (the config loader checks).

        A route key is an exact name of its own route, so a wildcard never takes it while
        the route has no backend (before its first deploy, after a failed one)."""
        names: dict[str, Target] = {}
        wildcards: dict[str, Target] = {}
        entries: list[tuple[str, Target]] = [(domain, domain) for domain in hosts]
        entries += [(name, domain) for domain, route_names in hosts.items() for name in route_names]
        entries += [(name, Redirect(name, origin)) for name, origin in redirects.items()]
        for name, target in entries:
            if name.startswith(WILDCARD_PREFIX):
                wildcards[name[len(WILDCARD_PREFIX) :]] = target
            else:
                names[name] = target
        self._names, self._wildcards = names, wildcards
        self._notify()

    def resolve(self, host: str) -> tuple[str, Backend | None] | Redirect | None:
        """(route key, its backend or None) or a Redirect for `host`; None if no name fits.

        Counts nothing: for status, logs and tests. The proxy calls acquire().
        """
        if host in self._routes:
            return host, self._routes[host]
        target = self._names.get(host)
        if target is None:
            target = self._wildcards.get(host.partition(".")[2])
        if target is None or isinstance(target, Redirect):
            return target
        return target, self._routes.get(target)

    def acquire(self, host: str) -> Backend | Redirect | Unavailable | None:
        """Resolve `host` and count one request in flight on its backend.

        Synchronous on purpose: between the lookup and the count there is no
        checkpoint, so a concurrent switch + drain either sees this request on
        the old backend or the request goes to the new one. A Redirect, an
        Unavailable (backend down) or None (no route) counts nothing.
        """
        backend = self._routes.get(host)
        if backend is None:  # not a route's domain: an extra name, a wildcard, a redirect
            target = self._names.get(host)
            if target is None:
                target = self._wildcards.get(host.partition(".")[2])
                if target is None:
                    return None
            if type(target) is Redirect:
                return target
            backend = self._routes.get(target)  # type: ignore[arg-type]
            if backend is None:
                return None
        if backend.state is BackendState.DOWN:
            return Unavailable(backend)
        backend.inflight.begin_request()
        backend.stats.requests += 1
        return backend

    def switch(self, domain: str, backend: Backend) -> Backend | None:
        """Route `domain` to `backend` from now on; return the previous backend."""
        previous = self._routes.get(domain)
        backend.route = domain
        self._routes[domain] = backend
        self._notify()
        return previous

    def replace(self, domain: str, old: Backend, new: Backend) -> bool:
        """Switch `domain` to `new` only if it still routes to `old` (no checkpoint between
        the check and the switch); True if it did. For the restart watch: a late event of a
        container must never route a domain back to it after a deploy switched away."""
        if self._routes.get(domain) is not old:
            return False
        self.switch(domain, new)
        return True

    def mark_down(self, backend: Backend, reason: str) -> None:
        """Requests for `backend` get 502 at once (`reason`) until mark_up()."""
        backend.state = BackendState.DOWN
        backend.down_reason = reason
        self._notify()

    def mark_up(self, backend: Backend) -> None:
        backend.state = BackendState.UP
        backend.down_reason = ""
        self._notify()

    def remove(self, domain: str) -> Backend | None:
        backend = self._routes.pop(domain, None)
        self._notify()
        return backend

    def serving(self, container_id: str) -> list[tuple[str, Backend]]:
        """The routes whose current backend is the container `container_id`."""
        return [(d, b) for d, b in self._routes.items() if b.container_id == container_id]

    def next_change(self) -> trio.Event:
        """An Event set at the next switch, removal, state change or names update (take it
        before looking at the table, and no change can slip by unseen)."""
        return self._changed

    async def wait_changed(self) -> None:
        """Return at the next switch, removal, state change or names update."""
        await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    def domains(self) -> list[str]:
        return sorted(self._routes)

    def __iter__(self) -> Iterator[tuple[str, Backend]]:
        return iter(sorted(self._routes.items()))

    def __len__(self) -> int:
        return len(self._routes)
