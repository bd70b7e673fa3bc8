"""The admin HTTP API on server.admin_listen: h11 over Trio, one task per connection.

    GET  /v1/status              JSON status document (admin/status.py)
    POST /v1/deploy/{domain}     body {"image": optional, "force": optional}; NDJSON progress
                                 ({domain} is a route key; a path route's URL-encoded:
                                 /v1/deploy/example.com%2Fapi)
    POST /v1/rollback/{domain}   NDJSON progress
    POST /v1/reload              {"changes": [...]} or 400 {"error": ..., "problems": [...]}
    GET  /v1/logs/{route}        ?follow=1&tail=N&since=D: the app's log lines as NDJSON
                                 (admin/logs.py), following the route across deploys
    GET  /metrics                Prometheus text format

Every answer other than a stream is JSON; errors are {"error": message} with
the status of the HotswapError kind. With a token configured, every request
needs `Authorization: Bearer <token>`, compared in constant time.

A deploy runs in the deployer's nursery; the request only follows its progress
events. A client that goes away stops the stream, never the deploy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol

import h11
import trio

from hotswap.addresses import is_loopback
from hotswap.admin.logs import Emit, LogSource, parse_log_query, route_logs
from hotswap.admin.router import (
    MAX_BODY,
    HttpError,
    Router,
    check_token,
    error_bytes,
    json_bytes,
    parse_json_object,
)
from hotswap.admin.status import build_status, in_flight_samples, tls_samples, up_samples
from hotswap.config import Config
from hotswap.errors import ConfigError, HotswapError
from hotswap.http.pages import reason
from hotswap.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from hotswap.metrics import Metrics
from hotswap.proxy.controls import (
    DEFAULT_PAUSE_TIMEOUT,
    DEFAULT_RETRY_AFTER,
    Maintenance,
    RouteControls,
)
from hotswap.proxy.routes import RouteTable
from hotswap.routekey import normalize_route_key
from hotswap.units import parse_duration

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
MAX_MAINTENANCE_MESSAGE = 2000  # characters: a sentence or two, not a page
RECEIVE_SIZE = 16 * 1024
WRITE_TIMEOUT = 30.0  # a client that reads nothing for this long is dropped
NDJSON = "application/x-ndjson"
JSON = "application/json"


# -- what the admin server needs from the app (App in app.py provides it) -------------


class ProgressEventLike(Protocol):
    def to_json(self) -> Mapping[str, Any]: ...


class DeployHandleLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def domain(self) -> str: ...

    def events(self) -> AsyncIterator[ProgressEventLike]: ...


class DeployerLike(Protocol):
    def start_deploy(
        self, domain: str, image: str | None = None, *, force: bool = False, reason: str = ...
    ) -> DeployHandleLike: ...

    def start_rollback(self, domain: str) -> DeployHandleLike: ...

    def status(self) -> Mapping[str, Any]: ...

    async def refresh(self) -> None: ...


class AdminApp(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def runtime(self) -> LogSource: ...

    @property
    def routes(self) -> RouteTable: ...

    @property
    def deployer(self) -> DeployerLike: ...

    @property
    def proxy(self) -> object | None: ...

    async def reload(self) -> list[str]: ...

    def pause(self, route: str, timeout: float) -> None: ...

    def resume(self, route: str) -> bool: ...

    def set_maintenance(self, route: str, maintenance: Maintenance | None) -> None: ...

    @property
    def controls(self) -> RouteControls: ...


# -- the server ------------------------------------------------------------------------


async def serve_admin(
    app: AdminApp,
    *,
    listeners: list[trio.SocketListener] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the admin API on app.config.server.admin_listen until cancelled.

    Signals started(port) once listening (the bound port, useful with port 0).
    `listeners`: listening sockets to accept on instead of binding admin_listen
    (inherited from systemd or from a takeover; handover/).
    """
    server = app.config.server
    address = server.admin_listen
    if not server.admin_token and not is_loopback(address.host):
        # The config loader refuses this already; a second lock on the door is cheap.
        raise ConfigError(f"admin_listen {address} is not loopback and no admin token is set")
    if listeners is None:
        listeners = await trio.open_tcp_listeners(address.port, host=address.host)
    port = int(listeners[0].socket.getsockname()[1])
    log.info(
        "admin API listening address=%s:%d auth=%s",
        address.host,
        port,
        "token" if server.admin_token else "none",
    )
    task_status.started(port)
    await trio.serve_listeners(partial(_handle, app), listeners)


