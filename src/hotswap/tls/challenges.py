"""ACME HTTP-01 challenges: the tokens of pending orders and the answer to the CA. No I/O.

While an order is pending, the CA fetches
`http://<domain>/.well-known/acme-challenge/<token>` on port 80 and expects the
token's key authorization as the body (RFC 8555 §8.3). The plain-HTTP
listener asks `challenge_response` before anything else — before routing and
before the redirect to https — and answers 200 with the bytes it returns.
Only tokens of orders in progress are answered, and only for their own
domain: any other request under that path is an ordinary request (the app may
run an ACME client of its own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hotswap.tls.names import normalize_name

CHALLENGE_PATH = "/.well-known/acme-challenge/"
CONTENT_TYPE = b"application/octet-stream"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # base64url (RFC 8555 §8.3)
_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class PendingChallenge:
    domain: str
    token: str
    key_authorization: str


class PendingChallenges:
    """token -> challenge, for the orders in progress; filled by the issuer."""

    def __init__(self) -> None:
        self._by_token: dict[str, PendingChallenge] = {}

    def add(self, domain: str, token: str, key_authorization: str) -> None:
        self._by_token[token] = PendingChallenge(normalize_name(domain), token, key_authorization)

    def remove(self, token: str) -> None:
        self._by_token.pop(token, None)

    def lookup(self, host: str, token: str) -> PendingChallenge | None:
        challenge = self._by_token.get(token)
        if challenge is None or challenge.domain != host:
            return None
        return challenge

    def __len__(self) -> int:
        return len(self._by_token)


def challenge_token(target: str) -> str | None:
    """The token of `/.well-known/acme-challenge/<token>` (query ignored), else None."""
    if not target.startswith(CHALLENGE_PATH):
        return None
    token = target[len(CHALLENGE_PATH) :].partition("?")[0]
    return token if _TOKEN.fullmatch(token) else None


def challenge_response(
    pending: PendingChallenges, method: str | bytes, host: str, target: str | bytes
) -> bytes | None:
    """The body to answer a pending challenge with (status 200), or None.

    `host` is the request's host (any case, a port is ignored), `target` the
    origin-form request target. None means: not a challenge of a pending order,
    handle the request as usual.
    """
    if isinstance(method, bytes):
        method = method.decode("latin-1")
    if method not in _METHODS:
        return None
    if isinstance(target, bytes):
        target = target.decode("latin-1")
    token = challenge_token(target)
    if token is None:
        return None
    name = normalize_name(_without_port(host))
    challenge = pending.lookup(name, token)
    return challenge.key_authorization.encode("ascii") if challenge is not None else None


def _without_port(host: str) -> str:
    if host.startswith("["):
        return host  # an IPv6 literal: never a domain with a pending order
    return host.rpartition(":")[0] if ":" in host else host
