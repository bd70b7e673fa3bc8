"""One forwarded exchange: stream the request and the response both ways.

Bodies stream chunk by chunk: the next read waits for the previous write, so
memory does not grow with a body. Errors map to statuses here, where the policy
lives: connect failure 502, response head late 504, invalid response 502, client
gone 499 (logged only), upstream gone mid-body: the client connection is closed,
so a short body is never presented as complete. A pooled upstream connection
found stale is retried once on a fresh one when that cannot replay anything the
upstream acted on.
"""

from __future__ import annotations

import logging
import math
import socket
from typing import TYPE_CHECKING, Final

import trio

from hotswap.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from hotswap.http.headers import (
    FRAMING,
    is_upgrade_request,
    request_headers_for_upstream,
    response_headers_for_client,
)
from hotswap.http.host import origin_form, target_authority
from hotswap.proxy.codec import (
    CLOSED,
    END,
    NEED_DATA,
    Body,
    Headers,
    ProtocolError,
    RequestHead,
    ResponseHead,
)
from hotswap.proxy.sockio import receive, send_all
from hotswap.proxy.tunnel import Tunnel
from hotswap.proxy.upstream import RECEIVE_SIZE, UpstreamConnection

if TYPE_CHECKING:
    from hotswap.proxy.routes import Backend
    from hotswap.proxy.server import ClientConnection

log = logging.getLogger(__name__)

# An upstream read slower than this starts watching the client for a close, so a
# client that goes away cancels the upstream exchange at once; faster reads (most
# of them) pay for no watcher task.
ABORT_WATCH_DELAY: Final = 0.05
CLIENT_GONE_STATUS: Final = 499
# Methods that may be sent again on a fresh connection when a reused one failed
# after the request reached it (RFC 9110 9.2.2).
IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
FLUSH_SIZE: Final = 64 * 1024
_CHUNKED: Final = ((b"transfer-encoding", b"chunked"),)
_CLOSE: Final = ((b"connection", b"close"),)


class ClientGone(Exception):
    """The client closed its connection (or a write to it failed) mid-exchange."""


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


def _ambiguous_framing(headers: Headers) -> bool:
    """Both Content-Length and Transfer-Encoding (h11 lets TE win; we refuse both)."""
    names = {name for name, _ in headers if name in FRAMING}
    return len(names) == 2


def _raw_host(headers: Headers) -> str:
    """The client's Host value as sent (X-Forwarded-Host carries it, port included)."""
    for name, value in headers:
        if name == b"host":
            return value.decode("latin-1")
    return ""


def _content_length(headers: Headers) -> bytes | None:
    """The Content-Length value h11 validated (duplicates already collapsed)."""
    for name, value in headers:
        if name == b"content-length":
            return value
    return None


