"""Prometheus metrics: counters the proxy and the deployer feed, gauges read at scrape time.

prometheus_client does the exposition format. Its metrics are plain objects
guarded by a threading.Lock held for a few instructions, so recording from the
Trio thread never blocks on I/O. Each Metrics owns its own registry (tests and
a second App in one process never share counters).

Hot path: `observe_request` is called once per request by the proxy. The request
metrics are plain integers in a `_RouteSeries` per domain (a dict look-up, a
bisect and four additions, no lock: everything runs on the Trio thread), turned
into Prometheus families only when /metrics is scraped (`_RequestCollector`);
prometheus_client's own objects took a lock per update and were 3 % of the CPU
per proxied request. In-flight counts and open connections are not counted
twice: they are read from the route table and the proxy when /metrics is
scraped (`render`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from hotswap import __version__

# The "<name>_created" timestamp series only double the output; Prometheus ignores them.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # "text/plain; version=0.0.4; charset=utf-8"

NO_ROUTE = "-"  # domain label of requests that matched no route (keeps label values bounded)

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DEPLOY_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
DRAIN_BUCKETS = (0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def status_class(status: int) -> str:
    """ "2xx" for 200..299 and so on; anything outside 100..599 is "other"."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class _RouteSeries:
    """The request metrics of one domain label, as plain numbers."""

    __slots__ = ("buckets", "by_class", "connect_errors", "total")

    def __init__(self) -> None:
        self.by_class: dict[int, int] = {}  # status // 100 -> requests
        self.buckets = [0] * (len(REQUEST_BUCKETS) + 1)  # per bucket, not cumulative
        self.total = 0.0  # seconds
        self.connect_errors = 0


class _RequestCollector(Collector):
    """Turns the _RouteSeries into Prometheus families at scrape time."""

    def __init__(self, series: dict[str, _RouteSeries]) -> None:
        self._series = series

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "hotswap_http_requests",
            "Requests answered by the proxy, by domain and status class.",
            labels=["domain", "status_class"],
        )
        durations = HistogramMetricFamily(
            "hotswap_http_request_duration_seconds",
            "Time from the request head to the last byte of the response, by domain.",
            labels=["domain"],
        )
        connect_errors = CounterMetricFamily(
            "hotswap_upstream_connect_errors",
            "Connections to a backend that failed or timed out, by domain.",
            labels=["domain"],
        )
        for domain, series in sorted(self._series.items()):
            for hundreds, count in sorted(series.by_class.items()):
                requests.add_metric([domain, status_class(hundreds * 100)], count)
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*REQUEST_BUCKETS, float("inf")), series.buckets, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            durations.add_metric([domain], buckets, series.total)
            if series.connect_errors:
                connect_errors.add_metric([domain], series.connect_errors)
        yield requests
        yield durations
        yield connect_errors


