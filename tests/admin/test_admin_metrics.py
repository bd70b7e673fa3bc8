"""Prometheus exposition: every metric the operations issue lists, with the right labels."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from hotswap.metrics import NO_ROUTE, Metrics, parse_samples, status_class


def families(text: bytes) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text.decode())}


def test_status_classes() -> None:
    assert [status_class(s) for s in (101, 200, 204, 302, 404, 499, 502, 600)] == [
        "1xx",
        "2xx",
        "2xx",
        "3xx",
        "4xx",
        "4xx",
        "5xx",
        "other",
    ]


def test_requests_are_counted_by_domain_and_status_class() -> None:
    m = Metrics()
    for status in (200, 201, 404, 502):
        m.observe_request("a.com", status, 0.02)
    m.observe_request("b.com", 200, 0.5)
    s = parse_samples(m.render().decode())
    assert s['hotswap_http_requests_total{domain="a.com",status_class="2xx"}'] == 2
    assert s['hotswap_http_requests_total{domain="a.com",status_class="4xx"}'] == 1
    assert s['hotswap_http_requests_total{domain="a.com",status_class="5xx"}'] == 1
    assert s['hotswap_http_requests_total{domain="b.com",status_class="2xx"}'] == 1


def test_request_durations_fill_a_histogram_per_domain() -> None:
    m = Metrics()
    m.observe_request("a.com", 200, 0.02)
    m.observe_request("a.com", 200, 3.0)
    s = parse_samples(m.render().decode())
    assert s['hotswap_http_request_duration_seconds_count{domain="a.com"}'] == 2
    assert s['hotswap_http_request_duration_seconds_bucket{domain="a.com",le="0.025"}'] == 1
    assert s['hotswap_http_request_duration_seconds_bucket{domain="a.com",le="+Inf"}'] == 2


def test_requests_without_a_route_share_one_label_value() -> None:
    m = Metrics()
    m.observe_request(None, 421, 0.001)
    m.observe_request(None, 404, 0.001)
    s = parse_samples(m.render().decode())
    assert s[f'hotswap_http_requests_total{{domain="{NO_ROUTE}",status_class="4xx"}}'] == 2


def test_connect_errors_are_counted_per_domain() -> None:
    m = Metrics()
    m.observe_request("a.com", 502, 0.1, connect_error=True)
    m.observe_request("a.com", 502, 0.1)
    s = parse_samples(m.render().decode())
    assert s['hotswap_upstream_connect_errors_total{domain="a.com"}'] == 1


def test_in_flight_and_open_connections_are_read_at_scrape_time() -> None:
    m = Metrics()
    s = parse_samples(m.render([("a.com", 3, 1), ("b.com", 0, 0)], open_connections=7).decode())
    assert s['hotswap_requests_in_flight{domain="a.com"}'] == 3
    assert s['hotswap_tunnels_open{domain="a.com"}'] == 1
    assert s['hotswap_requests_in_flight{domain="b.com"}'] == 0
    assert s["hotswap_open_client_connections"] == 7
    s = parse_samples(m.render([("b.com", 2, 0)], open_connections=0).decode())
    assert 'hotswap_requests_in_flight{domain="a.com"}' not in s  # route removed
    assert s['hotswap_requests_in_flight{domain="b.com"}'] == 2


def test_deploys_by_result_and_deploy_and_drain_durations() -> None:
    m = Metrics()
    m.observe_deploy("a.com", "ok", 12.0)
    m.observe_deploy("a.com", "failed", 3.0)
    m.observe_deploy("a.com", "ok", 8.0)
    m.observe_drain(0.4)
    s = parse_samples(m.render().decode())
    assert s['hotswap_deploys_total{domain="a.com",result="ok"}'] == 2
    assert s['hotswap_deploys_total{domain="a.com",result="failed"}'] == 1
    assert s['hotswap_deploy_duration_seconds_count{result="ok"}'] == 2
    assert s['hotswap_deploy_duration_seconds_sum{result="ok"}'] == 20.0
    assert s["hotswap_drain_duration_seconds_count"] == 1


def test_the_exposition_parses_with_the_declared_types() -> None:
    m = Metrics()
    m.observe_request("a.com", 200, 0.01)
    m.observe_deploy("a.com", "ok", 1.0)
    types = families(m.render([("a.com", 0, 0)], 1))
    assert types["hotswap_http_requests"] == "counter"
    assert types["hotswap_http_request_duration_seconds"] == "histogram"
    assert types["hotswap_requests_in_flight"] == "gauge"
    assert types["hotswap_open_client_connections"] == "gauge"
    assert types["hotswap_upstream_connect_errors"] == "counter"
    assert types["hotswap_deploys"] == "counter"
    assert types["hotswap_deploy_duration_seconds"] == "histogram"
    assert types["hotswap_drain_duration_seconds"] == "histogram"
    assert types["hotswap_build_info"] == "gauge"
    assert not any(name.endswith("_created") for name in types)


def test_two_metrics_objects_do_not_share_counters() -> None:
    a, b = Metrics(), Metrics()
    a.observe_request("a.com", 200, 0.01)
    assert 'hotswap_http_requests_total{domain="a.com",status_class="2xx"}' not in parse_samples(
        b.render().decode()
    )


def test_certificate_expiry_and_acme_failures_are_gauges_per_domain() -> None:
    m = Metrics()
    text = m.render(
        tls_expiry=[("a.com", 1_900_000_000.0), ("b.com", 1_800_000_000.0)],
        acme_failures=[("b.com", 3)],
    )
    s = parse_samples(text.decode())
    assert s['hotswap_tls_certificate_expiry_timestamp_seconds{domain="a.com"}'] == 1.9e9
    assert s['hotswap_tls_acme_failures{domain="b.com"}'] == 3
    assert families(text)["hotswap_tls_certificate_expiry_timestamp_seconds"] == "gauge"
    s = parse_samples(m.render(tls_expiry=[("b.com", 1_800_000_000.0)]).decode())
    assert 'hotswap_tls_certificate_expiry_timestamp_seconds{domain="a.com"}' not in s
    assert 'hotswap_tls_acme_failures{domain="b.com"}' not in s


def test_failed_handshakes_are_counted_by_reason() -> None:
    m = Metrics()
    m.observe_tls_handshake_failure("unknown_name")
    m.observe_tls_handshake_failure("unknown_name")
    m.observe_tls_handshake_failure("plain_http")
    s = parse_samples(m.render().decode())
    assert s['hotswap_tls_handshake_failures_total{reason="unknown_name"}'] == 2
    assert s['hotswap_tls_handshake_failures_total{reason="plain_http"}'] == 1
