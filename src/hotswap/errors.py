"""One error tree for hotswap; each kind maps to one exit code or HTTP status at the edges."""

from __future__ import annotations


class HotswapError(Exception):
    """Base of every error hotswap raises on purpose.

    `exit_code` is what the CLI exits with, `http_status` what the admin API or
    the proxy answers with when this error reaches them.
    """

    exit_code = 1
    http_status = 500


class ConfigError(HotswapError):
    """The configuration file is missing, unreadable or invalid.

    `problems` holds one human-readable line per problem, each naming the file
    and the key path, so that all of them can be reported together.
    """

    exit_code = 2
    http_status = 400

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class ContainerRuntimeError(HotswapError):
    """The container runtime (Docker) failed or is unreachable."""

    http_status = 502


class ContainerNotFoundError(ContainerRuntimeError):
    """The container does not exist (any more)."""


class ImageError(ContainerRuntimeError):
    """An image could not be pulled, found or inspected (e.g. no port to route to)."""


class EventStreamLost(ContainerRuntimeError):
    """Docker's events stream broke while someone was waiting on it."""


class ReadinessError(HotswapError):
    """A new container did not become ready (exited, unhealthy, timed out)."""

    http_status = 502


class DrainError(HotswapError):
    """Draining the old container failed."""


class DeployError(HotswapError):
    """A deploy could not run or failed (wraps the cause)."""

    http_status = 409


class UnknownDomainError(HotswapError):
    """A command named a domain that has no route."""

    http_status = 404


class UpstreamError(HotswapError):
    """Talking to a backend failed; the proxy answers 502."""

    http_status = 502


class UpstreamConnectError(UpstreamError):
    """The backend refused or did not accept a connection in time (502)."""


class UpstreamTimeoutError(UpstreamError):
    """The backend did not send its response head in time (504)."""

    http_status = 504


class UpstreamProtocolError(UpstreamError):
    """The backend sent an invalid HTTP response (502)."""


class AdminClientError(HotswapError):
    """The CLI could not talk to the admin API (server down, bad token, ...)."""


class TakeoverError(HotswapError):
    """`serve --takeover` could not take over a running `serve` (which keeps serving)."""


class TakeoverRefused(TakeoverError):
    """The takeover was refused: the old process is busy, or the configs' listen
    addresses differ, or its deploys did not finish in time."""


class PredecessorGone(TakeoverError):
    """The old process went away before it handed its sockets over."""
