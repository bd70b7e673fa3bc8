"""A certificate and its key: parsed from PEM, checked, and described. No sockets.

`parse_pair` takes the PEM of a certificate chain (the server's own certificate
first, then the intermediates) and of its private key, and refuses what would
fail at handshake time or fail silently for some clients: no certificate, an
unreadable or encrypted key, a key that is not the certificate's, a chain out
of order, a certificate without DNS names. The names served are the
certificate's own DNS subjectAltNames (wildcards included); the subject's
common name is not used, as browsers no longer use it.

Errors are `CertificateError`s whose message names the file; `part` says
whether the certificate or the key is at fault, so that the config loader can
name the right key path.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from hotswap.tls.names import covers, normalize_name

Part = Literal["cert", "key"]
Source = Literal["file", "acme"]

PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


class CertificateError(ValueError):
    """A certificate or key that hotswap cannot serve; the message names the file."""

    def __init__(self, message: str, *, part: Part = "cert") -> None:
        super().__init__(message)
        self.part: Part = part


@dataclass(frozen=True)
class Certificate:
    """A checked certificate chain with its key, and what is shown about it."""

    chain_pem: bytes = field(repr=False)  # the server's certificate first, then intermediates
    key_pem: bytes = field(repr=False)
    names: tuple[str, ...]  # DNS subjectAltNames, lower case, in certificate order
    not_before: datetime  # aware, UTC
    not_after: datetime  # aware, UTC
    issuer: str  # the issuer's common name, else its full distinguished name
    serial: int
    fingerprint: str  # SHA-256 of the server's certificate (DER), hex
    source: Source = "file"
    origin: str = ""  # where it came from: "<cert file>" or the ACME store file

    def covers(self, host: str) -> bool:
        """True when one of the certificate's names covers `host`."""
        return any(covers(name, host) for name in self.names)

    def expired(self, now: datetime) -> bool:
        return now >= self.not_after

    def describe(self) -> dict[str, object]:
        """What `hotswap status` shows (JSON-ready)."""
        return {
            "names": list(self.names),
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "serial": f"{self.serial:x}",
            "fingerprint_sha256": self.fingerprint,
            "source": self.source,
            "origin": self.origin,
        }


def parse_pair(
    chain_pem: bytes,
    key_pem: bytes,
    *,
    cert_name: str = "certificate",
    key_name: str = "key",
    source: Source = "file",
) -> Certificate:
    """Check `chain_pem` and `key_pem` belong together and can be served.

    `cert_name` and `key_name` (file names) appear in the messages.
    """
    chain = _load_chain(chain_pem, cert_name)
    leaf = chain[0]
    key = _load_key(key_pem, key_name)
    if _public_der(leaf.public_key()) != _public_der(key.public_key()):
        raise CertificateError(
            f"{key_name} is not the key of the certificate in {cert_name} (the public keys "
            "differ); the server's own certificate must come first in the certificate file",
            part="key",
        )
    for index, (child, issuer) in enumerate(itertools.pairwise(chain), start=1):
        if child.issuer != issuer.subject:
            raise CertificateError(
                f"{cert_name}: certificate {index + 1} did not issue certificate {index}: "
                "the chain must go from the server's certificate up towards the root"
            )
    names = _dns_names(leaf)
    if not names:
        raise CertificateError(
            f"{cert_name}: the certificate has no DNS names (subjectAltName); "
            "hotswap picks certificates by those names"
        )
    return Certificate(
        chain_pem=chain_pem,
        key_pem=key_pem,
        names=names,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        issuer=_common_name(leaf.issuer),
        serial=leaf.serial_number,
        fingerprint=hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest(),
        source=source,
        origin=cert_name,
    )


def load_pair(cert_path: Path, key_path: Path) -> Certificate:
    """Read and check a certificate file and its key file (see parse_pair)."""
    chain_pem = _read(cert_path, "cert")
    key_pem = _read(key_path, "key")
    return parse_pair(chain_pem, key_pem, cert_name=str(cert_path), key_name=str(key_path))


def check_not_expired(certificate: Certificate, now: datetime) -> None:
    """Raise CertificateError when `certificate` has expired at `now` (aware)."""
    if certificate.expired(now):
        raise CertificateError(
            f"{certificate.origin}: the certificate expired on "
            f"{certificate.not_after:%Y-%m-%d %H:%M:%S} UTC; renew it or remove it from the config"
        )


def _read(path: Path, part: Part) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertificateError(f"cannot read {path}: {exc.strerror or exc}", part=part) from None


def _load_chain(pem: bytes, name: str) -> list[x509.Certificate]:
    if PEM_CERTIFICATE not in pem:
        raise CertificateError(
            f'{name}: no certificate found (expected PEM "{PEM_CERTIFICATE.decode()}")'
        )
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CertificateError(f"{name}: invalid certificate: {exc}") from None


def _load_key(pem: bytes, name: str) -> PrivateKeyTypes:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise CertificateError(
            f"{name}: the key is encrypted with a passphrase; hotswap needs it unencrypted "
            "(keep the file readable by hotswap only)",
            part="key",
        ) from None
    except ValueError:
        raise CertificateError(
            f'{name}: no private key found (expected PEM "-----BEGIN ... PRIVATE KEY-----")',
            part="key",
        ) from None
    return key


def _public_der(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes", None)
    if public_bytes is None:  # pragma: no cover - every key type cryptography loads has it
        return b""
    der: bytes = public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    names: list[str] = []
    for name in extension.value.get_values_for_type(x509.DNSName):
        normalized = normalize_name(name)
        if normalized and normalized not in names:
            names.append(normalized)
    return tuple(names)


def _common_name(name: x509.Name) -> str:
    attributes = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if attributes:
        value = attributes[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return name.rfc4514_string()
