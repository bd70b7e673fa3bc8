"""Helpers shared by the bench/ scripts: processes, ports, RSS, reports.

Standard library only, so every bench script runs with any Python >= 3.11;
`hotswap` itself is found as an executable (see `hotswap_command`).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


def log(message: str, *, out: TextIO = sys.stderr) -> None:
    """Progress line on stderr (stdout carries the tables)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=out, flush=True)


def hotswap_command() -> list[str]:
    """How to run `hotswap`: $HOTSWAP, $VENV/bin (default: the repo's .venv, as scripts/test
    makes it), PATH, else `python -m hotswap` with this interpreter."""
    explicit = os.environ.get("HOTSWAP")
    if explicit:
        return explicit.split()
    for candidate in (project_venv() / "bin" / "hotswap",):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return [str(candidate)]
    found = shutil.which("hotswap")
    if found:
        return [found]
    return [sys.executable, "-m", "hotswap"]


def project_venv() -> Path:
    """$VENV (relative to the repo), else the repo's .venv: where scripts/test installs."""
    venv = Path(os.environ.get("VENV", REPO_ROOT / ".venv"))
    return venv if venv.is_absolute() else REPO_ROOT / venv


def reexec_in_venv() -> None:
    """Re-run this script with the project venv's Python when it is not the running one.

    The optional `.[bench]` extra (matplotlib) is installed there; the scripts
    themselves need only the standard library. HOTSWAP_BENCH_NO_REEXEC=1 disables it.
    """
    python = project_venv() / "bin" / "python"
    if os.environ.get("HOTSWAP_BENCH_NO_REEXEC") or not python.is_file():
        return
    if Path(sys.prefix).resolve() == project_venv().resolve():
        return
    os.environ["HOTSWAP_BENCH_NO_REEXEC"] = "1"
    os.execv(str(python), [str(python), sys.argv[0], *sys.argv[1:]])


def free_port() -> int:
    """A loopback port that is free now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def raise_nofile(wanted: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards `wanted` (children inherit it); the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def rss_kib(pid: int) -> int | None:
    """Resident set size of `pid` in KiB (VmRSS from /proc), None if unknown."""
    return _proc_status_kib(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int | None:
    return _proc_status_kib(pid, "VmHWM")


def _proc_status_kib(pid: int, key: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


@dataclass
class Proc:
    """A child process this script started; stopped by its PID only."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logfile = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, not the server
        )
        logfile.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_port(self, port: int, timeout: float) -> bool:
        """Wait until `port` accepts connections; False if the process died or time ran out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if port_answers(port):
                return True
            time.sleep(0.05)
        return False

    def stop(self, grace: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process (by PID), wait up to `grace`, then SIGKILL it."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
                return self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                return self.popen.wait(timeout=5)
        return self.popen.returncode

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (pct in 0..100) of `values`; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def tool_version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "?"


def machine_info() -> dict[str, Any]:
    """What the figures were measured on (goes in every report)."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1) if mem_kib else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": os.getloadavg(),
    }


def machine_markdown(info: dict[str, Any]) -> str:
    load = ", ".join(f"{x:.2f}" for x in info["loadavg"])
    return (
        f"- date (UTC): {info['date_utc']}\n"
        f"- CPU: {info['cpu']} x {info['cpus']}, memory {info['memory_gib']} GiB\n"
        f"- kernel {info['kernel']}, Python {info['python']}\n"
        f"- load average at start: {load}\n"
    )


def write_report(name: str, markdown: str, data: dict[str, Any]) -> tuple[Path, Path]:
    """Write bench/results/<name>.md and .json; return both paths."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    md_path = RESULTS_DIR / f"{name}.md"
    json_path = RESULTS_DIR / f"{name}.json"
    md_path.write_text(markdown)
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return md_path, json_path


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    out = []
    for n, row in enumerate(cells):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n"
