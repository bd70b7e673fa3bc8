"""Where hotswap keeps state between runs: pause and maintenance flags, the takeover
socket, issued certificates (tls/store.py).

    $HOTSWAP_STATE_DIR                  when set (tests, several instances on one host)
    /var/lib/hotswap                    as root
    $XDG_STATE_HOME/hotswap             otherwise (~/.local/state/hotswap)

Files that belong to one `serve` (one config) carry `instance_key(config_path)`
in their name, so two instances with different config files on one host never
share them, and a takeover (same config) finds its predecessor's.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

STATE_DIR_ENV = "HOTSWAP_STATE_DIR"


def default_state_dir(*, euid: int | None = None, environ: dict[str, str] | None = None) -> Path:
    """The state directory (see the module docstring); not created here."""
    env = os.environ if environ is None else environ
    explicit = env.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    euid = os.geteuid() if euid is None else euid
    if euid == 0:
        return Path("/var/lib/hotswap")
    state = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/state")
    return Path(state) / "hotswap"


def instance_key(config_path: Path | None) -> str:
    """A short stable name for the instance serving `config_path` (its absolute path)."""
    text = str(config_path.resolve()) if config_path is not None else "-"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed, mode 0700; returns it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
