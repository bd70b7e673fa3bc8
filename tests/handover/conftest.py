"""Fixtures of the handover tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from takeover_helpers import Processes


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """The `hotswap serve` (and launcher) processes a test starts, stopped at its end."""
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.cleanup()
