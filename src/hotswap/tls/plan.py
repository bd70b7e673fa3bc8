"""What the config asks of TLS: certificates to serve, names switched off, orders for ACME.

No I/O: `plan_tls(config)` is recomputed at start-up and at every reload and
the manager acts on the difference.

- Every route (managed or external) is a domain to serve over HTTPS, with its
  extra names when the route has them, unless its `tls` is "off": then its
  names are switched off (no certificate is chosen for them, no redirect).
- A name covered by a certificate file from [tls] needs nothing more.
- Any other name of an "auto" route gets a certificate from ACME, when ACME is
  on: tls.acme.email set and an HTTPS listener configured. One order per domain,
  named after it, not per route key: "example.com" and its path routes
  ("example.com/api") share one; wildcards are skipped (HTTP-01 cannot prove
  them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hotswap.config import Config, TlsMode
from hotswap.config_values import relative_to_config
from hotswap.routekey import is_path_route, route_domain
from hotswap.tls.acme_client import AcmeSettings
from hotswap.tls.certificate import Certificate
from hotswap.tls.names import is_wildcard, normalize_name


@dataclass(frozen=True)
class CertificateOrder:
    """A certificate ACME should keep valid: `name` keys it (file, status), `names` are its SANs."""

    name: str
    names: tuple[str, ...]


@dataclass(frozen=True)
class TlsPlan:
    static: tuple[Certificate, ...] = ()
    disabled: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # every host a route serves, for status and metrics
    orders: Mapping[str, CertificateOrder] = field(default_factory=dict)
    acme: AcmeSettings | None = None  # None: ACME is off
    renew_before: float = 30 * 86_400.0


def route_names(domain: str, route: object) -> tuple[str, ...]:
    """The host names of a route: the domain (without a path prefix) and its extra names."""
    host = normalize_name(route_domain(domain))
    # Only a Route has extra names (`hosts`); an external route or a redirect has none.
    extra = tuple(normalize_name(name) for name in getattr(route, "hosts", ()) or ())
    return (host, *(name for name in extra if name != host))


def plan_tls(config: Config) -> TlsPlan:
    tls = config.tls
    static = tuple(files.certificate for files in tls.certificates if files.certificate is not None)
    acme: AcmeSettings | None = None
    if tls.listen is not None and tls.acme.enabled:
        bundle = (
            str(relative_to_config(config.path, tls.acme.ca_bundle)) if tls.acme.ca_bundle else ""
        )
        acme = AcmeSettings(tls.acme.directory, tls.acme.email, bundle)
    disabled: set[str] = set()
    domains: list[str] = []
    orders: dict[str, CertificateOrder] = {}
    routes: list[tuple[str, object, TlsMode]] = [
        (domain, route, route.tls) for domain, route in config.routes.items()
    ]
    routes += [(domain, route, TlsMode.AUTO) for domain, route in config.external_routes.items()]
    # A [redirects] name answers over HTTPS too (https://old.example.com must redirect).
    routes += [(name, None, TlsMode.AUTO) for name in config.redirects]
    # Plain routes first: a domain's order carries its route's extra names; its path
    # routes (same domain, no names of their own) add nothing to it.
    for domain, route, mode in sorted(routes, key=lambda entry: is_path_route(entry[0])):
        names = route_names(domain, route)
        domains.extend(name for name in names if name not in domains)
        if mode is TlsMode.OFF:
            disabled.update(names)
            continue
        wanted = tuple(
            name
            for name in names
            if not is_wildcard(name) and not any(c.covers(name) for c in static)
        )
        if acme is not None and wanted and wanted[0] not in orders:
            orders[wanted[0]] = CertificateOrder(wanted[0], wanted)
    return TlsPlan(
        static=static,
        disabled=frozenset(disabled),
        domains=tuple(domains),
        orders=orders,
        acme=acme,
        renew_before=tls.acme.renew_before,
    )
