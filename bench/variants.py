"""hotswap variants for the bench scripts: the codec and the access log, and what a build accepts.

A variant is written CODEC[+LOG]:

- CODEC is `fast` or `h11` (the config key `[server] http_parser`), or `default`
  (no key: whatever codec the build uses by default, the only one before the key
  existed);
- `+log` turns the access log on in its default format (text); `+json` and
  `+combined` pick another format. Without a suffix the access log is off.

The access log: a build that knows `[server] access_log` (issue 12) gets the key
("off", "text", "json", "combined") and runs at `--log-level info` either way, so
only the access log differs; an older build ties it to the log level, so the
variant runs at `info` (access log on, text) or `warning` (off).

Every generated config is checked with `hotswap config check` before the server
starts; a variant the build rejects (an unknown key, a value it does not know)
is skipped with the reason `config check` gave, never started.

Standard library only, like benchlib.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from benchlib import hotswap_command

CODECS = ("fast", "h11", "default")
LOG_SUFFIXES = {"log": "text", "json": "json", "combined": "combined"}
AUTO = "auto"
CHECK_TIMEOUT = 60.0


@dataclass(frozen=True)
class Variant:
    codec: str  # fast | h11 | default
    access_log: str = "off"  # off | text | json | combined

    @property
    def name(self) -> str:
        if self.access_log == "off":
            return self.codec
        suffix = next(k for k, v in LOG_SUFFIXES.items() if v == self.access_log)
        return f"{self.codec}+{suffix}"

    @property
    def log_off(self) -> Variant:
        """The same codec with the access log off (what `+log` is compared with)."""
        return replace(self, access_log="off")


def parse_variants(text: str) -> list[Variant]:
    """`fast,h11,fast+log` -> Variants, in order, without duplicates; ValueError when malformed."""
    variants: list[Variant] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        codec, plus, suffix = item.partition("+")
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r} in {item!r}; expected one of {CODECS}")
        if plus and suffix not in LOG_SUFFIXES:
            raise ValueError(
                f"unknown access log suffix {suffix!r} in {item!r}; expected one of "
                + ", ".join("+" + s for s in LOG_SUFFIXES)
            )
        variant = Variant(codec, LOG_SUFFIXES[suffix] if plus else "off")
        if variant not in variants:
            variants.append(variant)
    if not variants:
        raise ValueError("no variant given")
    return variants


@dataclass(frozen=True)
class BuildSupport:
    """Which of the variant keys the installed hotswap accepts (from `hotswap config check`)."""

    http_parser: bool
    access_log: bool
    notes: tuple[str, ...] = ()

    def default_variants(self, *, with_log: bool = True) -> list[Variant]:
        """What `auto` means: both codecs and the fast one with its access log when the build
        has the codec key; else its one codec, with and without the access log."""
        if self.http_parser:
            names = "fast,fast+log,h11" if with_log else "fast,h11"
        else:
            names = "default,default+log" if with_log else "default"
        return parse_variants(names)


@dataclass(frozen=True)
class Launch:
    """How to run one variant: extra `[server]` lines and the --log-level."""

    server_lines: str
    log_level: str


def launch(variant: Variant, support: BuildSupport) -> Launch | str:
    """The config lines and log level for `variant`, or why this build cannot run it."""
    lines = []
    if variant.codec != "default":
        lines.append(f'http_parser = "{variant.codec}"')
    if support.access_log:
        lines.append(f'access_log = "{variant.access_log}"')
        level = "info"
    elif variant.access_log in ("off", "text"):
        level = "info" if variant.access_log == "text" else "warning"
    else:
        return (
            f"access_log = {variant.access_log!r} needs the [server] access_log key, "
            "which this hotswap does not accept"
        )
    return Launch("".join(line + "\n" for line in lines), level)


def config_check(path: Path) -> list[str]:
    """The problems `hotswap config check` reports for `path` (empty when it accepts it).

    Its lines read "<file>: <key path>: <problem>"; the file name is dropped.
    """
    try:
        done = subprocess.run(
            [*hotswap_command(), "config", "check", str(path)],
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"cannot run `hotswap config check`: {exc}"]
    if done.returncode == 0:
        return []
    prefix = f"{path}: "
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    problems = [line.removeprefix(prefix) for line in lines]
    return problems or [f"`hotswap config check` exited with {done.returncode}"]


def probe_build(work: Path, render: Callable[[str], str]) -> BuildSupport:
    """Which variant keys the build accepts: `render(server_lines)` is a valid config for it
    with `server_lines` added to `[server]`; each key is checked on its own."""
    work.mkdir(parents=True, exist_ok=True)
    base = work / "probe-base.toml"
    base.write_text(render(""))
    problems = config_check(base)
    if problems:
        raise RuntimeError("hotswap rejects the bench's base config: " + "; ".join(problems))
    found: dict[str, bool] = {}
    notes: list[str] = []
    for key, line in (("http_parser", 'http_parser = "h11"'), ("access_log", 'access_log = "off"')):
        path = work / f"probe-{key}.toml"
        path.write_text(render(line + "\n"))
        problems = config_check(path)
        found[key] = not problems
        if problems:
            notes.append(f"{key}: " + "; ".join(problems))
    return BuildSupport(found["http_parser"], found["access_log"], tuple(notes))
