"""RouteTable: how a host resolves (domain, extra name, wildcard, redirect), down backends,
and the compare-and-switch the restart watch relies on. No sockets."""

from __future__ import annotations

import trio
import trio.testing

from hotswap.config import Address
from hotswap.proxy.routes import Backend, BackendState, Redirect, RouteTable, Unavailable


def table() -> tuple[RouteTable, Backend, Backend]:
    routes = RouteTable()
    app = Backend(Address("127.0.0.1", 1), name="app")
    api = Backend(Address("127.0.0.1", 2), name="api")
    routes.switch("app.example.com", app)
    routes.switch("api.example.com", api)
    routes.set_names(
        {
            "app.example.com": ["www.app.example.com", "*.app.example.com"],
            "api.example.com": ["x.app.example.com"],
        },
        {"old.example.com": "https://app.example.com", "*.old.example.com": "https://a.example"},
    )
    return routes, app, api


def test_a_host_resolves_by_domain_then_exact_name_then_wildcard() -> None:
    routes, app, api = table()
    assert routes.resolve("app.example.com") == ("app.example.com", app)
    assert routes.resolve("www.app.example.com") == ("app.example.com", app)
    assert routes.resolve("anything.app.example.com") == ("app.example.com", app)
    # An exact name wins over the wildcard that would also match it.
    assert routes.resolve("x.app.example.com") == ("api.example.com", api)
    # A wildcard matches exactly one more label.
    assert routes.resolve("a.b.app.example.com") is None
    assert routes.resolve("example.com") is None
    assert routes.resolve("old.example.com") == Redirect(
        "old.example.com", "https://app.example.com"
    )
    assert routes.resolve("w.old.example.com") == Redirect("*.old.example.com", "https://a.example")


def test_acquire_counts_a_request_on_the_backend_a_name_resolves_to() -> None:
    routes, app, _ = table()
    assert routes.acquire("w.app.example.com") is app
    assert app.inflight.requests == 1 and app.stats.requests == 1
    assert app.route == "app.example.com"  # metrics label the route, never the host
    assert isinstance(routes.acquire("old.example.com"), Redirect)
    assert routes.acquire("nothing.example.com") is None
    assert app.inflight.requests == 1


def test_a_down_backend_is_reported_and_counts_nothing_until_it_is_up_again() -> None:
    routes, app, _ = table()
    routes.mark_down(app, "exited with code 137; Docker restarts it")
    found = routes.acquire("www.app.example.com")
    assert found == Unavailable(app)
    assert app.state is BackendState.DOWN
    assert app.inflight.requests == 0 and app.stats.requests == 0
    routes.mark_up(app)
    assert routes.acquire("app.example.com") is app
    assert app.down_reason == ""


def test_replace_switches_only_if_the_route_still_goes_to_the_expected_backend() -> None:
    routes, app, _ = table()
    fresh = Backend(Address("127.0.0.1", 3), name="app")
    assert routes.replace("app.example.com", app, fresh)
    assert routes.get("app.example.com") is fresh
    # A late event about the container the route left must not route it back.
    assert not routes.replace("app.example.com", app, Backend(app.address, name="app"))
    assert routes.get("app.example.com") is fresh


def test_names_of_a_route_without_a_backend_resolve_to_nothing_routable() -> None:
    routes = RouteTable()
    routes.set_names({"new.example.com": ["www.new.example.com"]}, {})
    assert routes.resolve("www.new.example.com") == ("new.example.com", None)
    assert routes.acquire("www.new.example.com") is None


def test_serving_finds_the_routes_of_a_container() -> None:
    routes, app, _ = table()
    app.container_id = "c1"
    assert routes.serving("c1") == [("app.example.com", app)]
    assert routes.serving("c2") == []


async def test_waiters_wake_at_the_next_change() -> None:
    routes, app, _ = table()
    woke = []

    async def waiter() -> None:
        await routes.wait_changed()
        woke.append(True)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert woke == []
            routes.mark_down(app, "down")
    assert woke == [True]


def test_a_routes_domain_is_never_taken_by_a_wildcard_while_it_has_no_backend() -> None:
    # api.example.com is a route of its own (not deployed yet, or its deploy failed): a
    # wildcard of another route or a redirect must not serve it meanwhile.
    routes = RouteTable()
    app = Backend(Address("127.0.0.1", 1), name="app")
    routes.switch("app.example.com", app)
    routes.set_names({"app.example.com": ["*.example.com"], "api.example.com": []}, {})
    assert routes.resolve("api.example.com") == ("api.example.com", None)
    assert routes.acquire("api.example.com") is None
    assert app.inflight.requests == 0
    assert routes.acquire("www.example.com") is app
