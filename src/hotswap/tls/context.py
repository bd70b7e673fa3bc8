"""SSLContexts: one per certificate, and the listener's, which picks one by SNI.

Every context speaks TLS 1.2 and 1.3 only and offers ALPN `http/1.1` (hotswap
speaks HTTP/1.1; a client offering only h2 goes on without ALPN). The
listener's context holds no certificate of its own: its SNI callback moves
each connection onto the context of the certificate chosen for its server name
(selection.py), and fails the handshake with an `unrecognized_name` alert when
there is none. It reads the current certificate set at every handshake, so a
new set (live.py) is used by the next connection, with no restart.

Python's ssl module loads certificates only from files; `certificate_context`
hands OpenSSL the already checked PEM through an anonymous in-memory file
(memfd, Linux), so what is served is exactly what was checked, and the key
never touches a disk it was not already on.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator

from hotswap.tls.certificate import Certificate

ALPN_PROTOCOLS = ["http/1.1"]
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2

# Called with the server name (None without SNI); returns the context to answer with.
ContextFor = Callable[[str | None], ssl.SSLContext | None]


class HandshakeNote:
    """What the SNI callback saw: the server name, and whether it refused it."""

    def __init__(self) -> None:
        self.server_name: str | None = None
        self.refused = False


# The SNI callback runs inside SSLObject.do_handshake(), in the task doing the
# handshake, so a context variable set by that task reaches it (handshake.py).
handshake_note: contextvars.ContextVar[HandshakeNote | None] = contextvars.ContextVar(
    "hotswap_tls_handshake_note", default=None
)


def base_context() -> ssl.SSLContext:
    """A server context with hotswap's protocol settings and no certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= ssl.OP_NO_RENEGOTIATION
    return context


def certificate_context(certificate: Certificate) -> ssl.SSLContext:
    """A server context that answers with `certificate` (its chain and key)."""
    context = base_context()
    with _pem_path(certificate.key_pem.rstrip(b"\n") + b"\n" + certificate.chain_pem) as path:
        context.load_cert_chain(path)
    return context


def listener_context(context_for: ContextFor) -> ssl.SSLContext:
    """The context a TLS listener wraps connections in: SNI picks the certificate.

    `context_for(server_name)` is asked during each handshake; when it returns
    None the handshake fails with the alert `unrecognized_name`.
    """
    context = base_context()

    def pick(
        connection: ssl.SSLSocket | ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> int | None:
        chosen = context_for(server_name)
        note = handshake_note.get()
        if note is not None:
            note.server_name, note.refused = server_name, chosen is None
        if chosen is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        connection.context = chosen
        return None

    context.sni_callback = pick
    return context


@contextlib.contextmanager
def _pem_path(pem: bytes) -> Iterator[str]:
    """A path OpenSSL can read `pem` from, valid inside the block only."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None:
        fd = memfd_create("hotswap-certificate", getattr(os, "MFD_CLOEXEC", 0))
        try:
            view = memoryview(pem)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    # Elsewhere: a private temporary file (0600), removed at once.
    with tempfile.NamedTemporaryFile(prefix="hotswap-", suffix=".pem") as file:  # pragma: no cover
        file.write(pem)
        file.flush()
        yield file.name
