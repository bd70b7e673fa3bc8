"""Progress lines, the deploy summary and the status table, as the CLI prints them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hotswap.admin.render import (
    ERASE_LINE,
    ProgressRenderer,
    age,
    exit_code,
    render_status,
)

T0 = 1_800_000_000.0


def ev(phase: str, t: float, message: str = "", **data: Any) -> dict[str, Any]:
    return {
        "deploy_id": "d1",
        "domain": "app.example.com",
        "event": phase,
        "time": T0 + t,
        "message": message,
        "data": data,
    }


DEPLOY = [
    ev("pulling", 0.0, "pulling app:2"),
    ev("starting", 1.0, "starting hotswap-app-example-com-ab12"),
    ev("health", 1.5, "health: starting"),
    ev("health", 2.5, "health: healthy"),
    ev("switched", 2.6, "switched to 127.0.0.1:40001"),
    ev("draining", 2.6, "", in_flight=3),
    ev("draining", 3.0, "", in_flight=1),
    ev("drained", 3.2, "old container drained"),
    ev("stopped", 4.0, "old container stopped and removed"),
    ev("done", 4.1, "", image="app:2", duration=4.1, container="hotswap-app-example-com-ab12"),
]


def run(events: list[dict[str, Any]], *, tty: bool) -> tuple[str, ProgressRenderer]:
    renderer = ProgressRenderer(tty=tty, clock=lambda: 0.0)
    out = "".join(renderer.feed(e) for e in events) + renderer.finish()
    return out, renderer


def test_piped_output_is_one_plain_line_per_event_with_elapsed_time() -> None:
    out, renderer = run(DEPLOY, tty=False)
    lines = out.splitlines()
    assert ERASE_LINE not in out
    assert lines[0] == "   0.0s  pulling   pulling app:2"
    assert lines[3] == "   2.5s  health    health: healthy"
    assert "draining  draining the old container (3 in flight)" in lines[5]
    assert "(1 in flight)" in lines[6]
    assert (
        lines[-1]
        == "✓ deployed app:2 to app.example.com in 4.1s (container hotswap-app-example-com-ab12)"
    )
    assert len(lines) == len(DEPLOY)
    assert renderer.outcome == "done"
    assert exit_code(renderer.outcome) == 0


def test_piped_output_drops_an_update_that_says_nothing_new() -> None:
    out, _ = run(
        [ev("health", 0, "health: starting"), ev("health", 1, "health: starting")], tty=False
    )
    assert len(out.splitlines()) == 1


def test_in_a_terminal_repeated_phases_redraw_one_line() -> None:
    out, _ = run(DEPLOY, tty=True)
    # health x2 and draining x2 each share a line: 10 events, 8 lines (the summary included).
    assert out.count(ERASE_LINE) == 2
    assert len(out.split("\n")) - 1 == 8
    assert out.endswith("\n")


def test_a_failed_deploy_summary_carries_the_error_and_exits_1() -> None:
    events = [
        ev("pulling", 0, "pulling app:bad"),
        {**ev("failed", 2.0, "", duration=2.0), "error": "container exited with code 3: boom"},
    ]
    out, renderer = run(events, tty=False)
    assert out.splitlines()[-1] == (
        "✗ deploy of app.example.com failed in 2.0s: container exited with code 3: boom"
    )
    assert exit_code(renderer.outcome) == 1


def test_a_multi_line_error_keeps_the_summary_first_and_indents_the_log() -> None:
    failed = {
        **ev("failed", 1.0, duration=1.0),
        "error": "container exited with code 3\nlog line 1\nlog line 2",
    }
    out, _ = run([failed], tty=False)
    assert out.splitlines() == [
        "✗ deploy of app.example.com failed in 1.0s: container exited with code 3",
        "    log line 1",
        "    log line 2",
    ]


def test_a_skipped_deploy_exits_0_and_says_why() -> None:
    out, renderer = run(
        [ev("skipped", 0, "image id equals the running one; use --force"), ev("done", 0.1)],
        tty=False,
    )
    assert "= skipped" in out
    assert "image id equals the running one" in out.splitlines()[-1]
    assert renderer.outcome == "skipped"
    assert exit_code(renderer.outcome) == 0


def test_a_stream_that_ends_without_a_result_exits_1() -> None:
    out, renderer = run([ev("pulling", 0, "pulling")], tty=True)
    assert out.endswith("\n")
    assert renderer.outcome is None
    assert exit_code(renderer.outcome) == 1
    assert "ended without a result" in renderer.summary()


def test_a_queued_deploy_says_it_waits() -> None:
    out, _ = run([ev("queued", 0)], tty=False)
    assert "another deploy of this domain is running" in out


def test_iso_times_work_too() -> None:
    events = [
        {"event": "pulling", "time": "2026-01-01T00:00:00Z", "domain": "a.com"},
        {"event": "starting", "time": "2026-01-01T00:00:02.5Z", "domain": "a.com"},
    ]
    out, _ = run(events, tty=False)
    assert out.splitlines()[1].startswith("   2.5s  starting")


def test_ages_are_short() -> None:
    assert age(5) == "5s ago"
    assert age(125) == "2m ago"
    assert age(7200) == "2h ago"
    assert age(3 * 86400) == "3d ago"


STATUS = {
    "version": "0.1.0",
    "open_connections": 2,
    "routes": [
        {
            "domain": "app.example.com",
            "kind": "container",
            "image": "app:latest",
            "backend": {
                "name": "hotswap-app-example-com-ab12",
                "container_id": "0123456789abcdef0123",
                "image": "app:latest",
                "address": "127.0.0.1:40001",
            },
            "in_flight": 3,
            "tunnels": 1,
            "requests": 1200,
            "deploy": {
                "state": "running",
                "health": "healthy",
                "last_deploy": {"result": "done", "when": T0 - 300, "duration": 4.25},
            },
        },
        {
            "domain": "legacy.example.com",
            "kind": "external",
            "image": None,
            "backend": {"address": "127.0.0.1:9000"},
            "in_flight": 0,
            "requests": 7,
            "deploy": {},
        },
    ],
    "other": {"unmanaged": [{"name": "hotswap-old-com-1", "domain": "old.com", "image": "o:1"}]},
}


def test_the_status_table_has_a_row_per_domain_with_every_column() -> None:
    out = render_status(STATUS, now=T0)
    lines = out.splitlines()
    assert lines[0].split() == [
        "DOMAIN",
        "IMAGE",
        "CONTAINER",
        "STATE",
        "IN",
        "FLIGHT",
        "RESTARTS",
        "REQUESTS",
        "LAST",
        "DEPLOY",
    ]
    app = lines[1].split()
    assert app[:5] == ["app.example.com", "app:latest", "0123456789ab", "running", "(healthy)"]
    assert "3" in app and "+1ws" in app and "1200" in app
    assert lines[1].endswith("done 5m ago (4.2s)")
    assert lines[2].split()[:4] == ["legacy.example.com", "→", "127.0.0.1:9000", "-"]
    assert "hotswap-old-com-1" in out


def test_status_shows_names_restarts_volumes_networks_and_why_a_route_is_down() -> None:
    route = dict(STATUS["routes"][0])  # type: ignore[index]
    route.update(
        hosts=["www.app.example.com", "*.app.example.com"],
        up=False,
        down_reason="the app's container exited with code 137; Docker is restarting it",
        deploy={
            "state": "exited",
            "restarts": 2,
            "volumes": ["app-data:/data", "/srv/uploads:/uploads:ro"],
            "networks": ["backend"],
        },
    )
    document = {"routes": [route], "redirects": {"old.example.com": "https://app.example.com"}}
    lines = render_status(document, now=T0).splitlines()
    row = lines[1].split()
    assert row[3] == "down" and "2" in row
    assert lines[2:] == [
        "    down: the app's container exited with code 137; Docker is restarting it",
        "    names: www.app.example.com, *.app.example.com",
        "    volumes: app-data:/data, /srv/uploads:/uploads:ro",
        "    networks: backend",
        "",
        "redirects (308):",
        "  old.example.com -> https://app.example.com",
    ]


def test_an_empty_status_says_so() -> None:
    assert render_status({"routes": []}) == "no routes configured\n"


def test_the_status_shows_each_domains_certificate_and_the_last_acme_error() -> None:
    day = 86400

    def at(seconds: float) -> str:
        return datetime.fromtimestamp(T0 + seconds, UTC).isoformat()

    document = {
        "routes": [
            {
                "domain": "app.example.com",
                "kind": "container",
                "image": "app:1",
                "tls": {
                    "https": True,
                    "off": False,
                    "certificate": {"source": "acme", "issuer": "R11", "not_after": at(60 * day)},
                    "acme": {"state": "valid", "failures": 0, "renew_at": at(30 * day)},
                },
            },
            {
                "domain": "new.example.com",
                "kind": "container",
                "image": "new:1",
                "tls": {
                    "https": False,
                    "off": False,
                    "certificate": None,
                    "acme": {
                        "state": "failed",
                        "failures": 2,
                        "next_attempt": at(240),
                        "last_error": "urn:ietf:params:acme:error:unauthorized :: 404",
                        "last_error_at": at(-60),
                    },
                },
            },
            {
                "domain": "plain.example.com",
                "kind": "container",
                "image": "p:1",
                "tls": {"https": False, "off": True, "certificate": None},
            },
        ],
        "tls": {"listen": "0.0.0.0:443"},
    }
    out = render_status(document, now=T0)
    tls_lines = out.split("\n\n", 1)[1].splitlines()
    assert tls_lines[0].split() == ["DOMAIN", "CERTIFICATE", "ISSUER", "NOT", "AFTER", "ACME"]
    assert tls_lines[1].split() == [
        "app.example.com",
        "acme",
        "R11",
        "2027-03-16",
        "(in",
        "60d)",
        "valid,",
        "renews",
        "in",
        "30d",
    ]
    assert tls_lines[2].split()[:3] == ["new.example.com", "none", "yet"]
    assert tls_lines[2].endswith("failed 2x, retry in 4m")
    assert tls_lines[3].split()[:2] == ["plain.example.com", "off"]
    assert tls_lines[4] == (
        "  new.example.com: last ACME error (1m ago): "
        "urn:ietf:params:acme:error:unauthorized :: 404"
    )
