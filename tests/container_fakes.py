"""A ContainerInfo for tests without Docker: a running app container, with overrides."""

from __future__ import annotations

import dataclasses
from typing import Any

from hotswap.config import Address
from hotswap.runtime.base import ContainerInfo, Health


def running_container(**overrides: Any) -> ContainerInfo:
    """Container c0ffee... of app.test (app:1, deploy 1), running on 127.0.0.1:1."""
    base = ContainerInfo(
        id="c0ffee" * 4,
        name="hotswap-app-test-1",
        domain="app.test",
        image="app:1",
        image_id="sha256:1",
        deploy_id="1",
        created=0.0,
        running=True,
        status="running",
        health=Health.NONE,
        health_log="",
        exit_code=None,
        address=Address("127.0.0.1", 1),
    )
    return dataclasses.replace(base, **overrides)
