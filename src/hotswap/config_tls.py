"""The [tls] checks of the config loader that read files: certificates, keys, the CA bundle.

`hotswap config check`, start-up and every reload run them, so a certificate
that has expired, a key that is not the certificate's, or a file OpenSSL
refuses is reported with the file and the key path before anything is served.
The certificates read here are the ones served (the loader keeps them in the
Config), so what was checked is what the listener uses.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from hotswap.config_values import Report, describe, relative_to_config
from hotswap.tls.certificate import Certificate, CertificateError, check_not_expired, load_pair
from hotswap.tls.context import certificate_context

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")


def load_certificates(
    files: Sequence[tuple[str, str]], path: Path, report: Report, now: datetime | None = None
) -> list[Certificate | None]:
    """Each (cert, key) pair of tls.certificates read and checked, None where it is not
    usable; problems go to `report`, naming the entry and the file."""
    now = datetime.now(UTC) if now is None else now
    loaded: list[Certificate | None] = []
    for index, (cert, key_file) in enumerate(files):
        key = f"tls.certificates[{index}]"
        cert_path = relative_to_config(path, cert)
        certificate: Certificate | None = None
        try:
            certificate = load_pair(cert_path, relative_to_config(path, key_file))
            check_not_expired(certificate, now)
            certificate_context(certificate)  # what OpenSSL refuses (e.g. a too small key)
        except CertificateError as exc:
            report(f"{key}.{exc.part}", str(exc))
            certificate = None
        except ssl.SSLError as exc:
            report(f"{key}.cert", f"{cert_path}: OpenSSL refuses it: {exc.reason or exc}")
            certificate = None
        loaded.append(certificate)
    return loaded


def check_acme(email: str, ca_bundle: str, path: Path, report: Report) -> None:
    """tls.acme.email looks like an address; tls.acme.ca_bundle is a readable PEM bundle."""
    if email and not _EMAIL.fullmatch(email):
        report(
            "tls.acme.email",
            f'expected an email address like "admin@example.com", got {describe(email)}',
        )
    if ca_bundle:
        _check_ca_bundle(relative_to_config(path, ca_bundle), report)


def check_hsts(value: str, report: Report) -> None:
    """tls.hsts is a Strict-Transport-Security value with a max-age."""
    if value and not (
        _HEADER_VALUE.fullmatch(value) and "max-age=" in value.lower().replace(" ", "")
    ):
        report(
            "tls.hsts",
            'expected a Strict-Transport-Security value like "max-age=31536000" or '
            f'"max-age=31536000; includeSubDomains", got {describe(value)}',
        )


def _check_ca_bundle(bundle: Path, report: Report) -> None:
    try:
        ssl.create_default_context(cafile=str(bundle))
    except ssl.SSLError as exc:  # before OSError, its base class
        report("tls.acme.ca_bundle", f"{bundle}: not a PEM file of CA certificates ({exc.reason})")
    except OSError as exc:
        report("tls.acme.ca_bundle", f"cannot read {bundle}: {exc.strerror or exc}")
