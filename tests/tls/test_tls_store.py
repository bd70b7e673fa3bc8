"""The certificate store on disk: private modes, atomic replacement, the account key kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from tls_helpers import ThrowawayCA

from hotswap.tls.certificate import CertificateError
from hotswap.tls.store import CertificateStore, ca_folder, default_certs_dir, write_atomic

DIRECTORY = "https://127.0.0.1:14000/dir"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_is_private_and_loose_permissions_are_tightened(tmp_path: Path) -> None:
    root = tmp_path / "tls"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    store = CertificateStore(root)
    store.open()
    assert mode(root) == 0o700
    assert mode(root / "certificates") == 0o700


def test_the_account_key_is_created_once_and_reused(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "tls")
    store.open()
    first = store.account_key()
    assert first.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert mode(tmp_path / "tls" / "account.key") == 0o600
    again = CertificateStore(tmp_path / "tls")
    again.open()
    assert again.account_key() == first


def test_a_saved_certificate_loads_back_with_its_key(tmp_path: Path) -> None:
    issued = ThrowawayCA(tmp_path).issue("app.example.com")
    store = CertificateStore(tmp_path / "tls")
    store.open()
    saved = store.save(DIRECTORY, "app.example.com", issued.key_pem, issued.chain_pem)
    path = store.certificate_path(DIRECTORY, "app.example.com")
    assert path == tmp_path / "tls" / "certificates" / "127.0.0.1-14000-dir" / "app.example.com.pem"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert saved.source == "acme"
    assert saved.names == ("app.example.com",)
    assert store.load(DIRECTORY, "app.example.com") == saved
    assert store.load(DIRECTORY, "other.example.com") is None
    assert (
        store.load("https://acme-staging-v02.api.letsencrypt.org/directory", "app.example.com")
        is None
    )


def test_a_certificate_that_does_not_check_out_is_not_stored(tmp_path: Path) -> None:
    ca = ThrowawayCA(tmp_path)
    one, two = ca.issue("one.example"), ca.issue("two.example")
    store = CertificateStore(tmp_path / "tls")
    store.open()
    with pytest.raises(CertificateError):
        store.save(DIRECTORY, "one.example", two.key_pem, one.chain_pem)
    assert store.load(DIRECTORY, "one.example") is None
    assert list((tmp_path / "tls" / "certificates").rglob("*")) == []


def test_a_corrupt_stored_file_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CertificateStore(tmp_path / "tls")
    store.open()
    path = store.certificate_path(DIRECTORY, "app.example.com")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    assert store.load(DIRECTORY, "app.example.com") is None
    assert "ignoring a stored certificate" in caplog.text


def test_an_interrupted_write_leaves_the_old_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "file.pem"
    write_atomic(target, b"old")

    class Interrupted(Exception):
        pass

    def crash(fd: int) -> None:
        raise Interrupted

    monkeypatch.setattr(os, "fsync", crash)  # the write dies before the rename
    with pytest.raises(Interrupted):
        write_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


def test_temporary_files_of_a_crashed_write_are_removed_on_open(tmp_path: Path) -> None:
    root = tmp_path / "tls"
    (root / "certificates" / "ca").mkdir(parents=True)
    leftover = root / "certificates" / "ca" / ".app.example.com.pem.x1y2.tmp"
    leftover.write_bytes(b"half a key")
    CertificateStore(root).open()
    assert not leftover.exists()


def test_certificate_names_cannot_escape_the_store(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path)
    for name in ("../x", "a/b", "*.example.com", ""):
        with pytest.raises(ValueError):
            store.certificate_path(DIRECTORY, name)


def test_default_certs_dir_depends_on_the_user() -> None:
    assert default_certs_dir(euid=0, environ={}) == Path("/var/lib/hotswap/tls")
    assert default_certs_dir(euid=1000, environ={"XDG_STATE_HOME": "/s", "HOME": "/h"}) == Path(
        "/s/hotswap/tls"
    )
    assert default_certs_dir(euid=1000, environ={"HOME": "/h"}) == Path(
        "/h/.local/state/hotswap/tls"
    )
    assert ca_folder("https://acme-v02.api.letsencrypt.org/directory") == (
        "acme-v02.api.letsencrypt.org-directory"
    )


def test_a_stored_certificate_keeps_its_key_out_of_its_chain(tmp_path: Path) -> None:
    """The file holds the key, then the chain; a loaded Certificate has them apart, so
    the context serves the chain once (leaf, then issuer) and the key is in no chain."""
    issued = ThrowawayCA(tmp_path).issue("app.example.com")
    store = CertificateStore(tmp_path / "tls")
    store.open()
    saved = store.save(DIRECTORY, "app.example.com", issued.key_pem, issued.chain_pem)
    loaded = store.load(DIRECTORY, "app.example.com")
    assert loaded is not None
    for certificate in (saved, loaded):
        assert b"PRIVATE KEY" not in certificate.chain_pem
        assert certificate.chain_pem == issued.chain_pem
        assert certificate.key_pem.strip() == issued.key_pem.strip()
    path = store.certificate_path(DIRECTORY, "app.example.com")
    assert path.read_bytes() == issued.key_pem.rstrip(b"\n") + b"\n" + issued.chain_pem
