"""RouteTable: how a host resolves (domain, extra name, wildcard, redirect, path routes),
down backends, and the compare-and-switch the restart watch relies on. No sockets."""

from __future__ import annotations

import inspect

import trio
import trio.testing

from hotswap.config import Address
from hotswap.proxy.routes import (
    Backend,
    BackendState,
    Redirect,
    Refused,
    RouteTable,
    Unavailable,
)


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
    assert routes.acquire("w.app.example.com", b"/") is app
    assert app.inflight.requests == 1 and app.stats.requests == 1
    assert app.route == "app.example.com"  # metrics label the route, never the host
    assert isinstance(routes.acquire("old.example.com", b"/"), Redirect)
    assert routes.acquire("nothing.example.com", b"/") is None
    assert app.inflight.requests == 1


def test_a_down_backend_is_reported_and_counts_nothing_until_it_is_up_again() -> None:
    routes, app, _ = table()
    routes.mark_down(app, "exited with code 137; Docker restarts it")
    found = routes.acquire("www.app.example.com", b"/")
    assert found == Unavailable(app)
    assert app.state is BackendState.DOWN
    assert app.inflight.requests == 0 and app.stats.requests == 0
    routes.mark_up(app)
    assert routes.acquire("app.example.com", b"/") is app
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
    assert routes.acquire("www.new.example.com", b"/") is None


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
    assert routes.acquire("api.example.com", b"/") is None
    assert app.inflight.requests == 0
    assert routes.acquire("www.example.com", b"/") is app


# -- path routes (issue 12) ---------------------------------------------------------------


def path_table() -> tuple[RouteTable, Backend, Backend, Backend]:
    routes = RouteTable()
    site = Backend(Address("127.0.0.1", 1), name="site")
    api = Backend(Address("127.0.0.1", 2), name="api")
    v2 = Backend(Address("127.0.0.1", 3), name="v2")
    routes.switch("example.com", site)
    routes.switch("example.com/api", api)
    routes.switch("example.com/api/v2", v2)
    routes.set_names(
        {
            "example.com": ["www.example.com", "*.example.com"],
            "example.com/api": [],
            "example.com/api/v2": [],
        },
        {},
    )
    return routes, site, api, v2


def test_a_path_route_takes_its_prefix_and_the_plain_route_the_rest() -> None:
    routes, site, api, v2 = path_table()
    assert routes.acquire("example.com", b"/api/users?x=1") is api
    assert routes.acquire("example.com", b"/api") is api
    assert routes.acquire("example.com", b"/apix") is site
    assert routes.acquire("example.com", b"/api/v2/x") is v2
    assert routes.acquire("example.com", b"/") is site
    assert (site.inflight.requests, api.inflight.requests, v2.inflight.requests) == (2, 2, 1)
    assert (api.route, v2.route) == ("example.com/api", "example.com/api/v2")


def test_acquire_resolves_a_path_and_counts_in_one_synchronous_call() -> None:
    # The invariant of DESIGN.md: no checkpoint between the lookup and the count. A plain
    # function cannot yield to another task, and the backend it returns counts the request.
    assert not inspect.iscoroutinefunction(RouteTable.acquire)
    routes, _, api, _ = path_table()
    found = routes.acquire("www.example.com", b"/api/x")
    assert found is api and api.inflight.requests == 1 and api.stats.requests == 1
    # A switch right after the call leaves the request counted where it was resolved.
    fresh = Backend(Address("127.0.0.1", 4), name="api2")
    assert routes.switch("example.com/api", fresh) is api
    assert (api.inflight.requests, fresh.inflight.requests) == (1, 0)
    assert routes.acquire("example.com", b"/api/x") is fresh


