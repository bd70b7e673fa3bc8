"""Header rewriting for a reverse proxy: hop-by-hop filtering and X-Forwarded-*.

Sans-I/O; works on h11's header lists (names already lower-cased, values as
received). Every function makes a single pass over the list and uses set
lookups only: they run once or twice per proxied request.

Framing: content-length and transfer-encoding are never copied. The proxy
frames each side itself from h11's parsed state (RFC 9112 §6: framing is a
per-connection property), which also makes smuggling through an ambiguous
combination impossible. Re-adding the *same* Content-Length value that h11
validated (see `content_length`) is the recommended way to keep a known length
known, and is required for HEAD / 304 responses whose length must reach the client.
"""

from __future__ import annotations

from functools import lru_cache

Headers = list[tuple[bytes, bytes]]

#: RFC 9110 §7.6.1 and the de-facto extras (Proxy-Connection, Keep-Alive).
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"proxy-connection",
    }
)

#: Headers that describe the framing of one connection's message body.
FRAMING: frozenset[bytes] = frozenset({b"content-length", b"transfer-encoding"})

_RESPONSE_DROP = HOP_BY_HOP | FRAMING
# The X-Forwarded-* headers and X-Request-Id are rebuilt by the proxy (from a
# trusted peer its values are collected and kept).
_FORWARDED = frozenset(
    {
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-prefix",
        b"x-request-id",
    }
)
_REQUEST_DROP = _RESPONSE_DROP | _FORWARDED
# A Connection header may not make us drop these: Host is end-to-end and
# required upstream (a "Connection: host" trick must not strip it).
_PROTECTED = frozenset({b"host"})
# Connection tokens that need no second pass: they name nothing, or headers
# that are dropped (or rebuilt) anyway.
_REQUEST_IGNORED_TOKENS = (_REQUEST_DROP - _FORWARDED) | _PROTECTED | {b"close"}
_RESPONSE_IGNORED_TOKENS = _RESPONSE_DROP | {b"close"}
_CONNECTION_UPGRADE = (b"connection", b"upgrade")
_SCHEMES = {"http": b"http", "https": b"https"}


@lru_cache(maxsize=256)
def split_tokens(value: bytes) -> frozenset[bytes]:
    """The lower-cased tokens of one Connection value (values repeat: cached)."""
    return frozenset(t for t in (t.strip(b" \t") for t in value.lower().split(b",")) if t)


def connection_tokens(headers: Headers) -> frozenset[bytes]:
    """The lower-cased, whitespace-stripped tokens of every Connection header."""
    tokens: frozenset[bytes] = frozenset()
    for name, value in headers:
        if name == b"connection":
            tokens = tokens | split_tokens(value) if tokens else split_tokens(value)
    return tokens


def is_upgrade_request(headers: Headers) -> bytes | None:
    """The requested protocol (lower-cased Upgrade value, e.g. b"websocket"), else None.

    An upgrade needs both `Connection: upgrade` and an Upgrade header
    (RFC 9110 §7.8); several Upgrade headers are joined with ", ".
    """
    wants_upgrade = False
    upgrade: bytes | None = None
    for name, value in headers:
        if name in _UPGRADE_NAMES:
            if name == b"connection":
                wants_upgrade = wants_upgrade or b"upgrade" in split_tokens(value)
            else:
                value = value.strip(b" \t").lower()
                if value:
                    upgrade = value if upgrade is None else upgrade + b", " + value
    return upgrade if wants_upgrade else None


_UPGRADE_NAMES = frozenset({b"connection", b"upgrade"})


@lru_cache(maxsize=256)
def _named_by(value: bytes, ignored: frozenset[bytes]) -> frozenset[bytes]:
    return split_tokens(value) - ignored


def _named_in(values: list[bytes], ignored: frozenset[bytes]) -> frozenset[bytes]:
    """Header names the Connection values name that a first pass may have kept."""
    if len(values) == 1:
        return _named_by(values[0], ignored)
    named: frozenset[bytes] = frozenset()
    for value in values:
        named = named | _named_by(value, ignored)
    return named


