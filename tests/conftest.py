"""Fixtures for every test.

Each test gets its own state directory (HOTSWAP_STATE_DIR, inherited by the `serve`
processes it starts): nothing is written to /var/lib/hotswap or ~/.local/state, and
two tests never share a takeover socket. Short (under /tmp): a Unix socket path must
fit in 107 bytes.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def state_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hs-state-"))
    monkeypatch.setenv("HOTSWAP_STATE_DIR", str(path))
    yield path
    shutil.rmtree(path, ignore_errors=True)
