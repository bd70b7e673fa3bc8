"""Certificate and key checks: what would fail at handshake time is refused up front."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from tls_helpers import ThrowawayCA

from hotswap.tls.certificate import CertificateError, check_not_expired, load_pair, parse_pair


def test_a_chain_and_its_key_are_described(tmp_path: Path) -> None:
    ca = ThrowawayCA(tmp_path)
    issued = ca.issue("example.com", "*.example.com", "Www.Example.com")
    certificate = load_pair(issued.cert, issued.key)
    assert certificate.names == ("example.com", "*.example.com", "www.example.com")
    assert certificate.covers("shop.example.com")
    assert not certificate.covers("a.shop.example.com")
    assert certificate.source == "file"
    assert certificate.origin == str(issued.cert)
    described = certificate.describe()
    assert described["names"] == ["example.com", "*.example.com", "www.example.com"]
    assert described["issuer"] == certificate.issuer
    assert described["not_after"] == certificate.not_after.isoformat()


def test_an_intermediate_chain_in_order_is_accepted_and_out_of_order_refused() -> None:
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("a.example.com")
    key = leaf.private_key_pem.bytes()
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    assert parse_pair(chain, key).names == ("a.example.com",)
    wrong = leaf.cert_chain_pems[0].bytes() + root.cert_pem.bytes()
    with pytest.raises(CertificateError) as caught:
        parse_pair(wrong, key, cert_name="chain.pem")
    assert str(caught.value) == (
        "chain.pem: certificate 2 did not issue certificate 1: the chain must go from the "
        "server's certificate up towards the root"
    )
    assert caught.value.part == "cert"


def test_the_key_must_belong_to_the_first_certificate(tmp_path: Path) -> None:
    ca = ThrowawayCA(tmp_path)
    one, two = ca.issue("one.example"), ca.issue("two.example")
    with pytest.raises(CertificateError) as caught:
        parse_pair(one.chain_pem, two.key_pem, cert_name="one.pem", key_name="two.key")
    assert caught.value.part == "key"
    assert str(caught.value).startswith("two.key is not the key of the certificate in one.pem")


def test_an_encrypted_key_is_refused_with_a_reason(tmp_path: Path) -> None:
    issued = ThrowawayCA(tmp_path).issue("a.example")
    key = serialization.load_pem_private_key(issued.key_pem, None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(CertificateError) as caught:
        parse_pair(issued.chain_pem, encrypted, key_name="k.pem")
    assert str(caught.value).startswith("k.pem: the key is encrypted with a passphrase")


def test_a_certificate_without_dns_names_is_refused() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("192.0.2.1")  # an IP address only: no DNS name to select it by
    with pytest.raises(CertificateError) as caught:
        parse_pair(leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes(), cert_name="c")
    assert "no DNS names" in str(caught.value)


def test_expiry_is_checked_against_the_given_time(tmp_path: Path) -> None:
    issued = ThrowawayCA(tmp_path).issue("a.example", not_after=datetime(2030, 6, 1, tzinfo=UTC))
    certificate = issued.certificate()
    check_not_expired(certificate, datetime(2030, 5, 31, tzinfo=UTC))
    with pytest.raises(CertificateError) as caught:
        check_not_expired(certificate, datetime(2030, 6, 1, tzinfo=UTC))
    assert "expired on 2030-06-01 00:00:00 UTC" in str(caught.value)
