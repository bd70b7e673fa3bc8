"""HTTPS: certificates (files and ACME), SNI selection, TLS handshakes.

certificate.py  a certificate chain and its key: PEM checks, names, expiry
names.py        server names against certificate names (RFC 6125 wildcards)
selection.py    which certificate answers a server name (exact before wildcard)
context.py      SSLContexts: one per certificate, the listener's picks by SNI
live.py         the certificate set new handshakes use, swapped in one step
handshake.py    accept_tls_socket: sniff plain HTTP, handshake, say why one failed
challenges.py   HTTP-01 tokens of pending orders and the answer to the CA
redirect.py     the https URL of a plain-HTTP request
plan.py         what the config asks: files, names switched off, ACME orders
schedule.py     renewal time, back-off, Retry-After
store.py        issued certificates and the account key on disk (certs_dir)
acme_client.py  one ACME conversation on the `acme` package (blocking)
issuer.py       one certificate from the CA, from Trio (worker threads)
manager.py      TlsManager: the running side; what the proxy calls
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hotswap.tls.acme_client import AcmeError
    from hotswap.tls.certificate import Certificate, CertificateError
    from hotswap.tls.challenges import CHALLENGE_PATH
    from hotswap.tls.challenges import CONTENT_TYPE as CHALLENGE_CONTENT_TYPE
    from hotswap.tls.handshake import (
        PLAIN_HTTP_RESPONSE,
        FailureReason,
        HandshakeFailed,
        accept_tls_socket,
    )
    from hotswap.tls.manager import TlsManager
    from hotswap.tls.redirect import STATUS as REDIRECT_STATUS

# Imported on first use: `hotswap config check` needs certificate.py, not the ACME client.
_LAZY = {
    "AcmeError": ("acme_client", "AcmeError"),
    "Certificate": ("certificate", "Certificate"),
    "CertificateError": ("certificate", "CertificateError"),
    "CHALLENGE_PATH": ("challenges", "CHALLENGE_PATH"),
    "CHALLENGE_CONTENT_TYPE": ("challenges", "CONTENT_TYPE"),
    "PLAIN_HTTP_RESPONSE": ("handshake", "PLAIN_HTTP_RESPONSE"),
    "FailureReason": ("handshake", "FailureReason"),
    "HandshakeFailed": ("handshake", "HandshakeFailed"),
    "accept_tls_socket": ("handshake", "accept_tls_socket"),
    "TlsManager": ("manager", "TlsManager"),
    "REDIRECT_STATUS": ("redirect", "STATUS"),
}


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)


__all__ = [
    "CHALLENGE_CONTENT_TYPE",
    "CHALLENGE_PATH",
    "PLAIN_HTTP_RESPONSE",
    "REDIRECT_STATUS",
    "AcmeError",
    "Certificate",
    "CertificateError",
    "FailureReason",
    "HandshakeFailed",
    "TlsManager",
    "accept_tls_socket",
]
