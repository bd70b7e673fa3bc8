"""One forwarded exchange: stream the request and the response both ways.

Bodies stream chunk by chunk: the next read waits for the previous write, so
memory does not grow with a body. Errors map to statuses here, where the policy
lives: connect failure 502, invalid response 502, a client gone 499 (logged
only), the upstream gone mid-body: the client connection is closed, so a short
body is never presented as complete. A backend that sends nothing for
upstream_response_timeout (before the head, or between two reads of the body,
as nginx's proxy_read_timeout) times out on the connection's deadline, which the
connection answers (504, or a close once the head was sent). A pooled upstream
connection found stale is retried once on a fresh one when that cannot replay
anything the upstream acted on.
"""

from __future__ import annotations

import logging
import math
from typing import Final

import trio

from hotswap.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from hotswap.http.headers import is_upgrade_request, response_headers_for_client
from hotswap.http.upstream import upstream_request
from hotswap.proxy.client import Client, ClientGone, Phase
from hotswap.proxy.codec import (
    CLOSED,
    END,
    NEED_DATA,
    Body,
    ProtocolError,
    RequestHead,
    ResponseHead,
    ServerCodec,
)
from hotswap.proxy.outcome import CLIENT_GONE_STATUS, Outcome
from hotswap.proxy.routes import Backend
from hotswap.proxy.timers import now
from hotswap.proxy.tunnel import Tunnel
from hotswap.proxy.upstream import RECEIVE_SIZE, UpstreamConnection

log = logging.getLogger(__name__)

# Methods that may be sent again on a fresh connection when a reused one failed
# after the request reached it (RFC 9110 9.2.2).
IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
FLUSH_SIZE: Final = 64 * 1024
_CLOSE: Final = (b"connection", b"close")
_STS: Final = b"strict-transport-security"
# What a client is told of an upstream failure; the cause (addresses, the bytes the
# upstream sent) goes to the log only, as nginx and Caddy do.
_PUBLIC_DETAIL: Final = {
    502: "the app could not answer this request",
    504: "the app did not answer in time",
}


class UpstreamBroken(UpstreamError):
    """The upstream failed after the response head was sent: close the client connection."""


class BodyTooLarge(Exception):
    """The request body crossed server.max_body_size."""


class _Stale(Exception):
    """A reused upstream connection failed before any response byte (retry candidate)."""

    def __init__(self, cause: BaseException, *, sent: bool) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.cause = cause
        self.sent = sent  # the request bytes were handed to the kernel


