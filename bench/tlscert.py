"""The bench's TLS certificate: one ECDSA P-256 certificate, made on the spot, never committed.

    python bench/tlscert.py OUTDIR NAME [NAME...]

writes into OUTDIR:

    ca.pem     the certificate of a throwaway CA (what a client trusts)
    cert.pem   the server's certificate, then the chain (what nginx and hotswap serve)
    key.pem    its private key (ECDSA P-256, unencrypted PEM)

with every NAME as a DNS subjectAltName. It uses `trustme` (its ECDSA key type,
P-256) when it imports, else the `cryptography` package directly (what trustme
uses). Both are in the project's test extra, so bench/throughput runs this
with the venv's Python (the bench scripts themselves need only the standard
library) and skips its HTTPS rows, with the reason, when neither imports.
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path


def with_trustme(names: list[str]) -> tuple[bytes, bytes, bytes]:
    import trustme

    key_type = trustme.KeyType.ECDSA  # AttributeError on a trustme before 1.0: no key type
    ca = trustme.CA(key_type=key_type)
    leaf = ca.issue_cert(*names, key_type=key_type)
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    return ca.cert_pem.bytes(), chain, leaf.private_key_pem.bytes()


def with_cryptography(names: list[str]) -> tuple[bytes, bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hotswap bench CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(ca_usage, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca_cert.public_bytes(pem), cert.public_bytes(pem), key_pem


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out, names = Path(argv[0]), argv[1:]
    try:
        ca, chain, key = with_trustme(names)
        how = "trustme"
    except (ImportError, AttributeError):
        try:
            ca, chain, key = with_cryptography(names)
        except ImportError:
            print("neither trustme nor cryptography imports", file=sys.stderr)
            return 1
        how = "cryptography"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ca.pem").write_bytes(ca)
    (out / "cert.pem").write_bytes(chain)
    key_path = out / "key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(key)
    print(how)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