def app_metrics(app: AdminApp) -> Metrics:
    """The app's Metrics (attribute `metrics`); one is attached if the app has none yet."""
    metrics = getattr(app, "metrics", None)
    if not isinstance(metrics, Metrics):
        metrics = Metrics()
        setattr(app, "metrics", metrics)  # noqa: B010 (not every AdminApp declares it)
    return metrics


async def _handle(app: AdminApp, stream: trio.SocketStream) -> None:
    connection = AdminConnection(app, stream)
    try:
        await connection.run()
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
        pass  # the client went away or stalled; nothing to answer
    except Exception:
        log.exception("admin connection failed client=%s", connection.client)
    finally:
        with trio.move_on_after(1) as cleanup:
            cleanup.shield = True
            await stream.aclose()


Handler = Callable[["AdminConnection", h11.Request, Mapping[str, str], bytes], Awaitable[None]]


class AdminConnection:
    """One client connection: the h11 server loop (keep-alive, one request at a time)."""

    def __init__(self, app: AdminApp, stream: trio.SocketStream) -> None:
        self.app = app
        self.stream = stream
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        try:
            peer = stream.socket.getpeername()
            self.client = f"{peer[0]}:{peer[1]}"
        except OSError:
            self.client = "?"

    async def run(self) -> None:
        while True:
            server = self.app.config.server
            with trio.move_on_after(server.idle_timeout):
                event = await self._next_event()
            if not isinstance(event, h11.Request):
                return  # idle timeout, EOF or a protocol error already answered
            with trio.fail_after(server.header_timeout):
                body = await self._read_body()
            if body is None:
                return
            await self._dispatch(event, body)
            if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                return
            self.conn.start_next_cycle()

    # -- reading ---------------------------------------------------------------------

    async def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED] | None:
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._protocol_error(exc)
                return None
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(RECEIVE_SIZE)
                self.conn.receive_data(data)  # b"" tells h11 about EOF
                continue
            return event

    async def _protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            await self.send_body(status, JSON, error_bytes(f"bad request: {exc}"), close=True)

    async def _read_body(self) -> bytes | None:
        if self.conn.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    message = f"request body larger than {MAX_BODY} bytes"
                    await self.send_body(413, JSON, error_bytes(message), close=True)
                    return None
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                return None

    # -- answering -------------------------------------------------------------------

    async def _dispatch(self, request: h11.Request, body: bytes) -> None:
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("ascii", "replace")
        started = time.monotonic()
        status = 0
        try:
            token = self.app.config.server.admin_token
            check_token(token, _header(request, b"authorization"))
            match = ROUTER.resolve(method, target)
            status = 200
            await match.handler(self, request, match.params, body)
        except HttpError as exc:
            status = exc.status
            await self._send_error(exc.status, error_bytes(exc.message), exc.headers)
        except ConfigError as exc:
            status = exc.http_status
            await self._send_error(status, error_bytes(str(exc), problems=exc.problems))
        except HotswapError as exc:
            status = exc.http_status
            await self._send_error(status, error_bytes(str(exc)))
        # Reads (a Prometheus scrape every few seconds) only at debug level.
        log.log(
            logging.DEBUG if method == "GET" and status < 400 else logging.INFO,
            "admin request client=%s method=%s path=%s status=%d duration=%.3f",
            self.client,
            method,
            target,
            status,
            time.monotonic() - started,
        )

    async def _send_error(
        self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        if self.conn.our_state is h11.SEND_RESPONSE:
            await self.send_body(status, JSON, body, headers)
        # else: a stream had started; the client sees the stream end early

    async def send_body(
        self,
        status: int,
        content_type: str,
        body: bytes,
        headers: Sequence[tuple[str, str]] = (),
        *,
        close: bool = False,
    ) -> None:
        head = [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]
        if close:
            head.append(("Connection", "close"))
        await self._send(h11.Response(status_code=status, headers=head, reason=reason(status)))
        await self._send(h11.Data(data=body))
        await self._send(h11.EndOfMessage())

    async def send_json(self, status: int, value: Any) -> None:
        await self.send_body(status, JSON, json_bytes(value))

    async def _send(self, event: h11.Event) -> None:
        try:
            data = self.conn.send(event)
        except h11.LocalProtocolError:
            self.conn.send_failed()
            raise
        if not data:
            return
        try:
            with trio.fail_after(WRITE_TIMEOUT):
                await self.stream.send_all(data)
        except BaseException:
            self.conn.send_failed()
            raise

    async def stream_progress(self, handle: DeployHandleLike) -> None:
        """Answer with the deploy's progress as NDJSON, one event per chunk."""
        headers = [
            ("Content-Type", NDJSON),
            ("Cache-Control", "no-store"),
            ("X-Hotswap-Deploy", handle.id),
        ]
        await self._send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
        last = ""
        events = handle.events()
        try:
            async for event in events:
                line = dict(event.to_json())
                last = str(line.get("event", ""))
                await self._send(h11.Data(data=json_bytes(line)))
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            log.info(
                "admin client left the progress stream; the deploy goes on "
                "client=%s deploy=%s domain=%s",
                self.client,
                handle.id,
                handle.domain,
            )
            raise
        finally:
            await _aclose(events)
        log.debug("progress stream ended deploy=%s last=%s", handle.id, last)
        await self._send(h11.EndOfMessage())

    async def stream_ndjson(self, produce: Callable[[Emit], Awaitable[None]]) -> None:
        """Answer with the objects `produce` emits, as NDJSON, as they come.

        A stream may stay quiet for hours (a log with --follow), so the client's side is
        watched: when it closes, the stream stops at once, whatever it was waiting for.
        An error while streaming ends it with {"event": "error", "error": ...}.
        """
        headers = [("Content-Type", NDJSON), ("Cache-Control", "no-store")]
        await self._send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
        gone = False
        failure: HotswapError | None = None

        async def emit(item: Mapping[str, Any]) -> None:
            await self._send(h11.Data(data=json_bytes(item)))

        async def watch_client(scope: trio.CancelScope) -> None:
            nonlocal gone
            try:
                data = await self.stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if data:
                self.conn.receive_data(data)  # a pipelined request: h11 keeps it
                return
            gone = True
            scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_client, nursery.cancel_scope)
            try:
                await produce(emit)
            except HotswapError as exc:
                failure = exc
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
                gone = True
            nursery.cancel_scope.cancel()
        if gone:
            raise trio.BrokenResourceError("the client left the stream")
        if failure is not None:
            await emit({"event": "error", "error": str(failure)})
        await self._send(h11.EndOfMessage())


