"""The `hotswap` command: version, help, config init/check, serve's config handling."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotswap import __version__
from hotswap.cli import main
from hotswap.config import Config, load_config
from hotswap.errors import ReadinessError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"


@pytest.fixture(autouse=True)
def isolated_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test reads or writes the real ~/.config/hotswap."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("HOTSWAP_CONFIG", raising=False)
    return home


@pytest.fixture
def fake_app(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """Replace hotswap.app with a module whose serve() records the config it got."""
    served: list[Config] = []
    module = types.ModuleType("hotswap.app")

    def serve(config: Config, *, takeover: bool = False) -> int:
        served.append(config)
        return 0

    module.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hotswap.app", module)
    return served


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"hotswap {__version__}\n"


def test_version_as_a_module_subprocess() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hotswap", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"hotswap {__version__}\n")


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "serve" in out and "config" in out and "--config PATH" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: hotswap" in capsys.readouterr().err
    assert main(["config"]) == 2
    assert "usage: hotswap config" in capsys.readouterr().err


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--log-format", "xml"]) == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


# ------------------------------------------------------------------------ config init


def test_config_init_writes_a_default_that_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "new" / "dir" / "hotswap.toml"
    assert main(["config", "init", str(path)]) == 0
    assert capsys.readouterr().out == f"wrote a commented default configuration to {path}\n"
    assert load_config(path) == Config(path=path)


def test_config_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hotswap.toml"
    path.write_text("# mine\n")
    assert main(["config", "init", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"hotswap: {path} already exists; use --force to overwrite it\n"
    )
    assert path.read_text() == "# mine\n"
    assert main(["config", "init", str(path), "--force"]) == 0
    assert load_config(path) == Config(path=path)


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_option_before_or_after_the_subcommand(tmp_path: Path, where: str) -> None:
    path = tmp_path / "hotswap.toml"
    argv = ["config", "init", "--config", str(path)]
    if where == "before":
        argv = ["--config", str(path), "config", "init"]
    assert main(argv) == 0
    assert path.exists()


def test_config_init_defaults_to_the_environment_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "from-env.toml"
    monkeypatch.setenv("HOTSWAP_CONFIG", str(path))
    assert main(["config", "init"]) == 0
    assert path.exists()


# ----------------------------------------------------------------------- config check


def test_config_check_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out == f"ok: {EXAMPLE}: 3 routes, 1 external routes\n"


def test_config_check_prints_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[deploy]\ndrain_mode = "sometimes"\ndrain_timout = "1s"\n')
    assert main(["config", "check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f'{path}: deploy.drain_mode: expected one of "auto", "inflight", "delay", '
        'got string "sometimes"\n'
        f"{path}: deploy.drain_timout: unknown key; did you mean deploy.drain_timeout?\n"
    )


def test_config_check_missing_file_says_how_to_create_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nope.toml"
    assert main(["--config", str(path), "config", "check"]) == 1
    assert capsys.readouterr().err == (
        f"{path}: no such file; create it with: hotswap config init {path}\n"
    )


# ---------------------------------------------------------------------------- serve


def test_serve_first_run_writes_the_default_config_and_says_so(
    isolated_home: Path, fake_app: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    path = isolated_home / ".config" / "hotswap" / "hotswap.toml"
    assert main(["serve"]) == 0
    assert f"wrote a commented default to {path}" in capsys.readouterr().err
    assert fake_app == [Config(path=path)]


def test_serve_with_a_named_missing_file_writes_nothing(
    tmp_path: Path, fake_app: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing.toml"
    assert main(["serve", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"{path}: no such file; create it with: hotswap config init {path}\n"
    )
    assert not path.exists()
    assert fake_app == []


def test_serve_with_an_invalid_config_reports_it(
    tmp_path: Path, fake_app: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nlisten = "nope"\n')
    assert main(["--config", str(path), "serve"]) == 2
    assert capsys.readouterr().err.startswith(f"{path}: server.listen: invalid address")
    assert fake_app == []


def test_serve_passes_the_loaded_config(fake_app: list[Config]) -> None:
    assert main(["serve", "--config", str(EXAMPLE)]) == 0
    assert fake_app == [load_config(EXAMPLE)]


def test_serve_translates_errors_and_interrupts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = types.ModuleType("hotswap.app")
    monkeypatch.setitem(sys.modules, "hotswap.app", module)

    def fails(config: Config, *, takeover: bool = False) -> int:
        raise ReadinessError("container exited with code 3")

    def interrupted(config: Config, *, takeover: bool = False) -> int:
        raise KeyboardInterrupt

    module.serve = fails  # type: ignore[attr-defined]
    assert main(["serve", "--config", str(EXAMPLE)]) == ReadinessError.exit_code
    assert capsys.readouterr().err.endswith("hotswap: container exited with code 3\n")
    module.serve = interrupted  # type: ignore[attr-defined]
    assert main(["serve", "--config", str(EXAMPLE)]) == 130


def test_serve_json_logs(fake_app: list[Config], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config", str(EXAMPLE), "--log-format", "json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0]["logger"] == "hotswap.cli"
    assert lines[0]["level"] == "info"
    assert lines[0]["message"].startswith("config loaded path=")


def test_serve_takeover_asks_the_app_to_take_over(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("hotswap.app")
    monkeypatch.setitem(sys.modules, "hotswap.app", module)
    asked: list[bool] = []

    def serve(config: Config, *, takeover: bool = False) -> int:
        asked.append(takeover)
        return 0

    module.serve = serve  # type: ignore[attr-defined]
    assert main(["serve", "--config", str(EXAMPLE), "--takeover"]) == 0
    assert main(["serve", "--config", str(EXAMPLE)]) == 0
    assert asked == [True, False]
