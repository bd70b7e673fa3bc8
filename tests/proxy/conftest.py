"""Every proxy test runs once per codec (server.http_parser), as uvicorn's tests do for
its two HTTP protocol implementations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from proxy_helpers import PARSER

from hotswap.config import HttpParser


@pytest.fixture(autouse=True, params=list(HttpParser), ids=[p.value for p in HttpParser])
def http_parser(request: pytest.FixtureRequest) -> Iterator[HttpParser]:
    PARSER[0] = request.param
    try:
        yield request.param
    finally:
        PARSER[0] = HttpParser.FAST
