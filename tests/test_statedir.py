"""The state directory: explicit, root, per-user; one key per config file."""

from __future__ import annotations

from pathlib import Path

from hotswap.statedir import default_state_dir, instance_key


def test_the_state_dir_is_explicit_else_root_else_the_users() -> None:
    env = {"HOME": "/home/u"}
    assert default_state_dir(environ={"HOTSWAP_STATE_DIR": "/srv/s", **env}) == Path("/srv/s")
    assert default_state_dir(euid=0, environ=env) == Path("/var/lib/hotswap")
    assert default_state_dir(euid=1000, environ=env) == Path("/home/u/.local/state/hotswap")
    xdg = {"XDG_STATE_HOME": "/x", **env}
    assert default_state_dir(euid=1000, environ=xdg) == Path("/x/hotswap")


def test_each_config_file_has_its_own_instance_key(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    assert instance_key(a) == instance_key(tmp_path / "." / "a.toml")
    assert instance_key(a) != instance_key(b)
    assert len(instance_key(None)) == 12
