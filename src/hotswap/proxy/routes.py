"""The route table: route key -> Backend. A switch is one synchronous step.

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

Path routes (issue 12): a domain with routes like "example.com/api" resolves by the
request's path too (http/paths.py: the longest prefix on a segment boundary, else
the domain's plain route), and so do its extra names. Only routes that have a
backend take part: a path route before its first deploy, or after a failed one,
leaves its paths to the shorter prefixes and the plain route, so adding a path
route to a running site moves its paths over at the deploy's switch, in one step.
The common case stays one dict probe: a domain without path routes is looked up in
`_hosts` exactly as before; only a miss goes on to path tables, names and wildcards.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import trio

from hotswap.config import Address
from hotswap.config_apps import WILDCARD_PREFIX
from hotswap.http.paths import AmbiguousPath, PathTable
from hotswap.proxy.inflight import InFlight
from hotswap.proxy.upstream import UpstreamPool
from hotswap.routekey import split_route_key


@dataclasses.dataclass
class BackendStats:
    """Counters of one backend (read by status and metrics)."""

    requests: int = 0  # exchanges started on this backend
    errors: int = 0  # exchanges that failed because of the backend (502/504, broken body)
    client_aborts: int = 0  # the client went away mid-exchange (logged as 499)
    connect_errors: int = 0  # subset of errors: could not connect


class BackendState(enum.StrEnum):
    UP = "up"
    DOWN = "down"  # its container is not running: answer 502 at once


# BackendState.DOWN read on the hot path: a module constant costs a dict probe, the
# enum's class attribute ~100 ns more (EnumType's member lookup, CPython 3.11).
_DOWN: Final = BackendState.DOWN


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
        # The path prefix its requests lose upstream (strip_prefix); b"" = none. Set by
        # RouteTable.switch() and set_strip_prefixes().
        self.strip_prefix = b""
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


@dataclasses.dataclass(frozen=True, slots=True)
class Refused:
    """The request cannot be routed safely (an ambiguous path): 400 with `detail`."""

    detail: str


Target = str | Redirect  # what an extra name resolves to: a route's domain, or a redirect
Found = Backend | Redirect | Unavailable | Refused | None  # what acquire() gives


class RouteTable:
    """route key -> Backend, looked up for every request; paths, extra names, redirects."""

    def __init__(self) -> None:
        self._routes: dict[str, Backend] = {}  # every route key that has a backend
        # How a domain resolves, rebuilt by _index() at each switch / removal of its routes:
        # a domain without path routes -> its backend; with path routes -> their table.
        self._hosts: dict[str, Backend] = {}
        self._paths: dict[str, PathTable[Backend]] = {}
        self._path_routes: dict[str, dict[str, Backend]] = {}  # domain -> path -> backend
        self._names: dict[str, Target] = {}  # exact extra name -> target
        self._wildcards: dict[str, Target] = {}  # "example.com" of "*.example.com" -> target
        self._strip: dict[str, bytes] = {}  # route key -> the prefix its requests lose
        self._changed = trio.Event()

    def get(self, domain: str) -> Backend | None:
        return self._routes.get(domain)

    def set_names(self, hosts: Mapping[str, Iterable[str]], redirects: Mapping[str, str]) -> None:
        """Replace the extra names: `hosts` maps every route key to its names, `redirects` a
        name to an origin. Names are normalised and unique (the config loader checks).

        A route's domain is an exact name of its own, so a wildcard never takes it while
        the route has no backend (before its first deploy, after a failed one); a name
        leads to a domain, whose path routes then apply as they do to the domain itself."""
        names: dict[str, Target] = {}
        wildcards: dict[str, Target] = {}
        entries: list[tuple[str, Target]] = []
        for key, route_names in hosts.items():
            domain = split_route_key(key)[0]
            entries.append((domain, domain))
            entries += [(name, domain) for name in route_names]
        entries += [(name, Redirect(name, origin)) for name, origin in redirects.items()]
        for name, target in entries:
            if name.startswith(WILDCARD_PREFIX):
                wildcards[name[len(WILDCARD_PREFIX) :]] = target
            else:
                names[name] = target
        self._names, self._wildcards = names, wildcards
        self._notify()

    def set_strip_prefixes(self, keys: Iterable[str]) -> None:
        """The path routes whose prefix is removed from the target sent upstream
        (strip_prefix = true); every other route's requests keep their path."""
        self._strip = {key: split_route_key(key)[1].encode("ascii") for key in keys}
        for key, backend in self._routes.items():
            backend.strip_prefix = self._strip.get(key, b"")

    def resolve(
        self, host: str, target: bytes = b"/"
    ) -> tuple[str, Backend | None] | Redirect | None:
        """(route key, its backend or None) or a Redirect for `host` and request target
        `target`; None if no name fits. An ambiguous path resolves to (domain, None).

        Counts nothing: for status, logs and tests. The proxy calls acquire().
        """
        domain = host
        if host not in self._hosts and host not in self._paths:
            target_of = self._names.get(host)
            if target_of is None:
                target_of = self._wildcards.get(host.partition(".")[2])
            if target_of is None or isinstance(target_of, Redirect):
                return target_of
            domain = target_of
        backend = self._hosts.get(domain)
        paths = self._paths.get(domain)
        if backend is None and paths is not None:
            try:
                backend = paths.match(target)
            except AmbiguousPath:
                backend = None
        return (backend.route if backend is not None else domain), backend

    def acquire(self, host: str, target: bytes) -> Found:
        """Resolve `host` and request target `target`, count one request in flight on
        its backend.

        Synchronous on purpose: between the lookup and the count there is no
        checkpoint, so a concurrent switch + drain either sees this request on
        the old backend or the request goes to the new one. A Redirect, an
        Unavailable (backend down), a Refused (ambiguous path) or None (no route)
        counts nothing.
        """
        backend = self._hosts.get(host)
        if backend is None:  # path routes, an extra name, a wildcard, a redirect, nothing
            found = self._find(host, target)
            if type(found) is not Backend:
                return found
            backend = found
        if backend.state is _DOWN:
            return Unavailable(backend)
        backend.inflight.begin_request()
        backend.stats.requests += 1
        return backend

    def _find(self, host: str, target: bytes) -> Found:
        """acquire()'s lookup past the first probe, counting nothing."""
        paths = self._paths.get(host)
        if paths is None:
            domain = self._names.get(host)
            if domain is None:
                domain = self._wildcards.get(host.partition(".")[2])
                if domain is None:
                    return None
            if type(domain) is Redirect:
                return domain
            backend = self._hosts.get(domain)  # type: ignore[arg-type]
            if backend is not None:
                return backend
            paths = self._paths.get(domain)  # type: ignore[arg-type]
            if paths is None:
                return None
        try:
            return paths.match(target)
        except AmbiguousPath as exc:
            return Refused(str(exc))

    def switch(self, domain: str, backend: Backend) -> Backend | None:
        """Route `domain` to `backend` from now on; return the previous backend."""
        previous = self._routes.get(domain)
        backend.route = domain
        backend.strip_prefix = self._strip.get(domain, b"")
        self._routes[domain] = backend
        self._index(domain, backend)
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
        self._index(domain, None)
        self._notify()
        return backend

    def _index(self, key: str, backend: Backend | None) -> None:
        """Route key `key` now goes to `backend` (None: removed): rebuild how its domain
        resolves. Synchronous, like the switch it is part of."""
        domain, path = split_route_key(key)
        if path:
            routes = self._path_routes.setdefault(domain, {})
            if backend is None:
                routes.pop(path, None)
            else:
                routes[path] = backend
            if not routes:
                del self._path_routes[domain]
        paths = self._path_routes.get(domain)
        plain = self._routes.get(domain)
        if paths:
            self._paths[domain] = PathTable(paths, plain)
            self._hosts.pop(domain, None)
            return
        self._paths.pop(domain, None)
        if plain is None:
            self._hosts.pop(domain, None)
        else:
            self._hosts[domain] = plain

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