def test_names_and_wildcards_of_a_domain_lead_to_its_path_routes() -> None:
    routes, site, api, _ = path_table()
    assert routes.acquire("www.example.com", b"/api/x") is api
    assert routes.acquire("eu.example.com", b"/api") is api
    assert routes.acquire("eu.example.com", b"/shop") is site
    assert routes.resolve("www.example.com", b"/api/1") == ("example.com/api", api)
    assert routes.resolve("www.example.com") == ("example.com", site)


def test_a_path_route_without_a_backend_leaves_its_paths_to_the_shorter_routes() -> None:
    # Adding /api to a running site: the site keeps serving /api until the api's first
    # deploy switches, then /api moves over in one step.
    routes = RouteTable()
    site = Backend(Address("127.0.0.1", 1), name="site")
    routes.switch("example.com", site)
    routes.set_names({"example.com": [], "example.com/api": []}, {})
    assert routes.acquire("example.com", b"/api/x") is site
    api = Backend(Address("127.0.0.1", 2), name="api")
    routes.switch("example.com/api", api)
    assert routes.acquire("example.com", b"/api/x") is api
    assert routes.acquire("example.com", b"/x") is site
    # Removed (a reload dropped it): its paths go back to the site at once.
    assert routes.remove("example.com/api") is api
    assert routes.acquire("example.com", b"/api/x") is site
    assert routes.get("example.com") is site


def test_a_domain_with_path_routes_only_answers_other_paths_with_nothing() -> None:
    routes = RouteTable()
    api = Backend(Address("127.0.0.1", 2), name="api")
    routes.set_names({"example.com/api": [], "other.com": ["*.com"]}, {})
    # Not deployed yet: nothing, and no wildcard of another route takes the domain.
    assert routes.acquire("example.com", b"/api") is None
    routes.switch("example.com/api", api)
    assert routes.acquire("example.com", b"/api/x") is api
    assert routes.acquire("example.com", b"/other") is None
    assert routes.acquire("example.com", b"/") is None
    assert routes.resolve("example.com", b"/other") == ("example.com", None)
    assert api.inflight.requests == 1


def test_switching_the_plain_route_keeps_the_path_routes() -> None:
    routes, site, api, _ = path_table()
    new_site = Backend(Address("127.0.0.1", 9), name="site2")
    assert routes.switch("example.com", new_site) is site
    assert routes.acquire("example.com", b"/") is new_site
    assert routes.acquire("example.com", b"/api") is api
    assert routes.remove("example.com") is new_site
    assert routes.acquire("example.com", b"/") is None
    assert routes.acquire("example.com", b"/api") is api


def test_an_ambiguous_path_is_refused_and_counts_nothing() -> None:
    routes, site, api, _ = path_table()
    found = routes.acquire("example.com", b"/%61pi/x")
    assert isinstance(found, Refused) and "ambiguous" in found.detail
    assert isinstance(routes.acquire("example.com", b"/api/../admin"), Refused)
    assert site.inflight.requests == 0 and api.inflight.requests == 0
    # A domain without path routes matches no path: nothing to be ambiguous about.
    plain, _, _ = table()
    assert isinstance(plain.acquire("app.example.com", b"/%61pi/../x"), Backend)


def test_a_down_path_route_is_unavailable_not_handed_to_the_plain_route() -> None:
    routes, _, api, _ = path_table()
    routes.mark_down(api, "exited")
    assert routes.acquire("example.com", b"/api/x") == Unavailable(api)


def test_strip_prefix_is_set_on_a_routes_backends_at_the_switch_and_at_a_change() -> None:
    routes, site, api, v2 = path_table()
    assert api.strip_prefix == b""
    routes.set_strip_prefixes(["example.com/api"])
    assert (site.strip_prefix, api.strip_prefix, v2.strip_prefix) == (b"", b"/api", b"")
    fresh = Backend(Address("127.0.0.1", 4), name="api2")
    routes.switch("example.com/api", fresh)
    assert fresh.strip_prefix == b"/api"
    routes.set_strip_prefixes([])
    assert fresh.strip_prefix == b""
