"""Every test keeps hotswap's state (pause/maintenance files, takeover sockets) in a
directory of its own, as do the `hotswap serve` processes tests start (they inherit it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotswap.statedir import STATE_DIR_ENV


@pytest.fixture(autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("state")
    monkeypatch.setenv(STATE_DIR_ENV, str(path))
    return path
