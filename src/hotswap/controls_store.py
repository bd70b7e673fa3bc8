"""Pause and maintenance state on disk, so it survives a restart or a takeover.

One JSON file per instance in the state directory (statedir.py):
<state_dir>/routes-<instance key>.json, written atomically (a temporary file,
fsync, rename) in a 0700 directory. A missing file is an empty state; a file
that cannot be read or parsed is reported and ignored (hotswap starts anyway).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hotswap.statedir import default_state_dir, ensure_private_dir, instance_key, write_atomic


def controls_file(config_path: Path | None, state_dir: Path | None = None) -> Path:
    base = state_dir if state_dir is not None else default_state_dir()
    return base / f"routes-{instance_key(config_path)}.json"


def load_controls(path: Path) -> tuple[dict[str, Any], str | None]:
    """(the saved state, None) or ({}, why it could not be read)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"cannot read {path}: {exc}"
    if not isinstance(data, dict):
        return {}, f"{path}: not a JSON object"
    return data, None


def save_controls(path: Path, state: dict[str, Any]) -> None:
    """Write `state` atomically (OSError if the directory cannot be written)."""
    ensure_private_dir(path.parent)
    write_atomic(path, json.dumps(state, indent=2, sort_keys=True).encode() + b"\n")
