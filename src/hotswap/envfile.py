"""Env files in docker's env-file syntax (`docker run --env-file`), parsed without I/O.

    # a comment            lines starting with "#" (after leading blanks) are skipped
    KEY=value with spaces  the value is everything after the first "=", kept as written
                           (no quotes removed, no variables expanded)
    KEY                    no "=": the value of KEY in hotswap's own environment, if set

Errors name the line, never a value (values are secrets).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class EnvFileError(ValueError):
    """The file cannot be read or a line is invalid; the message says which line."""


def parse_env_file(text: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of an env file's `text` (KEY without "=": taken from `environ`)."""
    environ = os.environ if environ is None else environ
    env: dict[str, str] = {}
    # Lines end at "\n" only (a "\r" before it dropped), as docker reads them; splitlines()
    # would also cut a value at a form feed, U+2028 or a lone "\r".
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not name:
            raise EnvFileError(f"line {number}: no variable name before the =")
        if any(char.isspace() for char in name) or "\0" in name:
            if not sep:  # "KEY value": the line may be a value with its "=" forgotten
                raise EnvFileError(
                    f'line {number}: no "=" and whitespace in the name (the line is not '
                    "shown: it may hold a value)"
                )
            raise EnvFileError(f"line {number}: the variable name {name!r} contains whitespace")
        if sep:
            env[name] = value
        elif name in environ:
            env[name] = environ[name]
    return env


def read_env_file(path: str) -> dict[str, str]:
    """Read and parse the env file at `path` (blocking); EnvFileError says what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EnvFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")  # docker skips a UTF-8 byte order mark too
    except UnicodeDecodeError as exc:
        raise EnvFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return parse_env_file(text)
    except EnvFileError as exc:
        raise EnvFileError(f"{path}: {exc}") from None
