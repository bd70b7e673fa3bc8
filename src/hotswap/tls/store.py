"""Issued certificates and the ACME account key on disk, under tls.certs_dir.

    <certs_dir>/                          0700
      account.key                         0600  the ACME account key (EC P-256), reused
      certificates/<ca>/<name>.pem        0600  private key + full chain, one file

`<ca>` is the directory URL's host and path made a file name
(`acme-v02.api.letsencrypt.org-directory`): certificates of the staging CA
never stand in for production ones. A certificate and its key share one file,
so they can only be replaced together.

Every write is atomic: a temporary file in the same directory (created 0600),
written, fsync'd, renamed over the old one, and the directory fsync'd. After a
crash the old file or the new one is there, never a half-written one; stray
temporary files are removed when the store is opened.

Blocking file I/O: the manager calls these methods through trio.to_thread.
"""

from __future__ import annotations

import logging
import re
import stat
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hotswap.statedir import TEMP_SUFFIX, system_state_dir, write_atomic
from hotswap.tls.certificate import PEM_CERTIFICATE, Certificate, CertificateError, parse_pair

log = logging.getLogger(__name__)

DIR_MODE = 0o700
ACCOUNT_KEY = "account.key"
CERTIFICATES = "certificates"
_SAFE = re.compile(r"[^A-Za-z0-9.-]+")
_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")


def default_certs_dir(*, euid: int | None = None, environ: dict[str, str] | None = None) -> Path:
    """/var/lib/hotswap/tls for root, else $XDG_STATE_HOME/hotswap/tls (~/.local/state)."""
    return system_state_dir(euid=euid, environ=environ) / "tls"


def ca_folder(directory_url: str) -> str:
    """A file name for an ACME directory URL: its host, port and path."""
    parts = urlsplit(directory_url)
    slug = _SAFE.sub("-", f"{parts.netloc}{parts.path}").strip("-.")
    return slug or "ca"


def new_private_key_pem() -> bytes:
    """A new EC P-256 private key (PKCS#8 PEM): fast handshakes, accepted everywhere."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class CertificateStore:
    """The files under one certs_dir."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self) -> None:
        """Create the directory (0700; a looser existing one is tightened) and remove
        temporary files a crash left behind."""
        _private_dir(self.root)
        _private_dir(self.root / CERTIFICATES)
        for leftover in self.root.rglob(f".*{TEMP_SUFFIX}"):
            log.info("removing an unfinished write path=%s", leftover)
            leftover.unlink(missing_ok=True)

    def account_key(self) -> bytes:
        """The account key's PEM; created (atomically) on first use."""
        path = self.root / ACCOUNT_KEY
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        pem = new_private_key_pem()
        write_atomic(path, pem)
        log.info("created the ACME account key path=%s", path)
        return pem

    def certificate_path(self, directory_url: str, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a certificate name: {name!r}")
        return self.root / CERTIFICATES / ca_folder(directory_url) / f"{name}.pem"

    def load(self, directory_url: str, name: str) -> Certificate | None:
        """The stored certificate `name` from that CA, or None (missing or unusable)."""
        path = self.certificate_path(directory_url, name)
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            return None
        key_pem, chain_pem = _split_stored(pem)
        try:
            return parse_pair(
                chain_pem, key_pem, cert_name=str(path), key_name=str(path), source="acme"
            )
        except CertificateError as exc:
            log.warning("ignoring a stored certificate path=%s error=%s", path, exc)
            return None

    def save(self, directory_url: str, name: str, key_pem: bytes, chain_pem: bytes) -> Certificate:
        """Check, then store a new certificate for `name`, replacing the old one."""
        path = self.certificate_path(directory_url, name)
        key_pem = key_pem.rstrip(b"\n") + b"\n"
        certificate = parse_pair(
            chain_pem, key_pem, cert_name=str(path), key_name=str(path), source="acme"
        )
        _private_dir(path.parent)
        write_atomic(path, key_pem + chain_pem)
        return certificate


def _split_stored(pem: bytes) -> tuple[bytes, bytes]:
    """A stored file's key and chain: the key comes first, then the certificates (each
    part is kept apart in a Certificate, so the key is never part of its chain)."""
    start = pem.find(PEM_CERTIFICATE)
    if start < 0:
        return pem, b""  # no certificate: parse_pair says so
    return pem[:start], pem[start:]


def _private_dir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    current = stat.S_IMODE(path.stat().st_mode)
    if current != DIR_MODE:
        log.warning(
            "tightening directory permissions path=%s from=%o to=%o", path, current, DIR_MODE
        )
        path.chmod(DIR_MODE)
