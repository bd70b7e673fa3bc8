"""Image references, the pull-policy decision and the image's port (no Docker)."""

from __future__ import annotations

import pytest

from hotswap.config import PullPolicy
from hotswap.runtime.base import ImageInfo
from hotswap.runtime.images import (
    PullDecision,
    image_info_from_inspect,
    image_port,
    is_digest_ref,
    normalize_ref,
    pull_decision,
    route_port,
    split_ref,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("myapp", ("myapp", "latest")),
        ("myapp:1.4", ("myapp", "1.4")),
        ("registry:5000/team/app", ("registry:5000/team/app", "latest")),
        ("registry:5000/team/app:v2", ("registry:5000/team/app", "v2")),
        (f"app@{DIGEST}", ("app", DIGEST)),
    ],
)
def test_split_ref_separates_tag_but_not_registry_port(ref: str, expected: tuple[str, str]) -> None:
    assert split_ref(ref) == expected


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("myapp", "myapp:latest"),
        ("docker.io/library/nginx:1", "nginx:1"),
        ("docker.io/team/app", "team/app:latest"),
        ("registry:5000/app", "registry:5000/app:latest"),
        (f"app@{DIGEST}", f"app@{DIGEST}"),
    ],
)
def test_normalize_ref_gives_dockers_familiar_form(ref: str, expected: str) -> None:
    assert normalize_ref(ref) == expected


@pytest.mark.parametrize(
    ("ref", "policy", "present", "expected"),
    [
        ("app:1", PullPolicy.ALWAYS, True, PullDecision.PULL),
        ("app:1", PullPolicy.ALWAYS, False, PullDecision.PULL),
        (f"app@{DIGEST}", PullPolicy.ALWAYS, True, PullDecision.PULL),
        ("app:1", PullPolicy.IF_NOT_PRESENT, True, PullDecision.USE_LOCAL),
        ("app:1", PullPolicy.IF_NOT_PRESENT, False, PullDecision.PULL),
        ("app:1", PullPolicy.IF_TAG_CHANGED, True, PullDecision.PULL),
        ("app:1", PullPolicy.IF_TAG_CHANGED, False, PullDecision.PULL),
        (f"app@{DIGEST}", PullPolicy.IF_TAG_CHANGED, True, PullDecision.USE_LOCAL),
        (f"app@{DIGEST}", PullPolicy.IF_TAG_CHANGED, False, PullDecision.PULL),
    ],
)
def test_pull_decision_follows_the_policy(
    ref: str, policy: PullPolicy, present: bool, expected: PullDecision
) -> None:
    assert is_digest_ref(ref) is ("@" in ref)
    assert pull_decision(ref, policy, present=present) is expected


def test_image_port_prefers_label_then_lowest_exposed_tcp_port() -> None:
    exposed: dict[str, object] = {"9000/tcp": {}, "53/udp": {}, "8080/tcp": {}}
    assert image_port({"hotswap.port": "3000"}, exposed) == 3000
    assert image_port({"hotswap.port": "3000/tcp"}, None) == 3000
    assert image_port({"hotswap.port": "nope"}, exposed) == 8080
    assert image_port(None, exposed) == 8080
    assert image_port({}, {"53/udp": {}}) is None
    assert image_port(None, None) is None


def test_route_port_wins_over_image_port() -> None:
    image = ImageInfo("app:1", "sha256:x", 8000, has_healthcheck=False)
    assert route_port(9000, image) == 9000
    assert route_port(None, image) == 8000


def test_image_info_from_inspect_reads_id_port_and_healthcheck() -> None:
    data = {
        "Id": "sha256:abc",
        "Config": {
            "Labels": {"hotswap.port": "8000"},
            "ExposedPorts": {"9000/tcp": {}},
            "Healthcheck": {"Test": ["CMD-SHELL", "wget -q http://127.0.0.1/up"]},
        },
    }
    assert image_info_from_inspect("app:1", data) == ImageInfo("app:1", "sha256:abc", 8000, True)
    disabled = {"Id": "sha256:abc", "Config": {"Healthcheck": {"Test": ["NONE"]}}}
    assert image_info_from_inspect("a", disabled).has_healthcheck is False
    assert image_info_from_inspect("a", {"Id": "sha256:abc", "Config": None}).port is None
