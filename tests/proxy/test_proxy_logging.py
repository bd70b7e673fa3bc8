"""The access log formats, request ids, and settings that apply per connection."""

from __future__ import annotations

import json
import re

from proxy_helpers import Client, Exchange, fetch, harness, raw_exchange, status_of

from hotswap.config import AccessLogFormat, HttpParser


async def test_json_access_log_has_one_object_per_request_with_the_contract_keys() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(access_log=AccessLogFormat.JSON)
        await fetch(proxy.port, "POST", "/logged?q=1", "app.test", body=b"12345")
        await fetch(proxy.port, "GET", "/", "nowhere.test")
    first, second = (json.loads(line) for line in h.access_lines)
    for key in (
        "time",
        "client",
        "method",
        "path",
        "status",
        "bytes",
        "duration",
        "route",
        "container",
        "request_id",
    ):
        assert key in first
    assert (first["method"], first["path"], first["status"], first["bytes"]) == (
        "POST",
        "/logged?q=1",
        200,
        5,
    )
    assert (first["route"], first["client"]) == ("app.test", "127.0.0.1")
    assert first["request_id"]
    assert (second["status"], second["route"], second["container"]) == (404, None, None)


async def test_combined_access_log_is_apache_combined() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(access_log=AccessLogFormat.COMBINED)
        headers = [(b"referer", b"http://ref.test/"), (b"user-agent", b'agent "x"')]
        await fetch(proxy.port, "POST", "/c?d=1", "app.test", headers, body=b"abc")
    [line] = h.access_lines
    pattern = (
        r"127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
        r'"POST /c\?d=1 HTTP/1\.1" 200 3 "http://ref\.test/" "agent \\x22x\\x22"\n'
    )
    assert re.fullmatch(pattern, line), line


async def test_access_log_off_logs_nothing() -> None:
    async with harness() as h:
        h.route("app.test", await h.upstream())
        proxy = await h.proxy(access_log=AccessLogFormat.OFF)
        assert (await fetch(proxy.port, "GET", "/", "app.test")).status == 200
    assert h.access_lines == []


async def test_each_request_gets_its_own_request_id_upstream_and_in_the_log() -> None:
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await h.proxy()
        async with Client.connect(proxy.port) as client:
            for _ in range(2):
                # a client's own id is replaced: it is not a trusted proxy
                headers = [(b"x-request-id", b"forged")]
                assert (await client.request("GET", "/", "app.test", headers)).status == 200
    ids = [ex.headers[b"x-request-id"] for ex in up.requests]
    assert len(set(ids)) == 2 and b"forged" not in ids
    for request_id, line in zip(ids, h.access_lines, strict=True):
        assert f"request_id={request_id.decode()}" in line


async def test_with_request_id_off_the_clients_header_passes_as_sent() -> None:
    async with harness() as h:
        up = await h.upstream()
        h.route("app.test", up)
        proxy = await h.proxy(request_id=False)
        await fetch(proxy.port, "GET", "/", "app.test", [(b"x-request-id", b"client-1")])
    assert up.requests[0].header_list.count((b"x-request-id", b"client-1")) == 1
    assert "request_id=-" in h.access_lines[0]


async def test_http_parser_applies_to_new_connections() -> None:
    """A config change (reload) reaches connections opened after it: the two codecs
    differ on a duplicate identical Content-Length (fast refuses, h11 collapses)."""

    async def ok(ex: Exchange) -> None:
        await ex.read_body()
        await ex.respond(200, b"ok")

    head = b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1\r\nContent-Length: 1\r\n"
    head += b"Connection: close\r\n\r\nx"
    async with harness() as h:
        h.route("app.test", await h.upstream(ok))
        proxy = await h.proxy(http_parser=HttpParser.FAST)
        assert status_of(await raw_exchange(proxy.port, head)) == 400
        fast = proxy.config_getter()
        proxy.config_getter = lambda: fast.__class__(  # type: ignore[method-assign]
            **{**fast.__dict__, "http_parser": HttpParser.H11}
        )
        assert status_of(await raw_exchange(proxy.port, head)) == 200
