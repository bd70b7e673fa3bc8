"""The admin API's request routing and authentication, without I/O.

A route is a method and a path template ("/v1/deploy/{domain}"); a template
segment in braces matches one non-empty path segment. Failures are HttpError
with the status and message the server sends as `{"error": message}`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlsplit

H = TypeVar("H")

MAX_BODY = 64 * 1024  # admin request bodies are tiny JSON documents


class HttpError(Exception):
    """An error answer: status, message (sent as {"error": message}) and extra headers."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


@dataclass(frozen=True)
class Match(Generic[H]):
    handler: H
    params: Mapping[str, str] = field(default_factory=dict)


class Router(Generic[H]):
    """Method + path template -> handler."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, list[str], H]] = []

    def add(self, method: str, template: str, handler: H) -> None:
        self._routes.append((method.upper(), _segments(template), handler))

    def resolve(self, method: str, target: str) -> Match[H]:
        """The handler for `method` and request target `target` (query string ignored).

        Raises HttpError 404 if no template matches the path, 405 (with Allow) if
        templates match but none for this method.
        """
        path = urlsplit(target).path
        segments = _segments(path)
        allowed: list[str] = []
        for route_method, template, handler in self._routes:
            params = _match(template, segments)
            if params is None:
                continue
            if route_method == method.upper():
                return Match(handler, params)
            allowed.append(route_method)
        if allowed:
            allow = ", ".join(sorted(set(allowed)))
            message = f"method {method} not allowed on {path}; use {allow}"
            raise HttpError(405, message, [("Allow", allow)])
        raise HttpError(404, f"no such endpoint: {path}")


def _segments(path: str) -> list[str]:
    return [unquote(part) for part in path.strip("/").split("/")] if path.strip("/") else []


def _match(template: list[str], segments: list[str]) -> dict[str, str] | None:
    if len(template) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(template, segments, strict=True):
        if want.startswith("{") and want.endswith("}"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


def check_token(expected: str, authorization: str | None) -> None:
    """Raise HttpError 401 unless `authorization` is "Bearer <expected>" (no token set: allow).

    The comparison takes the same time whatever the prefix that matches.
    """
    if not expected:
        return
    challenge = [("WWW-Authenticate", 'Bearer realm="hotswap"')]
    if authorization is None:
        raise HttpError(401, "missing Authorization header: send 'Bearer <admin token>'", challenge)
    scheme, _, credentials = authorization.strip().partition(" ")
    given = credentials.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected.encode()):
        raise HttpError(401, "invalid admin token", challenge)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """An optional JSON object body: b"" is {}; anything else that is not an object is 400."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HttpError(400, "request body must be a JSON object")
    return value


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON followed by a newline (one NDJSON line, or a whole body)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def error_bytes(message: str, **extra: Any) -> bytes:
    return json_bytes({"error": message, **extra})
