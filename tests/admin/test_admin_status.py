"""The status document: config routes, routed backends and the deployer's view, merged."""

from __future__ import annotations

from hotswap.admin.status import build_status, in_flight_samples, split_deployer_status
from hotswap.config import Address, Config, ExternalRoute, Route
from hotswap.proxy.routes import Backend, RouteTable


def test_deployer_status_is_split_into_domains_and_the_rest() -> None:
    nested = {"domains": {"a.com": {"state": "running"}}, "unmanaged": ["x"]}
    assert split_deployer_status(nested, []) == (
        {"a.com": {"state": "running"}},
        {"unmanaged": ["x"]},
    )
    flat = {"a.com": {"state": "running"}, "unmanaged": ["x"]}
    assert split_deployer_status(flat, ["a.com"]) == (nested["domains"], {"unmanaged": ["x"]})


async def test_every_configured_or_routed_domain_is_listed_with_live_counts() -> None:
    routes = RouteTable()
    backend = Backend(Address("127.0.0.1", 40001), name="c1", container_id="abc", image="app:1")
    routes.switch("a.com", backend)
    routes.switch("gone.com", Backend(Address("127.0.0.1", 40002), name="c2"))
    backend.inflight.begin_request()
    backend.inflight.begin_request()
    backend.inflight.request_to_tunnel(object())  # type: ignore[arg-type]
    backend.stats.requests = 10
    config = Config(
        routes={"a.com": Route("a.com", "app:1"), "new.com": Route("new.com", "app:2")},
        external_routes={"ext.com": ExternalRoute("ext.com", Address("127.0.0.1", 9000))},
    )
    doc = build_status(config, routes, {"a.com": {"state": "running"}}, open_connections=4)
    by_domain = {r["domain"]: r for r in doc["routes"]}
    assert list(by_domain) == ["a.com", "ext.com", "gone.com", "new.com"]
    a = by_domain["a.com"]
    assert (a["kind"], a["image"], a["in_flight"], a["tunnels"], a["requests"]) == (
        "container",
        "app:1",
        1,
        1,
        10,
    )
    assert a["backend"] == {
        "name": "c1",
        "container_id": "abc",
        "image": "app:1",
        "address": "127.0.0.1:40001",
    }
    assert a["deploy"] == {"state": "running"}
    assert by_domain["ext.com"]["kind"] == "external"
    assert by_domain["gone.com"]["kind"] == "removed"
    assert by_domain["new.com"]["backend"] is None
    assert doc["open_connections"] == 4
    assert in_flight_samples(routes) == [("a.com", 1, 1), ("gone.com", 0, 0)]


def test_each_route_carries_its_tls_status() -> None:
    config = Config(routes={"a.com": Route("a.com", "app:1")})
    tls = {
        "listen": "0.0.0.0:443",
        "acme": None,
        "certificates": [],
        "domains": {"a.com": {"https": True, "off": False, "certificate": {"source": "file"}}},
    }
    doc = build_status(config, RouteTable(), {}, open_connections=0, tls=tls)
    assert doc["routes"][0]["tls"] == tls["domains"]["a.com"]
    assert doc["tls"] == {"listen": "0.0.0.0:443", "acme": None, "certificates": []}
    without = build_status(config, RouteTable(), {}, open_connections=0)
    assert without["routes"][0]["tls"] is None
    assert without["tls"] is None


def test_a_path_route_is_listed_under_its_route_key_with_its_domains_tls() -> None:
    routes = RouteTable()
    api = Backend(Address("127.0.0.1", 40003), name="hotswap-a-com-api-1", container_id="d")
    routes.switch("a.com/api", api)
    config = Config(
        routes={
            "a.com": Route("a.com", "app:1", hosts=("www.a.com",)),
            "a.com/api": Route("a.com/api", "api:1", strip_prefix=True),
        }
    )
    tls = {"domains": {"a.com": {"https": True, "off": False, "certificate": None}}}
    doc = build_status(config, routes, {}, open_connections=0, tls=tls)
    entry = {r["domain"]: r for r in doc["routes"]}["a.com/api"]
    assert (entry["kind"], entry["image"], entry["hosts"]) == ("container", "api:1", [])
    assert entry["backend"]["name"] == "hotswap-a-com-api-1"
    assert entry["tls"] == tls["domains"]["a.com"]
    assert in_flight_samples(routes) == [("a.com/api", 0, 0)]
