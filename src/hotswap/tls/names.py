"""Server names: how a TLS server name (SNI) or a Host meets a certificate's names. No I/O.

A certificate's DNS names are matched the RFC 6125 §6.4.3 way that browsers
use: a wildcard is the whole left-most label (`*.example.com`) and stands for
exactly one label, so it covers `a.example.com` but neither `example.com` nor
`a.b.example.com`. Partial wildcards (`f*.example.com`) match nothing.
Comparison is case-insensitive and ignores one trailing dot.
"""

from __future__ import annotations

from hotswap.config_apps import WILDCARD_PREFIX


def normalize_name(name: str) -> str:
    """`name` lower-cased, without surrounding spaces and one trailing dot."""
    name = name.strip().lower()
    return name[:-1] if name.endswith(".") else name


def is_wildcard(name: str) -> bool:
    """True for a wildcard name like `*.example.com`."""
    return name.startswith(WILDCARD_PREFIX) and len(name) > len(WILDCARD_PREFIX)


def parent(host: str) -> str | None:
    """What a wildcard must stand in front of to cover `host`: `example.com` for
    `a.example.com`; None for a single-label host (no wildcard covers it)."""
    _, dot, rest = host.partition(".")
    return rest if dot and rest else None


def covers(pattern: str, host: str) -> bool:
    """True when the certificate name `pattern` covers the server name `host`."""
    pattern = normalize_name(pattern)
    host = normalize_name(host)
    if not is_wildcard(pattern):
        return "*" not in pattern and pattern == host
    suffix = pattern[len(WILDCARD_PREFIX) :]
    return "*" not in suffix and parent(host) == suffix and not host.startswith(".")