class Exchange:
    """The state of one forwarded request (one per request; no task unless needed)."""

    __slots__ = (
        "backend",
        "body_error",
        "chunked",
        "client",
        "connect_error",
        "expect",
        "head_deadline",
        "host",
        "length",
        "received",
        "request",
        "sent",
        "status",
        "tunnel",
        "up",
        "waiting_scope",
        "watch_client",
        "wrote",
    )

    def __init__(
        self,
        client: ClientConnection,
        request: RequestHead,
        backend: Backend,
        host: str,
        length: int | None,
        chunked: bool,
        expect: bool,
    ) -> None:
        self.client = client
        self.request = request
        self.backend = backend
        self.host = host
        self.length = length
        self.chunked = chunked
        self.expect = expect
        self.up: UpstreamConnection | None = None
        self.status = 0
        self.sent = 0  # body bytes written to the client
        self.received = False  # any byte of the response arrived
        self.head_deadline = math.inf
        self.waiting_scope: trio.CancelScope | None = None
        self.watch_client = True
        self.body_error: BaseException | None = None
        self.tunnel: Tunnel | None = None
        self.connect_error = False  # the backend could not be reached (for the metrics)
        self.wrote = False  # a byte of the response reached the client

    async def run(self) -> None:
        client = self.client
        backend = self.backend
        try:
            await self._exchange()
        except ClientGone as exc:
            self.status = CLIENT_GONE_STATUS
            backend.stats.client_aborts += 1
            log.info(
                "client aborted host=%s backend=%s client=%s cause=%s",
                self.host,
                backend.name,
                client.peer,
                exc,
            )
            raise
        except BodyTooLarge:
            limit = client.config.max_body_size
            await self._fail(413, f"the body exceeds {limit} bytes", close=True)
        except ProtocolError as exc:  # the client's body was malformed
            await self._fail(exc.status_hint, str(exc), close=True)
        except UpstreamBroken as exc:
            backend.stats.errors += 1
            log.warning(
                "upstream failed mid-response host=%s backend=%s status=%d cause=%s",
                self.host,
                backend.name,
                self.status,
                exc,
            )
            raise
        except UpstreamError as exc:
            backend.stats.errors += 1
            if isinstance(exc, UpstreamConnectError):
                backend.stats.connect_errors += 1
                self.connect_error = True
            log.warning(
                "upstream error host=%s backend=%s status=%d cause=%s",
                self.host,
                backend.name,
                exc.http_status,
                exc,
            )
            await self._fail(exc.http_status, str(exc))
        finally:
            up = self.up
            if up is not None and self.tunnel is None:
                up.pool.release(up)  # closes it unless the exchange completed cleanly

    async def _fail(self, status: int, detail: str, *, close: bool = False) -> None:
        """Answer with an error page if no response head was sent yet, else close."""
        up = self.up
        if up is not None:
            self.up = None
            up.pool.discard(up)
        client = self.client
        if not client.codec.can_respond:
            if self.wrote:
                raise UpstreamBroken(detail)
            # A response head was serialised but nothing was written (the request body
            # turned out malformed while the upstream answered early): the client still
            # gets its error, written past the codec, and the connection closes.
            self.status = status
            await client.send_final_error(status, detail)
            return
        self.status = status
        await client.send_error(status, detail, close=close or not client.codec.peer_done)

    # -- the exchange ----------------------------------------------------------------

    async def _exchange(self) -> None:
        request = self.request
        has_body = self.chunked or bool(self.length)
        upgrade = is_upgrade_request(request.headers)
        if upgrade is not None and upgrade != b"websocket":
            # Only WebSocket upgrades become tunnels (their frames are tracked, so a
            # deploy can close them cleanly); h2c and others go on as plain HTTP/1.1.
            upgrade = None
        authority = target_authority(request.target)
        if authority is None:
            sent_host = _raw_host(request.headers) or self.host
        else:
            sent_host = authority.decode("latin-1")
        headers = request_headers_for_upstream(
            request.headers,
            client_ip=self.client.peer,
            scheme="http",
            host=sent_host,
            upgrade=upgrade,
        )
        if authority is not None:
            # Routed by the target's authority: the app must see that host, not
            # another one the client put in Host (RFC 9112 §3.2.2).
            headers = [item for item in headers if item[0] != b"host"]
            headers.insert(0, (b"host", authority))
        if self.expect:  # answered here, when the body is wanted (RFC 9110 10.1.1)
            headers = [(n, v) for n, v in headers if n != b"expect"]
        if self.chunked:
            headers.extend(_CHUNKED)
        elif self.length is not None:
            headers.append((b"content-length", str(self.length).encode()))
        target = origin_form(request.target)
        pool = self.backend.pool
        for attempt in (0, 1):
            up = pool.take_idle()
            if up is None:
                up = await self._connect()
            self.up = up
            try:
                payload = up.codec.request(request.method, target, headers)
                if not has_body:
                    payload += up.codec.end()
                    await self._send_upstream(payload)
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
                retry = attempt == 0 and (not exc.sent or replayable)
                if not retry:
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
        timeout = self.client.config.upstream_connect_timeout
        address = self.backend.pool.address
        try:
            with trio.fail_after(timeout):
                return await self.backend.pool.connect()
        except trio.TooSlowError:
            raise UpstreamConnectError(f"connect to {address} timed out after {timeout}s") from None
        except OSError as exc:
            raise UpstreamConnectError(f"connect to {address} failed: {exc}") from exc

    async def _send_upstream(self, data: bytes) -> None:
        up = self.up
        assert up is not None
        try:
            await send_all(up.stream.socket, data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if up.reused and not self.received:
                raise _Stale(exc, sent=False) from exc
            raise UpstreamProtocolError(f"write to upstream failed: {exc}") from exc

    async def _receive_upstream(self) -> bytes:
        """Read from the upstream; a slow read watches the client and the head deadline."""
        up = self.up
        assert up is not None
        stream = up.stream
        try:
            with trio.CancelScope(deadline=trio.current_time() + ABORT_WATCH_DELAY):
                return await receive(stream.socket, RECEIVE_SIZE)
            return await self._receive_watched(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            if up.reused and not self.received:
                raise _Stale(exc, sent=True) from exc
            if self.status:
                raise UpstreamBroken(f"read from upstream failed: {exc}") from exc
            raise UpstreamProtocolError(f"read from upstream failed: {exc}") from exc

    async def _receive_watched(self, stream: trio.SocketStream) -> bytes:
        data: bytes | None = None
        error: Exception | None = None
        async with trio.open_nursery() as nursery:
            self.waiting_scope = nursery.cancel_scope
            nursery.cancel_scope.deadline = self.head_deadline
            if self.watch_client:
                nursery.start_soon(self._watch_client, nursery.cancel_scope)
            try:
                data = await receive(stream.socket, RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                error = exc
            nursery.cancel_scope.cancel()
        self.waiting_scope = None
        if error is not None:
            raise error
        if data is not None:
            return data
        if self.client.gone:
            raise ClientGone("connection closed by the client")
        raise UpstreamTimeoutError(
            "no response head within upstream_response_timeout="
            f"{self.client.config.upstream_response_timeout}s"
        )

    async def _watch_client(self, scope: trio.CancelScope) -> None:
        """Cancel `scope` if the client closes; stop watching if it sends more (pipelining)."""
        sock = self.client.stream.socket
        try:
            await trio.lowlevel.wait_readable(sock)
            peek = await sock.recv(1, socket.MSG_PEEK)
        except (OSError, trio.ClosedResourceError):
            peek = b""
        if not peek:
            self.client.gone = True
            scope.cancel()

    async def _read_response_head(self, *, start_timer: bool = True) -> ResponseHead:
        up = self.up
        assert up is not None
        codec = up.codec
        if start_timer:
            self.head_deadline = trio.current_time() + self.client.config.upstream_response_timeout
        try:
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
                        if _ambiguous_framing(event.headers):
                            # RFC 9112 6.3: a sign of response splitting; never relay it.
                            raise UpstreamProtocolError(
                                "invalid response from upstream: Content-Length with "
                                "Transfer-Encoding"
                            )
                        self.status = event.status
                        return event
                    # Other 1xx (100, 103) are not relayed: we answer 100 ourselves.
                else:
                    raise UpstreamProtocolError(f"unexpected {event!r} before the response head")
        finally:
            self.head_deadline = math.inf

    async def _stream_response(self, head: ResponseHead) -> None:
        """Send the response head and stream the body, one read per write."""
        up = self.up
        assert up is not None
        client = self.client
        ccodec = client.codec
        codec = up.codec
        headers = response_headers_for_client(head.headers, upgrade=False)
        length = _content_length(head.headers)
        if length is not None:
            headers.append((b"content-length", length))
        if client.server.draining or not ccodec.peer_done:
            # Answered before the request body was read to its end: the connection
            # closes after this response, so say so (no keep-alive to count on).
            headers.extend(_CLOSE)
        self.status = head.status
        out = [ccodec.response(head.status, headers, head.reason)]
        size = 0
        while True:
            try:
                event = codec.next_event()
            except ProtocolError as exc:
                raise UpstreamBroken(f"invalid response body from upstream: {exc}") from exc
            if event is NEED_DATA:
                if out:
                    await client.send(b"".join(out))
                    self.wrote = True
                    out.clear()
                    size = 0
                data = await self._receive_upstream()
                codec.receive(data)
            elif type(event) is Body:
                assert isinstance(event, Body)
                chunk = ccodec.body(event.data)
                self.sent += len(event.data)
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
        whole body, and a full-duplex upstream must not deadlock against us.
        """
        head: ResponseHead | None = None
        self.watch_client = False  # the body task reads the client socket
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._body_task, nursery.cancel_scope)
            try:
                head = await self._read_response_head(start_timer=False)
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
            await self._send_upstream(data)
            return
        raise UpstreamTimeoutError(
            f"the upstream read nothing of the request body for upstream_response_timeout="
            f"{timeout}s"
        )

    async def _send_request_body(self) -> None:
        client = self.client
        ccodec = client.codec
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
                    await client.send(ccodec.continue_100())
                data = None
                try:
                    # A body that stalls for idle_timeout ends the exchange: 408, close
                    # (nginx: client_body_timeout), so it cannot hold the backend forever.
                    with trio.move_on_after(client.config.idle_timeout):
                        data = await receive(client.stream.socket, RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise ClientGone(f"read from client failed: {exc}") from exc
                if data is None:
                    raise ProtocolError(
                        "the request body stalled for idle_timeout="
                        f"{client.config.idle_timeout:g}s",
                        408,
                    )
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
                if not self.status:  # the response-head timer starts once the request is sent
                    deadline = trio.current_time() + client.config.upstream_response_timeout
                    self.head_deadline = deadline
                    if self.waiting_scope is not None:
                        self.waiting_scope.deadline = deadline
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
        self.status = 101
        payload = client.codec.response(101, headers, head.reason)
        await client.send(payload)
        self.wrote = True
        tunnel = Tunnel(
            client.stream,
            up.stream,
            backend=self.backend,
            client_data=client.codec.trailing_data,
            upstream_data=up.codec.trailing_data,
            send_timeout=client.config.idle_timeout,
        )
        self.tunnel = tunnel
        self.backend.inflight.request_to_tunnel()
        client.tunnel = tunnel
        try:
            await tunnel.run()
        finally:
            self.backend.inflight.end_tunnel()
            client.tunnel = None
            up.close()
