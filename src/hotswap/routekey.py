"""Route keys: a domain ("example.com"), or a domain and a path prefix ("example.com/api").

A path route serves the requests for its domain whose path is its prefix or starts
with the prefix and "/" ("/api", "/api/users", not "/apix"). The domain part is
normalised like any domain (lower case, no port, no trailing dot); the path part is
case-sensitive (RFC 3986 §6.2.2.1) and kept as written, so it must already be in
the form a request sends: segments of plain characters, no trailing "/", no
query, no fragment, no dot segments, no percent-encoding (requests are matched on
their path as sent; see http/paths.py).

The parsers raise ValueError with a message meant for the user; the caller adds
the file and the key path. No I/O.
"""

from __future__ import annotations

import json
import string
from typing import Final

from hotswap.addresses import normalize_domain

# RFC 3986 pchar without pct-encoded: unreserved, sub-delims, ":" and "@".
_PATH_CHARS: Final = frozenset(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@")


def split_route_key(key: str) -> tuple[str, str]:
    """(domain, path prefix) of a normalised route key; the path is "" for a plain route."""
    domain, slash, rest = key.partition("/")
    return domain, slash + rest


def route_domain(key: str) -> str:
    """The domain of a route key: "example.com" for "example.com/api"."""
    return key.partition("/")[0]


def is_path_route(key: str) -> bool:
    return "/" in key


def normalize_route_key(text: str) -> str:
    """Return `text` as a route key: its domain normalised, its path checked as written.

    Raises ValueError naming what is wrong.
    """
    domain_text, slash, rest = text.partition("/")
    domain = normalize_domain(domain_text)
    if not slash:
        return domain
    path = slash + rest
    problem = path_problem(path, domain)
    if problem:
        raise ValueError(f"invalid route path {_quote(path)}: {problem}")
    return domain + path


def path_problem(path: str, domain: str) -> str:
    """Why `path` cannot be the prefix of a route of `domain`; "" if it can."""
    if path == "/":
        return f'"/" is the whole domain: write {_quote(domain)}'
    if "?" in path:
        return 'a route path has no query ("?")'
    if "#" in path:
        return 'a route path has no fragment ("#")'
    if path.endswith("/"):
        trimmed = domain + path.rstrip("/")
        return (
            f'no trailing "/": write {_quote(trimmed)} (it serves {path.rstrip("/")} '
            f"and every path under {path})"
        )
    segments = path[1:].split("/")
    if "" in segments:
        return 'empty path segment ("//")'
    if "." in segments or ".." in segments:
        return 'dot segments ("." and "..") are not allowed'
    if "%" in path:
        return (
            'percent-encoding ("%") is not supported: requests are matched on their path '
            "as sent; write the characters themselves"
        )
    for char in path:
        if char != "/" and char not in _PATH_CHARS:
            return (
                f"invalid character {_quote(char)}: a path segment holds ASCII letters, "
                "digits and -._~!$&'()*+,;=:@"
            )
    return ""


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
