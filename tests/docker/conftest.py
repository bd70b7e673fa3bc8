"""Fixtures for the tests that need a real Docker engine.

Everything in tests/docker is marked `docker`. Without a reachable engine these
tests are skipped, unless HOTSWAP_REQUIRE_DOCKER=1 (CI), where they fail.

    docker_client   session: a docker SDK client
    test_images     session: builds the test images once; name -> tag (imagebuilder.TEST_IMAGES)
    free_port       a free loopback TCP port
    containers      a ContainerFactory: host-network containers with $PORT set, a unique
                    name prefix, all removed at teardown (and at session end, by label)
"""

from __future__ import annotations

import gc
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import docker
import docker.errors
import pytest
from docker_helpers import ContainerFactory, remove_session_containers
from docker_helpers import free_port as _free_port
from imagebuilder import ensure_test_images

HERE = Path(__file__).parent.resolve()
REQUIRE_ENV = "HOTSWAP_REQUIRE_DOCKER"
SESSION_ID = uuid.uuid4().hex[:12]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.docker)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _connect() -> tuple[docker.DockerClient | None, str]:
    client = None
    try:
        client = docker.from_env(timeout=60)
        client.ping()
        return client, ""
    except docker.errors.DockerException as exc:
        reason = str(exc)
    if client is not None:
        client.close()
    # A failed connection attempt leaves its socket to the garbage collector; collect it
    # here, quietly, rather than have a ResourceWarning (an error) surface later.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    return None, reason


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client, reason = _connect()
    if client is None:
        _unavailable(f"no Docker engine reachable ({reason}); run scripts/ensure-docker")
    try:
        yield client
    finally:
        remove_session_containers(client, SESSION_ID)
        client.close()


@pytest.fixture(scope="session")
def test_images(docker_client: docker.DockerClient) -> dict[str, str]:
    """Build (or find up to date) every test image; returns name -> tag."""
    return ensure_test_images(docker_client)


@pytest.fixture
def free_port() -> int:
    return _free_port()


@pytest.fixture
def containers(docker_client: docker.DockerClient) -> Iterator[ContainerFactory]:
    factory = ContainerFactory(docker_client, SESSION_ID)
    try:
        yield factory
    finally:
        factory.remove_all()
