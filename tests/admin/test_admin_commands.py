"""The CLI's deploy / rollback / status / reload commands against an in-process admin server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from admin_fakes import TOKEN, start

from hotswap.cli import main
from hotswap.errors import ConfigError


def write_config(tmp_path: Path, port: int, token: str = TOKEN) -> str:
    path = tmp_path / "hotswap.toml"
    path.write_text(
        f'[server]\nadmin_listen = "127.0.0.1:{port}"\nadmin_token = "{token}"\n'
        '[routes]\n"app.example.com" = "app:latest"\n'
    )
    return str(path)


async def run_cli(*argv: str) -> int:
    return await trio.to_thread.run_sync(main, list(argv))


async def test_deploy_prints_progress_and_exits_0_then_1_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            config = write_config(tmp_path, h.port)
            h.app.deployer.release.set()
            ok = await run_cli("deploy", "app.example.com", "--config", config)
            out_ok = capsys.readouterr().out
            failed = await run_cli(
                "deploy", "app.example.com", "--image", "app:bad", "--config", config
            )
            captured = capsys.readouterr()
            nursery.cancel_scope.cancel()
    assert ok == 0
    assert [line.split()[1] for line in out_ok.splitlines()[:-1]] == [
        "pulling",
        "starting",
        "switched",
        "draining",
        "draining",
        "stopped",
    ]
    assert out_ok.splitlines()[-1].startswith("✓ deployed app:2 to app.example.com")
    assert failed == 1
    assert "container exited with code 3" in captured.out.splitlines()[-1]


async def test_rollback_and_status_and_status_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            config = write_config(tmp_path, h.port)
            h.app.deployer.release.set()
            assert await run_cli("deploy", "app.example.com", "--config", config) == 0
            assert await run_cli("rollback", "app.example.com", "--config", config) == 0
            assert "deployed app:1" in capsys.readouterr().out
            assert await run_cli("status", "--config", config) == 0
            table = capsys.readouterr().out
            assert await run_cli("status", "--json", "--config", config) == 0
            document = json.loads(capsys.readouterr().out)
            nursery.cancel_scope.cancel()
    assert table.splitlines()[0].startswith("DOMAIN")
    assert table.splitlines()[1].split()[:3] == ["app.example.com", "app:latest", "c" * 12]
    assert [r["domain"] for r in document["routes"]] == ["app.example.com", "legacy.example.com"]


async def test_reload_prints_changes_or_each_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            config = write_config(tmp_path, h.port)
            assert await run_cli("reload", "--config", config) == 0
            assert capsys.readouterr().out == "reloaded: route b.example.com added\n"
            h.app.reload_result = ConfigError(["f.toml: a: bad", "f.toml: b: worse"])
            assert await run_cli("reload", "--config", config) == 1
            assert capsys.readouterr().err == "hotswap: f.toml: a: bad\nf.toml: b: worse\n"
            nursery.cancel_scope.cancel()


async def test_a_wrong_token_or_no_server_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            config = write_config(tmp_path, h.port, token="wrong")
            assert await run_cli("deploy", "app.example.com", "--config", config) == 1
            assert "refused the admin token" in capsys.readouterr().err
            nursery.cancel_scope.cancel()
    assert h.app.deployer.calls == []
    config = write_config(tmp_path, h.port)  # the server is gone now
    assert await run_cli("status", "--config", config) == 1
    assert "connection refused — is `hotswap serve` running?" in capsys.readouterr().err


async def test_pause_resume_and_maintenance_through_the_cli_and_in_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            h = await start(nursery)
            config = write_config(tmp_path, h.port)
            assert (
                await run_cli("pause", "app.example.com", "--timeout", "45s", "--config", config)
                == 0
            )
            assert h.app.controls.snapshot()["app.example.com"]["paused"] == {"timeout": 45.0}
            assert await run_cli("status", "--config", config) == 0
            status_out = capsys.readouterr().out
            assert await run_cli("resume", "app.example.com", "--config", config) == 0
            assert (
                await run_cli(
                    "maintenance",
                    "app.example.com",
                    "--message",
                    "back soon",
                    "--retry-after",
                    "5m",
                    "--config",
                    config,
                )
                == 0
            )
            maintenance = h.app.controls.snapshot()["app.example.com"]["maintenance"]
            assert maintenance == {"message": "back soon", "retry_after": 300.0}
            assert await run_cli("maintenance", "app.example.com", "--off", "--config", config) == 0
            assert h.app.controls.snapshot() == {}
            unknown = await run_cli("pause", "nope.example.com", "--config", config)
            bad = await run_cli("pause", "app.example.com", "--timeout", "soon", "--config", config)
            captured = capsys.readouterr()
            nursery.cancel_scope.cancel()
    assert "paused: new requests wait up to 45s" in status_out
    assert "resumed app.example.com" in captured.out
    assert "in maintenance (503, Retry-After 300s)" in captured.out
    assert "maintenance off" in captured.out
    assert unknown != 0 and "unknown route nope.example.com" in captured.err
    assert bad != 0 and "timeout" in captured.err
