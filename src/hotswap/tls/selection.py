"""Which certificate answers a server name (SNI). No I/O.

A `CertificateSet` is immutable: it is built once from the loaded and issued
certificates and replaced as a whole when one of them changes, so a handshake
always sees one consistent set (see live.py).

Rules, in order:
- a name switched off (a route with `tls = "off"`) has no certificate;
- an exact name beats a wildcard (`app.example.com` before `*.example.com`);
- among certificates for the same name, a certificate file from the config
  beats an ACME one, then the one that expires last wins;
- an unknown name, or no name at all, has no certificate: the handshake fails,
  hotswap never answers with another domain's certificate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from hotswap.config_apps import WILDCARD_PREFIX
from hotswap.tls.certificate import Certificate
from hotswap.tls.names import is_wildcard, normalize_name, parent

V = TypeVar("V")


@dataclass(frozen=True)
class Entry(Generic[V]):
    """A certificate and what the server needs to answer with it (an SSLContext)."""

    certificate: Certificate
    value: V


def _rank(entry: Entry[V]) -> tuple[int, float]:
    certificate = entry.certificate
    return (1 if certificate.source == "file" else 0, certificate.not_after.timestamp())


class CertificateSet(Generic[V]):
    """Server name -> the entry that answers it."""

    def __init__(self, entries: Iterable[Entry[V]] = (), disabled: Iterable[str] = ()) -> None:
        self.entries: tuple[Entry[V], ...] = tuple(entries)
        self.disabled = frozenset(normalize_name(name) for name in disabled)
        self._exact: dict[str, Entry[V]] = {}
        self._wildcard: dict[str, Entry[V]] = {}  # "example.com" for "*.example.com"
        for entry in self.entries:
            for name in entry.certificate.names:
                if is_wildcard(name):
                    table, key = self._wildcard, name[len(WILDCARD_PREFIX) :]
                    if "*" in key:
                        continue  # a wildcard that is not the whole left label covers nothing
                elif "*" in name:
                    continue
                else:
                    table, key = self._exact, name
                current = table.get(key)
                if current is None or _rank(entry) > _rank(current):
                    table[key] = entry

    def select(self, server_name: str | None) -> Entry[V] | None:
        """The entry for `server_name`, or None (then the handshake must fail)."""
        if not server_name:
            return None
        name = normalize_name(server_name)
        if name in self.disabled:
            return None
        entry = self._exact.get(name)
        if entry is not None:
            return entry
        suffix = parent(name)
        return self._wildcard.get(suffix) if suffix is not None else None

    def covers(self, host: str) -> bool:
        """True when a handshake for `host` would succeed (e.g. to redirect to https)."""
        return self.select(host) is not None

    def certificate_for(self, host: str) -> Certificate | None:
        entry = self.select(host)
        return entry.certificate if entry is not None else None

    def __len__(self) -> int:
        return len(self.entries)