class Metrics:
    """Every metric hotswap exports, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._series: dict[str, _RouteSeries] = {}
        r.register(_RequestCollector(self._series))
        self.in_flight = Gauge(
            "hotswap_requests_in_flight",
            "Requests in flight on the current backend of each domain.",
            ["domain"],
            registry=r,
        )
        self.tunnels = Gauge(
            "hotswap_tunnels_open",
            "Upgraded (WebSocket) connections open on the current backend of each domain.",
            ["domain"],
            registry=r,
        )
        self.open_connections = Gauge(
            "hotswap_open_client_connections",
            "Client connections open on the proxy listener.",
            registry=r,
        )
        self.deploys = Counter(
            "hotswap_deploys",
            "Deploys finished, by domain and result (ok, failed, skipped).",
            ["domain", "result"],
            registry=r,
        )
        self.deploy_duration = Histogram(
            "hotswap_deploy_duration_seconds",
            "Duration of finished deploys, from start to the old container removed.",
            ["result"],
            buckets=DEPLOY_BUCKETS,
            registry=r,
        )
        self.drain_duration = Histogram(
            "hotswap_drain_duration_seconds",
            "Time from the switch until the old container had nothing in flight (or gave up).",
            buckets=DRAIN_BUCKETS,
            registry=r,
        )
        self.container_restarts = Counter(
            "hotswap_container_restarts",
            "Times a route's container ran again after it exited (Docker's restart policy), "
            "by domain.",
            ["domain"],
            registry=r,
        )
        self.backend_up = Gauge(
            "hotswap_backend_up",
            "1 while the current backend of each domain takes requests, 0 while its container "
            "is down (requests get 502 at once).",
            ["domain"],
            registry=r,
        )
        self.tls_expiry = Gauge(
            "hotswap_tls_certificate_expiry_timestamp_seconds",
            "Not-after time (Unix seconds) of the certificate each domain is served with.",
            ["domain"],
            registry=r,
        )
        self.acme_failures = Gauge(
            "hotswap_tls_acme_failures",
            "Failed ACME orders in a row for a certificate (0 once one succeeds).",
            ["domain"],
            registry=r,
        )
        self.handshake_failures = Counter(
            "hotswap_tls_handshake_failures",
            "TLS handshakes that failed, by reason (closed, plain_http, unknown_name, protocol).",
            ["reason"],
            registry=r,
        )
        info = Gauge("hotswap_build_info", "Always 1; the version label.", ["version"], registry=r)
        info.labels(version=__version__).set(1)
        self._domains_of: dict[str, set[str]] = {}  # per-domain gauge -> the domains it reports

    # -- recording (hot path and deployer) -------------------------------------------

    def observe_request(
        self, domain: str | None, status: int, duration: float, connect_error: bool = False
    ) -> None:
        """Record one finished exchange. `domain` is the route's key, None if none matched.

        `connect_error`: the backend could not be reached (the proxy answered 502/504).
        """
        label = domain if domain is not None else NO_ROUTE
        series = self._series.get(label)
        if series is None:
            series = self._series[label] = _RouteSeries()
        hundreds = status // 100 if 100 <= status <= 599 else 0
        by_class = series.by_class
        by_class[hundreds] = by_class.get(hundreds, 0) + 1
        series.buckets[bisect_left(REQUEST_BUCKETS, duration)] += 1
        series.total += duration
        if connect_error:
            series.connect_errors += 1

    def observe_deploy(self, domain: str, result: str, duration: float) -> None:
        """Record a finished deploy; `result` is DeployResult.outcome: ok, failed, skipped."""
        self.deploys.labels(domain=domain, result=result).inc()
        self.deploy_duration.labels(result=result).observe(duration)

    def observe_restart(self, domain: str) -> None:
        """Record that `domain`'s container runs again after it exited."""
        self.container_restarts.labels(domain=domain).inc()

    def observe_drain(self, duration: float) -> None:
        """Record how long the old container took to drain after a switch."""
        self.drain_duration.observe(duration)

    def observe_tls_handshake_failure(self, reason: str) -> None:
        """Record a failed TLS handshake; `reason` is tls.FailureReason (a bounded set)."""
        self.handshake_failures.labels(reason=reason).inc()

    # -- exposition --------------------------------------------------------------------

    def render(
        self,
        in_flight: Iterable[tuple[str, int, int]] = (),
        open_connections: int = 0,
        up: Iterable[tuple[str, bool]] = (),
        *,
        tls_expiry: Iterable[tuple[str, float]] = (),
        acme_failures: Iterable[tuple[str, int]] = (),
    ) -> bytes:
        """The text exposition, after setting the live gauges.

        `in_flight`: (domain, requests, tunnels) for each routed domain right now;
        `up`: (domain, whether its backend takes requests) for each routed domain.
        `tls_expiry`: (domain, not-after Unix time); `acme_failures`: (domain, count).
        """
        self._set_by_domain("tls_expiry", self.tls_expiry, tls_expiry)
        self._set_by_domain("acme_failures", self.acme_failures, acme_failures)
        counts = list(in_flight)
        self._set_by_domain("in_flight", self.in_flight, ((d, r) for d, r, _ in counts))
        self._set_by_domain("tunnels", self.tunnels, ((d, t) for d, _, t in counts))
        self._set_by_domain("backend_up", self.backend_up, ((d, int(u)) for d, u in up))
        self.open_connections.set(open_connections)
        return generate_latest(self.registry)

    def _set_by_domain(self, name: str, gauge: Gauge, samples: Iterable[tuple[str, float]]) -> None:
        """Set one child per domain; domains no longer sampled (a removed route) stop
        being reported."""
        seen: set[str] = set()
        for domain, value in samples:
            gauge.labels(domain=domain).set(value)
            seen.add(domain)
        for gone in self._domains_of.get(name, set()) - seen:
            gauge.remove(gone)
        self._domains_of[name] = seen


def parse_samples(text: str) -> Mapping[str, float]:
    """`name{labels}` -> value for every sample line of an exposition (for tests and checks)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        samples[name] = float(value)
    return samples
