"""The document GET /v1/status answers with, assembled from live state without I/O.

    {"version": "...", "open_connections": 3,
     "routes": [{"domain": "app.example.com", "kind": "container", "image": "myapp:latest",
                 "backend": {"name": ..., "container_id": ..., "image": ..., "address": ...},
                 "in_flight": 0, "tunnels": 0, "requests": 12, "errors": 0,
                 "client_aborts": 0, "connect_errors": 0,
                 "hosts": ["www.app.example.com"], "up": true, "down_reason": "",
                 "deploy": {...what the deployer reports for the domain: container, state,
                            health, restarts, volumes, networks, last deploy...},
                 "tls": {"https": true, "off": false, "certificate": {names, issuer,
                         not_after, source: file | acme, ...}, "acme": {state, last_error,
                         next_attempt, renew_at, ...}} or null},
                ...],
     "tls": {"listen": ..., "acme": {"directory", "email"} or null, "certificates": [...]},
     "redirects": {"old.example.com": "https://app.example.com"},
     "other": {...anything else the deployer reports, e.g. unmanaged containers...}}

A domain shows up if the config names it or the route table routes it (a
removed route still draining is listed until it is gone).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hotswap import __version__
from hotswap.config import Config
from hotswap.proxy.routes import Backend, BackendState
from hotswap.routekey import route_domain


def backend_json(backend: Backend) -> dict[str, Any]:
    return {
        "name": backend.name,
        "container_id": backend.container_id,
        "image": backend.image,
        "address": str(backend.address),
    }


def split_deployer_status(
    raw: Mapping[str, Any], domains: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(per-domain entries, everything else) of Deployer.status().

    Accepts {"domains": {domain: {...}}, ...} as well as {domain: {...}, ...}
    (then a key is a domain if it is one of `domains`).
    """
    nested = raw.get("domains")
    if isinstance(nested, Mapping):
        return dict(nested), {k: v for k, v in raw.items() if k != "domains"}
    known = set(domains)
    per_domain: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for key, value in raw.items():
        (per_domain if key in known else other)[key] = value
    return per_domain, other


def build_status(
    config: Config,
    routes: Iterable[tuple[str, Backend]],
    deployer_status: Mapping[str, Any],
    open_connections: int,
    tls: Mapping[str, Any] | None = None,
    controls: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The status document; `tls` is TlsManager.status() (None: no TLS manager),
    `controls` RouteControls.snapshot() (pause and maintenance per route)."""
    tls_domains: Mapping[str, Any] = (tls or {}).get("domains") or {}
    backends = dict(routes)
    domains = sorted(set(config.routes) | set(config.external_routes) | set(backends))
    per_domain, other = split_deployer_status(deployer_status, domains)
    entries: list[dict[str, Any]] = []
    for domain in domains:
        backend = backends.get(domain)
        if domain in config.external_routes:
            kind, image = "external", None
        elif domain in config.routes:
            kind, image = "container", config.routes[domain].image
        else:
            kind, image = "removed", None
        entry: dict[str, Any] = {
            "domain": domain,
            "kind": kind,
            "image": image,
            "backend": backend_json(backend) if backend is not None else None,
            "in_flight": backend.inflight.requests if backend else 0,
            "tunnels": backend.inflight.tunnels if backend else 0,
            "requests": backend.stats.requests if backend else 0,
            "errors": backend.stats.errors if backend else 0,
            "client_aborts": backend.stats.client_aborts if backend else 0,
            "connect_errors": backend.stats.connect_errors if backend else 0,
            "hosts": list(config.routes[domain].hosts) if domain in config.routes else [],
            "up": backend.state is BackendState.UP if backend else None,
            "down_reason": backend.down_reason if backend else "",
            "deploy": dict(per_domain.get(domain) or {}),
            "tls": tls_domains.get(route_domain(domain)),
            "paused": (controls or {}).get(domain, {}).get("paused"),
            "maintenance": (controls or {}).get(domain, {}).get("maintenance"),
        }
        entries.append(entry)
    return {
        "version": __version__,
        "open_connections": open_connections,
        "routes": entries,
        "redirects": dict(config.redirects),
        "tls": {key: value for key, value in (tls or {}).items() if key != "domains"} or None,
        "other": other,
    }


def tls_samples(tls: object) -> tuple[list[tuple[str, float]], list[tuple[str, int]]]:
    """(certificate expiry per domain, ACME failures in a row per order) for the gauges."""
    expiry = getattr(tls, "expiry_samples", None)
    failures = getattr(tls, "failure_samples", None)
    return (expiry() if expiry else [], failures() if failures else [])


def in_flight_samples(routes: Iterable[tuple[str, Backend]]) -> list[tuple[str, int, int]]:
    """(domain, requests, tunnels) per routed domain, for the metrics gauges."""
    return [(d, b.inflight.requests, b.inflight.tunnels) for d, b in routes]


def up_samples(routes: Iterable[tuple[str, Backend]]) -> list[tuple[str, bool]]:
    """(domain, its backend takes requests) per routed domain, for the metrics gauge."""
    return [(d, b.state is BackendState.UP) for d, b in routes]
