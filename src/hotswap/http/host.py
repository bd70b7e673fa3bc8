"""Host normalisation and request-target handling (RFC 9112 §3.2, RFC 3986 §3.2.2).

Sans-I/O. Route keys are lower-case host names without port or trailing dot;
`normalize_host` produces them from Host headers and absolute-form targets.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from hotswap.http.headers import Headers

_MAX_HOST = 253
_MAX_LABEL = 63
_MAX_PORT_DIGITS = 5
# Letters, digits, hyphen, and underscore (common in internal and Docker names).
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")
_V6_CHARS = frozenset("0123456789abcdef:.")
_ABSOLUTE_PREFIXES = (b"http://", b"https://")


class BadHost(ValueError):
    """The request's host is missing, duplicated or invalid; the message suits a 400 page."""


def _valid_port(port: str) -> bool:
    # RFC 3986 §3.2.3 allows an empty port ("host:"); it means the default.
    return port == "" or (
        len(port) <= _MAX_PORT_DIGITS and port.isascii() and port.isdigit() and int(port) <= 65535
    )


def normalize_host(value: bytes | str) -> str | None:
    """The route key for a Host value: lower-case, without port and one trailing dot.

    IPv6 literals keep their brackets, compressed ("[::1]"). Returns None for an
    invalid value: empty, bad characters, an empty or over-long label, a bad
    port, longer than 253 characters. Cached: Host values repeat a lot.
    """
    return _normalize_host(value)


@lru_cache(maxsize=4096)
def _normalize_host(value: bytes | str) -> str | None:
    if isinstance(value, bytes):
        if not value.isascii():
            return None
        value = value.decode("ascii")
    elif not value.isascii():
        return None
    host = value.lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        rest = host[end + 1 :]
        if rest and (rest[0] != ":" or not _valid_port(rest[1:])):
            return None
        literal = host[1:end]
        if not literal or not _V6_CHARS.issuperset(literal):
            return None
        try:
            return f"[{ipaddress.IPv6Address(literal).compressed}]"
        except ValueError:
            return None
    name, colon, port = host.rpartition(":")
    if colon:
        if not _valid_port(port):
            return None
        host = name
    if host.endswith("."):
        host = host[:-1]
    if not host or len(host) > _MAX_HOST or not _HOST_CHARS.issuperset(host):
        return None
    for label in host.split("."):
        if not label or len(label) > _MAX_LABEL:
            return None
    return host


def _is_absolute(target: bytes) -> bool:
    return target[:1] != b"/" and target[:8].lower().startswith(_ABSOLUTE_PREFIXES)


def _authority(target: bytes) -> bytes:
    """The authority of an absolute-form target, without userinfo."""
    start = target.index(b"://") + 3
    end = len(target)
    for sep in (b"/", b"?", b"#"):
        i = target.find(sep, start, end)
        if i >= 0:
            end = i
    authority = target[start:end]
    return authority.rpartition(b"@")[2]


def request_host(target: bytes, headers: Headers, http_version: bytes) -> str:
    """The route key of a request.

    RFC 9112 §3.2: a request with two or more Host headers, an invalid Host,
    or HTTP/1.1 without Host is answered 400 (BadHost) - even in absolute form.
    An absolute-form target's authority wins over Host (§3.2.2). HTTP/1.0
    without Host and without an absolute target gives "" (no route: 404).
    """
    host_value: bytes | None = None
    for name, value in headers:
        if name == b"host":
            if host_value is not None:
                raise BadHost("more than one Host header")
            host_value = value
    if host_value is None:
        if http_version != b"1.0":
            raise BadHost("missing Host header")
        host = ""
    else:
        normalized = normalize_host(host_value)
        if normalized is None:
            raise BadHost("invalid Host header")
        host = normalized
    if _is_absolute(target):
        authority = normalize_host(_authority(target))
        if authority is None:
            raise BadHost("invalid host in the request target")
        return authority
    return host


def target_authority(target: bytes) -> bytes | None:
    """The authority of an absolute-form target (the Host to send upstream), else None.

    RFC 9112 §3.2.2: a proxy that receives an absolute-form target replaces Host
    with its authority, so the app sees the host the request was routed by.
    """
    if not _is_absolute(target):
        return None
    return _authority(target)


def origin_form(target: bytes) -> bytes:
    """An absolute-form target as origin-form ("/path?query", "/" if empty); others unchanged.

    A fragment (never meant to be sent) is dropped.
    """
    if not _is_absolute(target):
        return target
    start = target.index(b"://") + 3
    fragment = target.find(b"#", start)
    if fragment >= 0:
        target = target[:fragment]
    slash = target.find(b"/", start)
    query = target.find(b"?", start)
    if 0 <= query and (slash < 0 or query < slash):
        return b"/" + target[query:]
    if slash < 0:
        return b"/"
    return target[slash:]
