"""The certificates new TLS connections use right now, swapped whole in one step.

`LiveCertificates.context` is the SSLContext a TLS listener wraps every
connection in. Its SNI callback reads `current` at each handshake, so
`publish()` — one assignment — makes the next handshake use a new or renewed
certificate: no restart, no listener rebuilt, connections already open keep
the certificate they were made with.

SSLContexts are built once per certificate and reused while the certificate
stays in the set (building one parses the key: too slow for every publish).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable

from hotswap.tls.certificate import Certificate
from hotswap.tls.context import certificate_context, listener_context
from hotswap.tls.selection import CertificateSet, Entry

log = logging.getLogger(__name__)


class LiveCertificates:
    """The current CertificateSet and the listener context that serves it."""

    def __init__(self) -> None:
        self.current: CertificateSet[ssl.SSLContext] = CertificateSet()
        self._contexts: dict[Certificate, ssl.SSLContext] = {}
        self.context = listener_context(self._context_for)

    def publish(self, certificates: Iterable[Certificate], disabled: Iterable[str] = ()) -> None:
        """Serve `certificates` from the next handshake on; names in `disabled` get none.

        Raises ssl.SSLError if OpenSSL refuses a certificate (the set in use
        stays); certificates from the config were tried at load time already.
        """
        contexts: dict[Certificate, ssl.SSLContext] = {}
        for certificate in certificates:
            context = self._contexts.get(certificate) or contexts.get(certificate)
            contexts[certificate] = context or certificate_context(certificate)
        entries = [Entry(certificate, context) for certificate, context in contexts.items()]
        self.current = CertificateSet(entries, disabled)
        self._contexts = contexts
        log.debug("certificates published count=%d", len(entries))

    def covers(self, host: str) -> bool:
        """True when a handshake for `host` would succeed now."""
        return self.current.covers(host)

    def certificate_for(self, host: str) -> Certificate | None:
        return self.current.certificate_for(host)

    def _context_for(self, server_name: str | None) -> ssl.SSLContext | None:
        entry = self.current.select(server_name)
        return entry.value if entry is not None else None
