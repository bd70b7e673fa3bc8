"""How server names meet certificate names (RFC 6125 wildcards), and which certificate wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tls_helpers import ThrowawayCA

from hotswap.tls.certificate import Certificate
from hotswap.tls.names import covers, normalize_name, parent
from hotswap.tls.selection import CertificateSet, Entry


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("app.example.com", "app.example.com", True),
        ("App.Example.com.", "app.example.COM", True),
        ("app.example.com", "www.app.example.com", False),
        ("*.example.com", "app.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", ".example.com", False),
        ("f*.example.com", "foo.example.com", False),  # partial wildcards match nothing
        ("*.*.example.com", "a.b.example.com", False),
        ("*", "localhost", False),
    ],
)
def test_a_wildcard_stands_for_exactly_one_whole_label(
    pattern: str, host: str, expected: bool
) -> None:
    assert covers(pattern, host) is expected


def test_names_are_compared_without_case_and_trailing_dot() -> None:
    assert normalize_name(" App.Example.COM. ") == "app.example.com"
    assert parent("a.example.com") == "example.com"
    assert parent("localhost") is None


def _with(certificate: Certificate, **changes: object) -> Certificate:
    from dataclasses import replace

    return replace(certificate, **changes)


def test_selection_prefers_exact_names_then_files_then_the_latest_expiry(tmp_path: Path) -> None:
    ca = ThrowawayCA(tmp_path)
    wildcard = ca.issue("*.example.com").certificate()
    exact = ca.issue("app.example.com").certificate()
    now = datetime.now(UTC)
    acme_old = _with(exact, source="acme", not_after=now + timedelta(days=10))
    acme_new = _with(exact, source="acme", not_after=now + timedelta(days=80), serial=2)
    static = _with(exact, source="file", not_after=now + timedelta(days=5), serial=3)

    def pick(*certificates: Certificate, host: str = "app.example.com") -> Certificate | None:
        entry = CertificateSet([Entry(c, None) for c in certificates]).select(host)
        return entry.certificate if entry else None

    assert pick(wildcard, acme_old) == acme_old
    assert pick(acme_old, acme_new) == acme_new
    assert pick(acme_new, acme_old) == acme_new
    assert pick(acme_new, static) == static
    assert pick(wildcard, host="shop.example.com") == wildcard
    assert pick(wildcard, host="example.com") is None
    assert pick(wildcard, host="") is None


def test_a_disabled_name_has_no_certificate(tmp_path: Path) -> None:
    certificate = ThrowawayCA(tmp_path).issue("*.example.com").certificate()
    certificates = CertificateSet([Entry(certificate, None)], disabled=["Plain.example.com."])
    assert certificates.covers("shop.example.com")
    assert not certificates.covers("plain.example.com")
    assert certificates.certificate_for("plain.example.com") is None
