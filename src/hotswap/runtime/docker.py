"""DockerRuntime: the ContainerRuntime protocol on the docker SDK.

Every SDK call runs in a worker thread through `trio.to_thread.run_sync` with
the runtime's own CapacityLimiter, so a slow daemon never blocks the event loop
and never takes more than MAX_THREADS threads. A call that changes state
(create, start, stop, remove) is never abandoned on cancellation: the caller's
cancel waits for it, so we always know whether the container exists. Reads and
pulls may be abandoned (a pull left running only fills the image store).

Docker exceptions become ContainerRuntimeError / ImageError (`raise ... from`),
with messages naming the container or image. The events stream is driven by
`run()`, which the app starts in its root nursery.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

import docker
import docker.errors
import docker.types
import requests.exceptions
import trio

from hotswap.config import DockerConfig, NetworkMode, PullPolicy
from hotswap.deploy.unwrap import first_error
from hotswap.errors import ContainerNotFoundError, ContainerRuntimeError, ImageError
from hotswap.runtime.base import (
    LABEL_MANAGED,
    ContainerEvent,
    ContainerInfo,
    ContainerSpec,
    EventReceiver,
    ImageEvent,
    ImageInfo,
    LogLine,
    Preflight,
)
from hotswap.runtime.events import EVENT_FILTERS, EventHub, EventStream
from hotswap.runtime.images import PullDecision, image_info_from_inspect, pull_decision
from hotswap.runtime.parse import (
    LABEL_CONTAINER_PORT,
    LABEL_HOST_PORT,
    LOOPBACK,
    container_env,
    container_info_from_inspect,
    container_labels,
    container_name,
    log_line,
)
from hotswap.runtime.ports import PortAllocator

log = logging.getLogger(__name__)

MAX_THREADS = 8
MAX_LOG_STREAMS = 16  # `hotswap logs` readers at once (each holds a thread while it reads)
LOG_BUFFER = 64  # lines between the log thread and its reader
# Errors the SDK lets through besides its own (e.g. the socket is gone).
_SDK_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)

R = TypeVar("R")


class LogStream(Protocol):
    """Docker's log stream (docker's CancellableStream): chunks of bytes, close()able from
    another thread."""

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...


class DockerRuntime:
    """The docker SDK behind the ContainerRuntime protocol (see runtime/base.py)."""

    def __init__(
        self,
        docker_config: DockerConfig,
        *,
        max_threads: int = MAX_THREADS,
        ports: PortAllocator | None = None,
    ) -> None:
        self._config = docker_config
        self._limiter = trio.CapacityLimiter(max_threads)
        self._log_limiter = trio.CapacityLimiter(MAX_LOG_STREAMS)
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()
        self._ports = ports or PortAllocator()
        self.events = EventHub()

    # -- lifecycle -----------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drive the events stream (forever; cancel to stop). started() once connected."""
        await self.events.run(self._open_events, self._resolve_image_id, task_status=task_status)

    def close(self) -> None:
        """Close the SDK client's connections (the app calls it after the nursery ends)."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _docker(self) -> docker.DockerClient:
        """The SDK client, created on first use (in a worker thread: it asks the daemon
        for its API version)."""
        with self._client_lock:
            if self._client is None:
                if self._config.host:
                    self._client = docker.DockerClient(base_url=self._config.host)
                else:
                    self._client = docker.DockerClient.from_env()
            return self._client

    async def _call(
        self,
        fn: Callable[[docker.DockerClient], R],
        what: str,
        *,
        mutating: bool,
        error: type[ContainerRuntimeError] = ContainerRuntimeError,
    ) -> R:
        """Run `fn(client)` in a worker thread; translate SDK errors to `error` naming `what`."""

        def call() -> R:
            return fn(self._docker())

        try:
            return await trio.to_thread.run_sync(
                call, abandon_on_cancel=not mutating, limiter=self._limiter
            )
        except docker.errors.NotFound as exc:
            if error is not ContainerRuntimeError:
                raise error(f"{what}: not found ({_explain(exc)})") from exc
            raise ContainerNotFoundError(f"{what}: not found ({_explain(exc)})") from exc
        except _SDK_ERRORS as exc:
            raise error(f"{what}: {_explain(exc)}") from exc

    # -- images --------------------------------------------------------------------

    async def image_info(self, ref: str) -> ImageInfo | None:
        def inspect(client: docker.DockerClient) -> dict[str, Any] | None:
            try:
                data: dict[str, Any] = client.api.inspect_image(ref)
            except docker.errors.ImageNotFound:
                return None
            return data

        data = await self._call(inspect, f"inspect image {ref}", mutating=False, error=ImageError)
        return None if data is None else image_info_from_inspect(ref, data)

    async def ensure_image(self, ref: str, policy: PullPolicy) -> ImageInfo:
        """The local image for `ref`, pulled first as `policy` says.

        A failed pull falls back to the local image (with a warning) when there is one,
        so a locally built image deploys under `always` / `if-tag-changed` with no registry.
        """
        local = await self.image_info(ref)
        if pull_decision(ref, policy, present=local is not None) is PullDecision.USE_LOCAL:
            assert local is not None
            return local
        try:
            await self._call(
                functools.partial(_pull, ref=ref),
                f"pull image {ref}",
                mutating=False,
                error=ImageError,
            )
        except ImageError as exc:
            if local is None:
                raise ImageError(
                    f"image {ref} is not present locally and could not be pulled: {exc}"
                ) from exc
            log.warning(
                "pull failed, using the local image image=%s id=%s policy=%s error=%s",
                ref,
                local.id[:19],
                policy,
                exc,
            )
            return local
        pulled = await self.image_info(ref)
        if pulled is None:
            raise ImageError(f"image {ref}: pulled, but no local image has that name")
        if local is not None and local.id != pulled.id:
            log.info(
                "pulled a new image image=%s old=%s new=%s", ref, local.id[:19], pulled.id[:19]
            )
        return pulled

    def _resolve_image_id(self, ref: str) -> str | None:
        """Blocking; for the events thread (a `pull` event names only the ref)."""
        try:
            return str(self._docker().api.inspect_image(ref)["Id"])
        except docker.errors.ImageNotFound:
            return None

    # -- containers ------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        """Create (not start) the container for `spec`; see DESIGN.md for labels and name.

        Host mode: a free loopback port is reserved and passed as $PORT (and kept in
        label hotswap.host-port). Bridge mode: spec.container_port is published on
        127.0.0.1 with an ephemeral host port, read back by start()/inspect(), and the
        container joins spec.networks before it starts (if one cannot be joined, the
        container is removed and the error raised: nothing is left behind).
        """
        name = container_name(spec.domain, spec.deploy_id)
        host_port: int | None = None
        kwargs = host_config_options(spec)
        if spec.network_mode is NetworkMode.HOST:
            if spec.networks:
                raise ContainerRuntimeError(
                    f"container {name}: a container on the host network cannot join "
                    f"networks {', '.join(spec.networks)} (needs network_mode bridge)"
                )
            host_port = self._ports.allocate()
            kwargs["network_mode"] = "host"
        else:
            if spec.container_port is None:
                raise ImageError(
                    f"container {name}: no port to publish for image {spec.image} "
                    "(set the route's port, label hotswap.port or EXPOSE one)"
                )
            kwargs["port_bindings"] = {spec.container_port: (LOOPBACK,)}
        labels = container_labels(spec, host_port)
        env = container_env(spec, host_port)
        ports = [spec.container_port] if "port_bindings" in kwargs else None

        def create(client: docker.DockerClient) -> str:
            host_config = client.api.create_host_config(**kwargs)
            result = client.api.create_container(
                image=spec.image_id or spec.image,
                name=name,
                environment=env,
                labels=labels,
                host_config=host_config,
                ports=ports,
                detach=True,
                command=list(spec.command) or None,
                user=spec.user or None,
            )
            container_id = str(result["Id"])
            try:
                for network in spec.networks:
                    client.api.connect_container_to_network(container_id, network)
            except BaseException:
                client.api.remove_container(container_id, force=True, v=True)
                raise
            return container_id

        try:
            container_id = await self._call(
                create, f"create container {name} ({spec.image})", mutating=True
            )
        except BaseException:
            if host_port is not None:
                self._ports.release(host_port)
            raise
        if host_port is not None:
            self._ports.assign(host_port, container_id)
        log.info(
            "container created container=%s name=%s domain=%s deploy=%s image=%s port=%s "
            "restart=%s volumes=%d networks=%s",
            container_id[:12],
            name,
            spec.domain,
            spec.deploy_id,
            spec.image,
            host_port or spec.container_port,
            spec.restart,
            len(spec.volumes),
            ",".join(spec.networks) or "-",
        )
        return container_id

    async def preflight(self, spec: ContainerSpec) -> list[Preflight]:
        """Networks and bind-mount sources that do not exist, more CPUs than the host has.

        Bind-mount sources are looked up on this machine: hotswap runs on the Docker host.
        """

        def check(client: docker.DockerClient) -> list[Preflight]:
            problems: list[Preflight] = []
            for index, volume in enumerate(spec.volumes):
                if volume.is_bind and not os.path.exists(volume.source):
                    problems.append(
                        Preflight(
                            f"volumes[{index}]",
                            f"bind-mount source {volume.source} does not exist on this host",
                        )
                    )
            for network in spec.networks:
                try:
                    client.api.inspect_network(network)
                except docker.errors.NotFound:
                    problems.append(
                        Preflight(
                            "networks",
                            f'network "{network}" does not exist; create it with: '
                            f"docker network create {network}",
                        )
                    )
            if spec.cpus:
                available = int(client.info().get("NCPU") or 0)
                if available and spec.cpus > available:
                    problems.append(
                        Preflight(
                            "cpus", f"{spec.cpus:g} CPUs asked, the Docker host has {available}"
                        )
                    )
            return problems

        return await self._call(check, f"check the options of {spec.domain}", mutating=False)

    async def start(self, container_id: str) -> ContainerInfo:
        """Start it; the returned state carries the address (bridge mode: read back now).

        Raises ContainerRuntimeError if it runs but has no address (Docker published no
        port, e.g. an engine started with --bridge=none); the caller removes it.
        """
        await self._call(
            lambda c: c.api.start(container_id),
            f"start container {container_id[:12]}",
            mutating=True,
        )
        info = await self.inspect(container_id)
        if info.running and info.address is None:
            port = info.labels.get(LABEL_CONTAINER_PORT, "?")
            raise ContainerRuntimeError(
                f"container {info.name}: Docker published no host port for container port "
                f"{port} (no bridge network? an engine run with --bridge=none needs "
                'network_mode = "host")'
            )
        return info

    async def inspect(self, container_id: str) -> ContainerInfo:
        data = await self._call(
            lambda c: c.api.inspect_container(container_id),
            f"inspect container {container_id[:12]}",
            mutating=False,
        )
        info = container_info_from_inspect(data)
        self._note_port(info)
        return info

    async def stop(self, container_id: str, grace: float) -> None:
        """Stop it (SIGTERM, SIGKILL after `grace` seconds); no error if stopped or gone."""
        seconds = max(0, round(grace))

        def stop(client: docker.DockerClient) -> None:
            try:
                client.api.stop(container_id, timeout=seconds)
            except docker.errors.NotFound:
                log.debug("stop: container already gone container=%s", container_id[:12])

        await self._call(stop, f"stop container {container_id[:12]}", mutating=True)
        log.info("container stopped container=%s grace=%ss", container_id[:12], seconds)

    async def remove(self, container_id: str) -> None:
        def remove(client: docker.DockerClient) -> None:
            try:
                client.api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or "in progress" not in str(exc):
                    raise

        await self._call(remove, f"remove container {container_id[:12]}", mutating=True)
        self._ports.release_owner(container_id)
        log.info("container removed container=%s", container_id[:12])

    async def logs_tail(self, container_id: str, lines: int) -> str:
        def logs(client: docker.DockerClient) -> bytes:
            data: bytes = client.api.logs(
                container_id, stdout=True, stderr=True, tail=max(lines, 0), timestamps=False
            )
            return data

        data = await self._call(logs, f"logs of container {container_id[:12]}", mutating=False)
        return data.decode("utf-8", errors="replace")

    @asynccontextmanager
    async def open_logs(
        self, container_id: str, *, follow: bool, tail: int | None, since: float | None
    ) -> AsyncIterator[AsyncIterator[LogLine]]:
        """The container's log lines while the context is open (see base.ContainerRuntime).

        A worker thread of the log limiter (a follow holds it for as long as it lasts, so
        it never takes one of the SDK calls' threads) reads Docker's stream and hands each
        line over a small channel: a slow reader slows the thread, nothing piles up.
        Leaving the context closes the stream, which ends the thread's blocking read.
        """
        what = f"logs of container {container_id[:12]}"

        def open_stream(client: docker.DockerClient) -> LogStream:
            stream: LogStream = client.api.logs(
                container_id,
                stdout=True,
                stderr=True,
                stream=True,
                follow=follow,
                timestamps=True,
                tail="all" if tail is None else max(tail, 0),
                since=since if since and since > 0 else None,
            )
            return stream

        stream = await self._call(open_stream, what, mutating=True)
        send, receive = trio.open_memory_channel[LogLine](LOG_BUFFER)

        def pump() -> None:
            try:
                for line in _lines(stream):
                    trio.from_thread.run(send.send, log_line(line))
            except trio.BrokenResourceError:
                pass  # the reader left

        async def run_pump() -> None:
            try:
                await trio.to_thread.run_sync(pump, limiter=self._log_limiter)
            except _SDK_ERRORS as exc:
                raise ContainerRuntimeError(f"{what}: {_explain(exc)}") from exc
            finally:
                send.close()  # on the Trio thread: channels are not thread-safe

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_pump)
                try:
                    with receive:
                        yield receive
                finally:
                    _close_quietly(stream)
        except BaseExceptionGroup as group:
            raise first_error(group) from None

    async def list_managed(self) -> list[ContainerInfo]:
        """Every managed container, running or not, oldest first."""

        def list_all(client: docker.DockerClient) -> list[dict[str, Any]]:
            found = client.api.containers(all=True, filters={"label": f"{LABEL_MANAGED}=true"})
            result = []
            for entry in found:
                try:
                    result.append(client.api.inspect_container(entry["Id"]))
                except docker.errors.NotFound:
                    continue  # removed between list and inspect
            return result

        data = await self._call(list_all, "list managed containers", mutating=False)
        infos = sorted((container_info_from_inspect(d) for d in data), key=lambda i: i.created)
        for info in infos:
            self._note_port(info)
        return infos

    def _note_port(self, info: ContainerInfo) -> None:
        """Keep the host port of a container we did not create in this process (adopted)."""
        port = info.labels.get(LABEL_HOST_PORT, "")
        if port.isdigit():
            self._ports.assign(int(port), info.id)

    # -- events ----------------------------------------------------------------------

    def subscribe(self, container_id: str) -> AbstractContextManager[EventReceiver[ContainerEvent]]:
        return self.events.subscribe(container_id)

    def subscribe_images(self) -> AbstractContextManager[EventReceiver[ImageEvent]]:
        return self.events.subscribe_images()

    def subscribe_containers(self) -> AbstractContextManager[EventReceiver[ContainerEvent]]:
        return self.events.subscribe_containers()

    def _open_events(self, since: float | None) -> EventStream:
        """Blocking; for the events task."""
        stream: EventStream = self._docker().api.events(
            decode=True, filters=EVENT_FILTERS, since=None if since is None else f"{since:.9f}"
        )
        return stream


def host_config_options(spec: ContainerSpec) -> dict[str, Any]:
    """create_host_config() arguments for the spec's restart policy, mounts and limits."""
    options: dict[str, Any] = {"restart_policy": {"Name": spec.restart.value}}
    if spec.volumes:
        options["mounts"] = [
            docker.types.Mount(
                target=volume.target,
                source=volume.source,
                type="bind" if volume.is_bind else "volume",
                read_only=volume.read_only,
            )
            for volume in spec.volumes
        ]
    if spec.memory:
        options["mem_limit"] = spec.memory
    if spec.cpus:
        options["nano_cpus"] = round(spec.cpus * 1e9)
    return options


def _lines(stream: Iterable[bytes]) -> Iterator[str]:
    """The text lines of Docker's log stream; its frames may end mid-line."""
    pending = b""
    for chunk in stream:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode("utf-8", "replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", "replace")


def _close_quietly(stream: LogStream) -> None:
    try:
        stream.close()
    except Exception as exc:  # already closed, or half torn down by the SDK
        log.debug("closing a log stream failed error=%s", exc)


def _pull(client: docker.DockerClient, *, ref: str) -> None:
    """Pull `ref`; the daemon reports most failures inside the progress stream."""
    messages: Iterator[Mapping[str, Any]] = client.api.pull(ref, stream=True, decode=True)
    for message in messages:
        if "error" in message:
            detail = message.get("errorDetail", {}).get("message") or message["error"]
            raise docker.errors.APIError(str(detail))


def _explain(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot reach the Docker daemon ({exc})"
    return str(exc) or type(exc).__name__