class Exchange:
    """The state of one forwarded request (one per request; no task unless it has a body)."""

    __slots__ = (
        "backend",
        "body_error",
        "client",
        "codec",
        "head_deadline",
        "outcome",
        "received",
        "request",
        "tunnel",
        "up",
        "watch_client",
        "wrote",
    )

    def __init__(
        self,
        client: Client,
        codec: ServerCodec,
        request: RequestHead,
        backend: Backend,
        outcome: Outcome,
    ) -> None:
        self.client = client
        self.codec = codec
        self.request = request
        self.backend = backend
        self.outcome = outcome
        self.up: UpstreamConnection | None = None
        self.received = False  # any byte of the response arrived
        self.head_deadline = math.inf  # the response head is due by then
        self.watch_client = True  # no body task reads the client: watch it while waiting
        self.body_error: BaseException | None = None
        self.tunnel: Tunnel | None = None
        self.wrote = False  # a byte of the response reached the client

    async def run(self) -> None:
        """Forward the request; every failure ends in `outcome` (status, close)."""
        client = self.client
        backend = self.backend
        outcome = self.outcome
        try:
            await self._exchange()
        except ClientGone as exc:
            outcome.status = CLIENT_GONE_STATUS
            outcome.close = True
            backend.stats.client_aborts += 1
            log.info(
                "client aborted host=%s backend=%s client=%s cause=%s",
                outcome.host,
                backend.name,
                client.peer,
                exc,
            )
        except BodyTooLarge:
            limit = client.config.max_body_size
            await self._fail(413, f"the body exceeds {limit} bytes", close=True)
        except ProtocolError as exc:  # the client's body was malformed
            await self._fail(exc.status_hint, str(exc), close=True)
        except UpstreamBroken as exc:
            backend.stats.errors += 1
            outcome.close = True
            log.warning(
                "upstream failed mid-response host=%s backend=%s status=%d cause=%s",
                outcome.host,
                backend.name,
                outcome.status,
                exc,
            )
        except UpstreamError as exc:
            backend.stats.errors += 1
            if isinstance(exc, UpstreamConnectError):
                backend.stats.connect_errors += 1
                outcome.connect_error = True
            log.warning(
                "upstream error host=%s backend=%s status=%d cause=%s",
                outcome.host,
                backend.name,
                exc.http_status,
                exc,
            )
            await self._fail(exc.http_status, _PUBLIC_DETAIL.get(exc.http_status, ""))
        finally:
            client.watch(False)  # whatever began a watch (the body task may have)
            up = self.up
            if up is not None and self.tunnel is None:
                up.pool.release(up)  # closes it unless the exchange completed cleanly

    async def _fail(self, status: int, detail: str, *, close: bool = False) -> None:
        """Answer with an error page if no response head was sent yet, else close."""
        up = self.up
        if up is not None:
            self.up = None
            up.pool.discard(up)
        outcome = self.outcome
        codec = self.codec
        try:
            if not codec.can_respond:
                outcome.close = True
                if self.wrote:
                    return
                # A response head was serialised but nothing was written (the request
                # body turned out malformed while the upstream answered early): the
                # client still gets its error (send_error writes it past the codec).
            outcome.status = status
            await self.client.send_error(status, detail, close=close or not codec.peer_done)
        except ClientGone:
            outcome.close = True

    # -- the exchange ----------------------------------------------------------------

    async def _exchange(self) -> None:
        request = self.request
        client = self.client
        has_body = request.has_body
        upgrade = is_upgrade_request(request.headers) if request.upgrade else None
        if upgrade is not None and upgrade != b"websocket":
            # Only WebSocket upgrades become tunnels (their frames are tracked, so a
            # deploy can close them cleanly); h2c and others go on as plain HTTP/1.1.
            upgrade = None
        request_id = client.new_request_id()
        self.outcome.request_id = request_id
        target, headers = upstream_request(
            request.target,
            request.headers,
            route_host=self.outcome.host,
            client_ip=client.peer,
            scheme=client.scheme,
            trusted=client.trusted,
            request_id=request_id,
            length=request.length,
            chunked=request.chunked,
            expect=request.expect_continue,
            upgrade=upgrade,
            strip_prefix=self.backend.strip_prefix,  # a path route's strip_prefix
        )
        pool = self.backend.pool
        for attempt in (0, 1):
            # The retry never takes another pooled connection: the one that failed may
            # not be the only one the upstream is closing (a restart, a keep-alive timeout).
            up = pool.take_idle() if not attempt else None
            if up is None:
                up = await self._connect()
            self.up = up
            try:
                payload = up.codec.request(request.method, target, headers)
                if not has_body:
                    payload += up.codec.end()
                    await self._send_upstream(payload)
                    self.head_deadline = now() + client.config.upstream_response_timeout
                    head = await self._read_response_head()
                else:
                    await self._send_upstream(payload)
                    head = await self._with_request_body()
                break
            except _Stale as exc:
                pool.discard(up)
                self.up = None
                # Retry once: when nothing reached the upstream, or an idempotent
                # request without a body (nothing of the client's was consumed).
                replayable = not has_body and request.method in IDEMPOTENT
                if attempt or not (not exc.sent or replayable):
                    raise UpstreamProtocolError(
                        f"upstream closed the connection before responding: {exc}"
                    ) from exc.cause
                log.debug("retrying on a fresh connection backend=%s", self.backend.name)
        if head.status == 101 and upgrade is not None:
            await self._upgrade(head)
            return
        if not has_body:
            await self._stream_response(head)

    async def _connect(self) -> UpstreamConnection:
        # A new connection is the uncommon path (connections are pooled): a scope of
        # its own keeps the connect timeout's 502 apart from the exchange's deadline.
        timeout = self.client.config.upstream_connect_timeout
        pool = self.backend.pool
        self.client.deadline_at(Phase.NONE, math.inf)  # what reading the head left is stale
        try:
            with trio.fail_after(timeout):
                return await pool.connect(self.client.config.http_parser)
        except trio.TooSlowError:
            raise UpstreamConnectError(
                f"connect to {pool.address} timed out after {timeout}s"
            ) from None
        except OSError as exc:
            raise UpstreamConnectError(f"connect to {pool.address} failed: {exc}") from exc

    async def _send_upstream(self, data: bytes, *, own_scope: bool = False) -> None:
        """Write to the upstream; a write that waits is bounded like a response that does not
        come, by the connection's deadline unless the caller has a scope of its own (the
        request-body task, beside the response side's waits)."""
        up = self.up
        assert up is not None
        transport = up.transport
        try:
            sent = transport.send_nowait(data)
            if sent < len(data):
                if not own_scope:
                    self.client.deadline_at(
                        Phase.UPSTREAM,
                        now() + self.client.config.upstream_response_timeout,
                    )
                await transport.send(data[sent:])
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if up.reused and not self.received:
                raise _Stale(exc, sent=False) from exc
            raise UpstreamProtocolError(f"write to upstream failed: {exc}") from exc

    async def _receive_upstream(self) -> bytes:
        """Read from the upstream; a wait is bounded by the head deadline (before the
        head) or upstream_response_timeout (between body reads), and watched."""
        up = self.up
        assert up is not None
        transport = up.transport
        client = self.client
        try:
            data = transport.receive_nowait(RECEIVE_SIZE)
            if data is None:
                deadline = self.head_deadline
                if self.outcome.status:
                    deadline = now() + client.config.upstream_response_timeout
                client.deadline_at(Phase.UPSTREAM, deadline)
                watch = self.watch_client
                if watch:
                    client.watch(True)
                try:
                    data = await transport.receive_after_wait(RECEIVE_SIZE)
                finally:
                    client.watch(False)  # also ends a watch the body task began
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if up.reused and not self.received:
                raise _Stale(exc, sent=True) from exc
            if self.outcome.status:
                raise UpstreamBroken(f"read from upstream failed: {exc}") from exc
            raise UpstreamProtocolError(f"read from upstream failed: {exc}") from exc
        return data

    async def _read_response_head(self) -> ResponseHead:
        up = self.up
        assert up is not None
        codec = up.codec
        while True:
            try:
                event = codec.next_event()
            except ProtocolError as exc:
                if not self.received and up.reused:
                    raise _Stale(exc, sent=True) from exc
                raise UpstreamProtocolError(f"invalid response from upstream: {exc}") from exc
            if event is NEED_DATA:
                data = await self._receive_upstream()
                if data:
                    self.received = True
                codec.receive(data)
            elif type(event) is ResponseHead:
                assert isinstance(event, ResponseHead)
                if event.status >= 200 or event.status == 101:
                    self.outcome.status = event.status
                    return event
                # Other 1xx (100, 103) are not relayed: we answer 100 ourselves.
            else:
                raise UpstreamProtocolError(f"unexpected {event!r} before the response head")

    async def _stream_response(self, head: ResponseHead) -> None:
        """Send the response head and stream the body, one read per write."""
        up = self.up
        assert up is not None
        client = self.client
        ccodec = self.codec
        codec = up.codec
        outcome = self.outcome
        headers = response_headers_for_client(head.headers, upgrade=False)
        if head.length is not None:
            headers.append((b"content-length", b"%d" % head.length))
        hsts = client.hsts
        if hsts is not None and not any(name == _STS for name, _ in headers):
            headers.append((_STS, hsts))  # the app's own value, if it sent one, wins
        if client.draining or not ccodec.peer_done:
            # Answered before the request body was read to its end: the connection
            # closes after this response, so say so (no keep-alive to count on).
            headers.append(_CLOSE)
        out = [ccodec.response(head.status, headers, head.reason)]
        size = 0
        while True:
            try:
                event = codec.next_event()
            except ProtocolError as exc:
                if not self.wrote:  # nothing reached the client yet: it gets its 502
                    raise UpstreamProtocolError(f"invalid response from upstream: {exc}") from exc
                raise UpstreamBroken(f"invalid response body from upstream: {exc}") from exc
            if event is NEED_DATA:
                if out:
                    await client.send(b"".join(out))
                    self.wrote = True
                    out.clear()
                    size = 0
                codec.receive(await self._receive_upstream())
            elif type(event) is Body:
                assert isinstance(event, Body)
                chunk = ccodec.body(event.data)
                outcome.sent += len(event.data)
                out.append(chunk)
                size += len(chunk)
                if size >= FLUSH_SIZE:
                    await client.send(b"".join(out))
                    self.wrote = True
                    out.clear()
                    size = 0
            elif event is END:
                out.append(ccodec.end())
                await client.send(b"".join(out))
                self.wrote = True
                return
            elif event is CLOSED:
                raise UpstreamBroken("upstream closed the connection mid-response")

    # -- request bodies ----------------------------------------------------------------

    async def _with_request_body(self) -> ResponseHead:
        """Stream the request body while waiting for (and streaming) the response.

        Both directions run at once: an upstream may answer before it has read the
        whole body, and a full-duplex upstream must not deadlock against us. The
        response head's deadline starts once the body is sent.
        """
        head: ResponseHead | None = None
        self.watch_client = False  # the body task reads the client socket
        self.head_deadline = math.inf
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._body_task, nursery.cancel_scope)
            try:
                head = await self._read_response_head()
                if head.status == 101:
                    nursery.cancel_scope.cancel()
                else:
                    await self._stream_response(head)
                    nursery.cancel_scope.cancel()  # the body may be unfinished: both close
            except Exception as exc:  # re-raised below, outside the nursery's group
                self.body_error = self.body_error or exc
                nursery.cancel_scope.cancel()
        if self.body_error is not None:
            raise self.body_error
        assert head is not None
        return head

    async def _body_task(self, scope: trio.CancelScope) -> None:
        try:
            await self._send_request_body()
        except (ClientGone, BodyTooLarge, ProtocolError, UpstreamTimeoutError) as exc:
            if self.body_error is None:
                self.body_error = exc
            scope.cancel()
        except (UpstreamError, _Stale):
            # The upstream stopped reading (it may be answering early, e.g. 413):
            # stop sending and let the response side report what happened.
            pass

    async def _send_body_upstream(self, data: bytes) -> None:
        """Send body bytes; an upstream that reads none of them for
        upstream_response_timeout is given up (504), so the exchange cannot hang."""
        timeout = self.client.config.upstream_response_timeout
        with trio.move_on_after(timeout):
            await self._send_upstream(data, own_scope=True)
            return
        raise UpstreamTimeoutError(
            f"the upstream read nothing of the request body for upstream_response_timeout="
            f"{timeout}s"
        )

    async def _send_request_body(self) -> None:
        client = self.client
        ccodec = self.codec
        up = self.up
        assert up is not None
        codec = up.codec
        limit = client.config.max_body_size
        total = 0
        out: list[bytes] = []
        while True:
            event = ccodec.next_event()
            if event is NEED_DATA:
                if out:
                    await self._send_body_upstream(b"".join(out))
                    out.clear()
                if ccodec.waiting_for_continue:
                    await client.send_interim(ccodec.continue_100())
                data = await client.receive()
                if not data:
                    raise ClientGone("client closed the connection mid-body")
                ccodec.receive(data)
            elif type(event) is Body:
                assert isinstance(event, Body)
                total += len(event.data)
                if limit and total > limit:
                    raise BodyTooLarge
                out.append(codec.body(event.data))
            elif event is END:
                out.append(codec.end())
                await self._send_body_upstream(b"".join(out))
                self.watch_client = True
                client.watch(True)  # the response side may be waiting already
                if not self.outcome.status:  # the head's deadline starts once the body is sent
                    self.head_deadline = now() + client.config.upstream_response_timeout
                    client.deadline_at(Phase.UPSTREAM, self.head_deadline)
                return
            else:
                raise ProtocolError(f"unexpected {event!r} in the request body")

    # -- upgrades ------------------------------------------------------------------------

    async def _upgrade(self, head: ResponseHead) -> None:
        up = self.up
        assert up is not None
        client = self.client
        if not up.codec.switched:
            raise UpstreamProtocolError("upstream sent 101 without a switch")
        headers = response_headers_for_client(head.headers, upgrade=True)
        self.outcome.status = 101
        await client.send(self.codec.response(101, headers, head.reason))
        self.wrote = True
        client.deadline_at(Phase.NONE, math.inf)  # the tunnel bounds its own writes
        tunnel = Tunnel(
            client.transport,
            up.transport,
            backend=self.backend.name,
            client_data=self.codec.trailing_data,
            upstream_data=up.codec.trailing_data,
            send_timeout=client.config.idle_timeout,
        )
        self.tunnel = tunnel
        inflight = self.backend.inflight
        inflight.request_to_tunnel(tunnel)
        client.open_tunnel(tunnel)
        try:
            await tunnel.run()
        finally:
            inflight.end_tunnel(tunnel)
            client.tunnel = None
            up.close()
