"""Path routes of one host: which prefix a request's path falls under, and what the app sees.

Sans-I/O. A request is matched on its path as sent (the origin-form target, or the
path of an absolute-form one), before the query, byte for byte and case-sensitively.
A prefix matches the path itself and the paths under it on a segment boundary:
"/api" takes "/api", "/api/" and "/api/users", never "/apix". The longest
matching prefix wins; a path no prefix takes goes to the host's plain route.

Matching the raw path is predictable (kamal-proxy does the same), but an app may
decode and normalise the path it receives: "/%61pi/x" or "/static/../api/x" are
"/api/x" to most frameworks. A request whose path would be routed differently once
decoded and normalised (percent-escapes decoded, "\\" read as "/", repeated slashes
merged, "." and ".." resolved), or would climb out of the prefix it matched, is
refused (AmbiguousPath, a 400): no path reaches a route, or an app through a route,
that the route table did not choose for it. Paths without "%", "\\", "//" or "/."
are never ambiguous and cost no check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Generic, TypeVar
from urllib.parse import unquote_to_bytes

T = TypeVar("T")

_SCHEME_END: Final = b"://"


class AmbiguousPath(ValueError):
    """The path routes differently once decoded and normalised; the message suits a 400."""


def request_path(target: bytes) -> bytes:
    """The path of a request target as sent, without query and fragment.

    Origin-form "/a/b?q" gives "/a/b"; absolute-form "http://h/a?q" gives "/a", and
    "http://h" or "http://h?q" gives "/"; "*" (OPTIONS) gives "*", which no prefix matches.
    """
    if target[:1] != b"/":
        start = target.find(_SCHEME_END)
        if start < 0:
            return target
        start += len(_SCHEME_END)
        end = len(target)
        for separator in (b"/", b"?", b"#"):  # the authority ends at the first of these
            index = target.find(separator, start, end)
            if index >= 0:
                end = index
        if target[end : end + 1] != b"/":
            return b"/"
        target = target[end:]
    end = len(target)
    for separator in (b"?", b"#"):
        index = target.find(separator, 0, end)
        if index >= 0:
            end = index
    return target[:end]


def normalize_path(path: bytes) -> bytes:
    """`path` as an app may read it: escapes decoded, "\\" as "/", slashes merged, and
    dot segments removed (RFC 3986 §5.2.4; ".." never climbs above the root)."""
    decoded = unquote_to_bytes(path).replace(b"\\", b"/")
    segments: list[bytes] = []
    parts = decoded.split(b"/")
    for index, segment in enumerate(parts):
        last = index == len(parts) - 1
        if segment == b"..":
            if segments:
                segments.pop()
            if last:
                segments.append(b"")
        elif segment == b".":
            if last:
                segments.append(b"")
        elif segment or last:
            segments.append(segment)
    return b"/" + b"/".join(segments)


def _suspect(path: bytes) -> bool:
    """Could normalising `path` change it? (Cheap: four substring tests.)"""
    return b"%" in path or b"/." in path or b"//" in path or b"\\" in path


def strip_prefix(target: bytes, prefix: bytes) -> bytes:
    """The origin-form `target` without the route's `prefix`: "/api/users?q" -> "/users?q",
    "/api" -> "/", "/api?q" -> "/?q". A target outside the prefix is returned as is."""
    if not prefix or not target.startswith(prefix):
        return target
    rest = target[len(prefix) :]
    if not rest or rest[:1] in (b"?", b"#"):
        return b"/" + rest
    return rest if rest[:1] == b"/" else target


class PathTable(Generic[T]):
    """The routes of one host by path prefix, and `default`, the host's plain route.

    Built once per change of the host's routes (a deploy's switch), read for every
    request: a lookup costs one dict probe per segment of the request's path, up to
    the depth of the deepest prefix, whatever the number of prefixes.
    """

    __slots__ = ("_depth", "_prefixes", "default")

    def __init__(self, prefixes: Mapping[str, T], default: T | None) -> None:
        self._prefixes: dict[bytes, T] = {p.encode("ascii"): v for p, v in prefixes.items()}
        self._depth = max((p.count(b"/") for p in self._prefixes), default=0)
        self.default = default

    def prefixes(self) -> list[str]:
        return sorted(p.decode("ascii") for p in self._prefixes)

    def _longest(self, path: bytes) -> bytes | None:
        """The longest prefix that `path` is, or is under; None if none."""
        prefixes = self._prefixes
        if path[:1] != b"/":
            return None
        # The boundaries after each of the first `depth` segments: "/a/b/c" -> 2, 4, 6.
        ends: list[int] = []
        position = 0
        for _ in range(self._depth):
            position = path.find(b"/", position + 1)
            if position < 0:
                ends.append(len(path))
                break
            ends.append(position)
        for end in reversed(ends):
            candidate = path[:end]
            if candidate in prefixes:
                return candidate
        return None

    def match(self, target: bytes) -> T | None:
        """The route of request target `target`: the longest prefix's, else `default`.

        Raises AmbiguousPath for a path that a decoding, normalising app would read as
        one under another route, or above the prefix it matched.
        """
        path = request_path(target)
        prefix = self._longest(path)
        if _suspect(path):
            normal = normalize_path(path)
            if self._longest(normal) != prefix or (
                prefix is not None
                and normal
                != (prefix + normalize_path(path[len(prefix) :]) if path != prefix else prefix)
            ):
                raise AmbiguousPath(
                    "ambiguous request path: decoded and normalised, it would reach another "
                    "route or leave the prefix of its own"
                )
        if prefix is None:
            return self.default
        return self._prefixes[prefix]