async def _aclose(events: AsyncIterator[Any]) -> None:
    """Finalise an async generator now, in this task (not later in the garbage collector)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await aclose()


def _header(request: h11.Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _domain(params: Mapping[str, str]) -> str:
    """The route key in the API path: a domain, or a domain and a path URL-encoded as one
    segment ("/v1/deploy/example.com%2Fapi"; the router decodes it)."""
    try:
        return normalize_route_key(params["domain"])
    except ValueError as exc:
        raise HttpError(400, str(exc)) from None


# -- handlers --------------------------------------------------------------------------


async def _status(
    conn: AdminConnection, request: h11.Request, params: Mapping[str, str], body: bytes
) -> None:
    app = conn.app
    await app.deployer.refresh()  # live state and health of the serving containers
    tls = getattr(app, "tls", None)  # the TlsManager (App has one; test fakes may not)
    document = build_status(
        app.config,
        app.routes,
        app.deployer.status(),
        _open_connections(app),
        tls.status() if tls is not None else None,
        app.controls.snapshot(),
    )
    await conn.send_json(200, document)


async def _metrics(
    conn: AdminConnection, request: h11.Request, params: Mapping[str, str], body: bytes
) -> None:
    app = conn.app
    expiry, failures = tls_samples(getattr(app, "tls", None))
    text = app_metrics(app).render(
        in_flight_samples(app.routes),
        _open_connections(app),
        up_samples(app.routes),
        tls_expiry=expiry,
        acme_failures=failures,
    )
    await conn.send_body(200, METRICS_CONTENT_TYPE, text)


async def _deploy(
    conn: AdminConnection, request: h11.Request, params: Mapping[str, str], body: bytes
) -> None:
    domain = _domain(params)
    options = parse_json_object(body)
    image = options.get("image")
    force = options.get("force", False)
    if image is not None and (not isinstance(image, str) or not image.strip()):
        raise HttpError(400, '"image" must be a non-empty string (an image reference)')
    if not isinstance(force, bool):
        raise HttpError(400, '"force" must be true or false')
    handle = conn.app.deployer.start_deploy(domain, image, force=force)
    log.info(
        "deploy requested domain=%s image=%s force=%s deploy=%s client=%s",
        domain,
        image or "(configured)",
        force,
        handle.id,
        conn.client,
    )
    await conn.stream_progress(handle)


def _duration(options: Mapping[str, object], key: str, default: float) -> float:
    raw = options.get(key)
    if raw is None:
        return default
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw > 0:
        return float(raw)
    if isinstance(raw, str):
        try:
            value = parse_duration(raw)
        except ValueError as exc:
            raise HttpError(400, f'"{key}": {exc}') from None
        if value > 0:
            return value
    raise HttpError(400, f'"{key}" must be a duration like "30s" or "5m"')


async def _pause(
    conn: AdminConnection, request: h11.Request, params: Mapping[str, str], body: bytes
) -> None:
    route = _domain(params)
    timeout = _duration(parse_json_object(body), "timeout", DEFAULT_PAUSE_TIMEOUT)
    conn.app.pause(route, timeout)
    await conn.send_json(200, {"route": route, "paused": True, "timeout": timeout})


async def _resume(
    conn: AdminConnection, request: h11.Request, params: Mapping[str, str], body: bytes
) -> None:
    route = _domain(params)
    was_paused = conn.app.resume(route)
    await conn.send_json(200, {"route": route, "paused": False, "was_paused": was_paused})


async def _maintenance(
    conn: AdminConnection, request: h11.Request, params: Mapping[str, str], body: bytes
) -> None:
    route = _domain(params)
    options = parse_json_object(body)
    off = options.get("off", False)
    if not isinstance(off, bool):
        raise HttpError(400, '"off" must be true or false')
    if off:
        conn.app.set_maintenance(route, None)
        await conn.send_json(200, {"route": route, "maintenance": None})
        return
    message = options.get("message", "")
    if not isinstance(message, str) or len(message) > MAX_MAINTENANCE_MESSAGE:
        raise HttpError(
            400, f'"message" must be a string of at most {MAX_MAINTENANCE_MESSAGE} characters'
        )
    retry = _duration(options, "retry_after", DEFAULT_RETRY_AFTER)
    conn.app.set_maintenance(route, Maintenance(message, retry))
    await conn.send_json(
        200, {"route": route, "maintenance": {"message": message, "retry_after": retry}}
    )


async def _rollback(
    conn: AdminConnection, request: h11.Request, params: Mapping[str, str], body: bytes
) -> None:
    domain = _domain(params)
    handle = conn.app.deployer.start_rollback(domain)
    log.info("rollback requested domain=%s deploy=%s client=%s", domain, handle.id, conn.client)
    await conn.stream_progress(handle)


async def _reload(
    conn: AdminConnection, request: h11.Request, params: Mapping[str, str], body: bytes
) -> None:
    changes = await conn.app.reload()
    await conn.send_json(200, {"changes": changes})


async def _logs(
    conn: AdminConnection, request: h11.Request, params: Mapping[str, str], body: bytes
) -> None:
    app = conn.app
    route = _domain(params)
    query = parse_log_query(request.target.decode("ascii", "replace"))
    external = app.config.external_routes.get(route)
    if external is not None:
        raise HttpError(
            400,
            f"{route} is an external route (to {external.address}): hotswap runs no "
            "container for it, so it has no logs to show",
        )
    backend = app.routes.get(route)
    if route not in app.config.routes and backend is None:
        raise HttpError(404, f"unknown route {route}: no route in the config")
    if not query.follow and (backend is None or backend.container_id is None):
        raise HttpError(404, f"no container serves {route} yet")
    log.info("logs requested route=%s follow=%s client=%s", route, query.follow, conn.client)

    async def produce(emit: Emit) -> None:
        await route_logs(
            app.routes,
            app.runtime,
            route,
            follow=query.follow,
            tail=query.tail,
            since=query.since,
            emit=emit,
        )

    await conn.stream_ndjson(produce)


def _open_connections(app: AdminApp) -> int:
    count = getattr(app.proxy, "open_connections", 0)
    return count if isinstance(count, int) else 0


ROUTER: Router[Handler] = Router()
ROUTER.add("GET", "/v1/status", _status)
ROUTER.add("POST", "/v1/deploy/{domain}", _deploy)
ROUTER.add("POST", "/v1/rollback/{domain}", _rollback)
ROUTER.add("POST", "/v1/reload", _reload)
ROUTER.add("GET", "/v1/logs/{domain}", _logs)
ROUTER.add("GET", "/metrics", _metrics)
ROUTER.add("POST", "/v1/pause/{domain}", _pause)
ROUTER.add("POST", "/v1/resume/{domain}", _resume)
ROUTER.add("POST", "/v1/maintenance/{domain}", _maintenance)