def request_headers_for_upstream(
    headers: Headers,
    *,
    client_ip: str,
    scheme: str,
    host: str,
    upgrade: bytes | None,
    trusted: bool = False,
    request_id: bytes | None = None,
    prefix: bytes = b"",
) -> Headers:
    """The request headers to send upstream.

    Drops hop-by-hop headers, every header the client named in Connection
    (except Host) and the framing headers; keeps Host as received. The
    X-Forwarded-* headers: from a `trusted` peer (a proxy in front of hotswap)
    its X-Forwarded-Proto and -Host are kept and `client_ip` is appended to its
    X-Forwarded-For (values joined with ", "); from anyone else they are set:
    X-Forwarded-For to `client_ip`, -Proto to `scheme`, -Host to `host` (omitted
    when empty). X-Forwarded-Prefix, the path prefix a proxy removed (Traefik's
    and Spring's name for it): a trusted peer's is kept, anyone else's dropped; with
    a `prefix` (a path route's strip_prefix) it is set to it, after the trusted
    peer's own. With a `request_id`, X-Request-Id is set to it unless a trusted
    peer sent one (an untrusted peer's is replaced); without, it passes as sent.
    When `upgrade` is not None, re-adds `connection: upgrade` and
    `upgrade: <upgrade>`. Order of the kept headers is preserved.
    """
    out: Headers = []
    append = out.append
    forwarded: Headers | None = None  # the peer's X-Forwarded-* and X-Request-Id
    connection: list[bytes] | None = None
    for item in headers:
        if item[0] in _REQUEST_DROP:
            name = item[0]
            if name == b"connection":
                if connection is None:
                    connection = [item[1]]
                else:
                    connection.append(item[1])
            elif name == b"x-request-id" and request_id is None:
                append(item)  # not ours to manage: an end-to-end header like any other
            elif name in _FORWARDED and trusted:
                if forwarded is None:
                    forwarded = [item]
                else:
                    forwarded.append(item)
            continue
        append(item)
    if connection is not None:
        # Rare: the client named end-to-end headers as hop-by-hop (RFC 9110 §7.6.1).
        named = _named_in(connection, _REQUEST_IGNORED_TOKENS)
        if named:
            out = [item for item in out if item[0] not in named]
            append = out.append
            if forwarded is not None:
                forwarded = [item for item in forwarded if item[0] not in named]
    peer = client_ip.encode("ascii")
    proto = _SCHEMES.get(scheme) or scheme.encode("ascii")
    sent_host = host.encode("latin-1")
    chain: list[bytes] = []
    outer_prefix: bytes | None = None  # a trusted proxy's X-Forwarded-Prefix
    if forwarded:
        for name, value in forwarded:
            if name == b"x-forwarded-for":
                if value:
                    chain.append(value)
            elif name == b"x-forwarded-proto":
                proto = value or proto
            elif name == b"x-forwarded-host":
                sent_host = value or sent_host
            elif name == b"x-forwarded-prefix":
                outer_prefix = value.rstrip(b"/") if value else outer_prefix
            elif request_id is not None:  # x-request-id
                request_id = value
    chain.append(peer)
    append((b"x-forwarded-for", b", ".join(chain)))
    append((b"x-forwarded-proto", proto))
    if sent_host:
        append((b"x-forwarded-host", sent_host))
    if prefix or outer_prefix is not None:
        append((b"x-forwarded-prefix", (outer_prefix or b"") + prefix or b"/"))
    if request_id is not None:
        append((b"x-request-id", request_id))
    if upgrade is not None:
        append(_CONNECTION_UPGRADE)
        append((b"upgrade", upgrade))
    return out


def response_headers_for_client(headers: Headers, *, upgrade: bool) -> Headers:
    """The response headers to send to the client.

    Drops hop-by-hop headers, every header the upstream named in Connection
    and the framing headers. With `upgrade` (a 101 answer) the result carries
    `connection: upgrade` and the upstream's Upgrade header(s) again.
    """
    out: Headers = []
    append = out.append
    connection: list[bytes] | None = None
    upgrades: Headers | None = None
    for item in headers:
        if item[0] in _RESPONSE_DROP:
            name = item[0]
            if name == b"connection":
                if connection is None:
                    connection = [item[1]]
                else:
                    connection.append(item[1])
            elif upgrade and name == b"upgrade":
                if upgrades is None:
                    upgrades = [item]
                else:
                    upgrades.append(item)
            continue
        append(item)
    if connection is not None:
        named = _named_in(connection, _RESPONSE_IGNORED_TOKENS)
        if named:
            out = [item for item in out if item[0] not in named]
    if upgrade:
        out.append(_CONNECTION_UPGRADE)
        if upgrades is not None:
            out.extend(upgrades)
    return out


def content_length(headers: Headers) -> int | None:
    """The Content-Length value as an int, None if absent.

    Meant for headers h11 has validated (it rejects differing duplicates and
    collapses identical ones); raises ValueError on a value that is not a
    non-negative decimal integer.
    """
    for name, value in headers:
        if name == b"content-length":
            value = value.strip(b" \t")
            if not value.isdigit():
                raise ValueError(f"invalid content-length {value!r}")
            return int(value)
    return None
