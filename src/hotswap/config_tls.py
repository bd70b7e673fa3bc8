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
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hotswap.config_values import Report, describe, relative_to_config
from hotswap.tls.certificate import CertificateError, check_not_expired, load_pair
from hotswap.tls.context import certificate_context

if TYPE_CHECKING:
    from hotswap.config import TlsConfig

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]+")


def check_tls(tls: TlsConfig, path: Path, report: Report, now: datetime | None = None) -> TlsConfig:
    """`tls` with its certificates read and checked; problems go to `report`."""
    now = datetime.now(UTC) if now is None else now
    loaded = []
    for index, files in enumerate(tls.certificates):
        key = f"tls.certificates[{index}]"
        cert_path = relative_to_config(path, files.cert)
        try:
            certificate = load_pair(cert_path, relative_to_config(path, files.key))
            check_not_expired(certificate, now)
            certificate_context(certificate)  # what OpenSSL refuses (e.g. a too small key)
        except CertificateError as exc:
            report(f"{key}.{exc.part}", str(exc))
            continue
        except ssl.SSLError as exc:
            report(f"{key}.cert", f"{cert_path}: OpenSSL refuses it: {exc.reason or exc}")
            continue
        loaded.append(replace(files, certificate=certificate))
    acme = tls.acme
    if acme.email and not _EMAIL.fullmatch(acme.email):
        report(
            "tls.acme.email",
            f'expected an email address like "admin@example.com", got {describe(acme.email)}',
        )
    if acme.ca_bundle:
        _check_ca_bundle(relative_to_config(path, acme.ca_bundle), report)
    if tls.hsts and not (
        _HEADER_VALUE.fullmatch(tls.hsts) and "max-age=" in tls.hsts.lower().replace(" ", "")
    ):
        report(
            "tls.hsts",
            'expected a Strict-Transport-Security value like "max-age=31536000" or '
            f'"max-age=31536000; includeSubDomains", got {describe(tls.hsts)}',
        )
    return replace(tls, certificates=tuple(loaded))


def _check_ca_bundle(bundle: Path, report: Report) -> None:
    try:
        ssl.create_default_context(cafile=str(bundle))
    except ssl.SSLError as exc:  # before OSError, its base class
        report("tls.acme.ca_bundle", f"{bundle}: not a PEM file of CA certificates ({exc.reason})")
    except OSError as exc:
        report("tls.acme.ca_bundle", f"cannot read {bundle}: {exc.strerror or exc}")
