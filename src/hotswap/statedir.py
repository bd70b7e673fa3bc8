"""Where hotswap keeps state between runs, and how it writes it: pause and
maintenance flags, the takeover socket; issued certificates (tls/store.py: the
default tls.certs_dir is system_state_dir()/tls, whatever $HOTSWAP_STATE_DIR says).

    $HOTSWAP_STATE_DIR                  when set (tests, several instances on one host)
    /var/lib/hotswap                    as root
    $XDG_STATE_HOME/hotswap             otherwise (~/.local/state/hotswap)

Files that belong to one `serve` (one config) carry `instance_key(config_path)`
in their name, so two instances with different config files on one host never
share them, and a takeover (same config) finds its predecessor's. State files are
replaced with write_atomic() (0600, fsync, rename).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

STATE_DIR_ENV = "HOTSWAP_STATE_DIR"
PRIVATE_FILE_MODE = 0o600
TEMP_SUFFIX = ".tmp"  # of write_atomic's temporary files (a crash may leave one)


def default_state_dir(*, euid: int | None = None, environ: dict[str, str] | None = None) -> Path:
    """The state directory (see the module docstring); not created here."""
    explicit = (os.environ if environ is None else environ).get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    return system_state_dir(euid=euid, environ=environ)


def system_state_dir(*, euid: int | None = None, environ: dict[str, str] | None = None) -> Path:
    """/var/lib/hotswap as root, else $XDG_STATE_HOME/hotswap (~/.local/state/hotswap),
    whatever $HOTSWAP_STATE_DIR says."""
    env = os.environ if environ is None else environ
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


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file whole."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
