"""Path routes of one host: which prefix a request's path falls under, and what the app sees.

Sans-I/O. A request is matched on its path as sent (the origin-form target, or the
path of an absolute-form one), before the query, byte for byte and case-sensitively.
A prefix matches the path itself and the paths under it on a segment boundary:
"/api" takes "/api", "/api/" and "/api/users", never "/apix". The longest
matching prefix wins; a path no prefix takes goes to the host's plain route.

Matching the raw path is predictable and costs no decoding, but an app may
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
    the depth of the deepest prefix, whatever the number of prefixes. The work is done
    on the target decoded as latin-1 (byte for byte): str's substring tests are the
    fast ones in CPython.
    """

    __slots__ = ("_depth", "_prefixes", "default")

    def __init__(self, prefixes: Mapping[str, T], default: T | None) -> None:
        self._prefixes: dict[str, T] = dict(prefixes)
        self._depth = max((p.count("/") for p in self._prefixes), default=0)
        self.default = default

    def prefixes(self) -> list[str]:
        return sorted(self._prefixes)

    def _longest(self, path: str) -> str | None:
        """The longest prefix that `path` is, or is under; None if none."""
        prefixes = self._prefixes
        # The path cut after `depth` segments ("/a/b/c", depth 2: "/a/b"), then shorter by
        # one segment at a time: every candidate ends on a segment boundary.
        end = 0
        for _ in range(self._depth):
            end = path.find("/", end + 1)
            if end < 0:
                end = len(path)
                break
        candidate = path[:end]
        while True:
            if candidate in prefixes:
                return candidate
            end = candidate.rfind("/")
            if end <= 0:
                return None
            candidate = candidate[:end]

    def match(self, target: bytes) -> T | None:
        """The route of request target `target`: the longest prefix's, else `default`.

        Raises AmbiguousPath for a path that a decoding, normalising app would read as
        one under another route, or above the prefix it matched.
        """
        path = target.decode("latin-1")
        if path[:1] != "/":  # absolute-form, or "*"
            path = request_path(target).decode("latin-1")
        elif "?" in path:
            path = path.partition("?")[0]
        if "#" in path:
            path = path.partition("#")[0]
        prefix = self._longest(path)
        # Could normalising the path change it? Four substring tests, the cheap kind.
        if "%" in path or "/." in path or "//" in path or "\\" in path:
            self._check(path, prefix)
        if prefix is None:
            return self.default
        return self._prefixes[prefix]

    def _check(self, path: str, prefix: str | None) -> None:
        """AmbiguousPath unless `path`, normalised, routes to `prefix` and stays under it."""
        raw = path.encode("latin-1")
        normal = normalize_path(raw).decode("latin-1")
        climbs = False
        if prefix is not None and path != prefix:  # a prefix is ASCII: len() counts bytes
            climbs = normal != prefix + normalize_path(raw[len(prefix) :]).decode("latin-1")
        if climbs or self._longest(normal) != prefix:
            raise AmbiguousPath(
                "ambiguous request path: decoded and normalised, it would reach another "
                "route or leave the prefix of its own"
            )
