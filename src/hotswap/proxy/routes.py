"""The route table: domain -> Backend. A switch is one assignment.

`acquire()` resolves a route and counts the request in flight on the backend in
one synchronous step, with no checkpoint in between, so no request can slip
past a drain that starts right after a switch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

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

    def close(self) -> None:
        """Retire this backend: close its idle upstream connections at once.

        Connections in use finish their exchange and are then closed instead of
        being returned to the pool.
        """
        self.pool.close()

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, {self.address})"


class RouteTable:
    """domain -> Backend, looked up for every request."""

    def __init__(self) -> None:
        self._routes: dict[str, Backend] = {}

    def get(self, domain: str) -> Backend | None:
        return self._routes.get(domain)

    def acquire(self, domain: str) -> Backend | None:
        """Resolve `domain` and count one request in flight on its backend.

        Synchronous on purpose: between the lookup and the count there is no
        checkpoint, so a concurrent switch + drain either sees this request on
        the old backend or the request goes to the new one.
        """
        backend = self._routes.get(domain)
        if backend is not None:
            backend.inflight.begin_request()
            backend.stats.requests += 1
        return backend

    def switch(self, domain: str, backend: Backend) -> Backend | None:
        """Route `domain` to `backend` from now on; return the previous backend."""
        previous = self._routes.get(domain)
        self._routes[domain] = backend
        return previous

    def remove(self, domain: str) -> Backend | None:
        return self._routes.pop(domain, None)

    def domains(self) -> list[str]:
        return sorted(self._routes)

    def __iter__(self) -> Iterator[tuple[str, Backend]]:
        return iter(sorted(self._routes.items()))

    def __len__(self) -> int:
        return len(self._routes)
