"""Logging: readable lines by default, one JSON object per line with --log-format json."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from hotswap.logs import configure_logging, make_formatter


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_extra_fields() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    logging.getLogger("hotswap.access").info(
        "GET / 200", extra={"client": "127.0.0.1:5000", "status": 200, "duration": 0.012}
    )
    logging.getLogger("hotswap.x").debug("hidden at info")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "info"
    assert entry["logger"] == "hotswap.access"
    assert entry["message"] == "GET / 200"
    assert entry["client"] == "127.0.0.1:5000" and entry["status"] == 200
    assert entry["time"].endswith("+00:00")


def test_json_lines_hold_exceptions_in_one_line() -> None:
    out = io.StringIO()
    configure_logging("json", "debug", stream=out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("hotswap.x").exception("failed key=%s", "v")
    (line,) = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "failed key=v"
    assert "ValueError: boom" in entry["exception"]


def test_text_lines_are_readable_and_configuring_twice_logs_once() -> None:
    out = io.StringIO()
    configure_logging("text", "info", stream=out)
    configure_logging("text", "info", stream=out)
    logging.getLogger("hotswap.deploy").warning("drain timed out container=c1 timeout=30s")
    (line,) = out.getvalue().splitlines()
    assert line.endswith(" WARNING hotswap.deploy: drain timed out container=c1 timeout=30s")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        make_formatter("xml")
