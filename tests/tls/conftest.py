"""Fixtures of the TLS tests.

pebble   session: Pebble and its DNS on loopback (tests/tls/pebble_server.py). Without the
         programs the ACME tests are skipped, unless HOTSWAP_REQUIRE_PEBBLE=1 or
         HOTSWAP_REQUIRE_DOCKER=1 (CI), where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pebble_server import Pebble, missing

REQUIRE_ENVS = ("HOTSWAP_REQUIRE_PEBBLE", "HOTSWAP_REQUIRE_DOCKER")


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    reason = missing()
    if reason is not None:
        required = [name for name in REQUIRE_ENVS if os.environ.get(name) == "1"]
        if required:
            pytest.fail(f"{required[0]}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    folder: Path = tmp_path_factory.mktemp("pebble")
    server = Pebble(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()
