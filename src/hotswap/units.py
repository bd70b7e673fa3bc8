"""Durations and sizes as written in the config file, parsed and formatted.

Durations are one or more `<number><unit>` parts, largest unit first
("500ms", "90s", "1m30s", "1.5h", "2h", "30d"), and become float seconds. A day
is 86,400 seconds (durations here are intervals, not calendar dates). A bare
number is refused (is `500` seconds or milliseconds?), except 0.

Sizes are `<number><unit>` or a whole number of bytes and become int bytes.
KB, MB, GB, TB are decimal (1 MB = 1,000,000 bytes); KiB, MiB, GiB, TiB are
binary (1 MiB = 1,048,576 bytes). Units are case-insensitive.

The parsers raise ValueError with a message meant for the user; the caller
adds the file and the key path.
"""

from __future__ import annotations

import json
import re

DURATION_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DAY = 86400
SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
# Spelling used when formatting, largest first; decimal before binary so that
# 100_000_000 reads "100MB" and 1_048_576 reads "1MiB".
_SIZE_FORMAT_ORDER = ("TB", "GB", "MB", "KB", "TiB", "GiB", "MiB", "KiB")

DURATION_HINT = 'a number with a unit (ms, s, m, h, d), like "500ms", "90s" or "1m30s"'
SIZE_HINT = (
    "a number of bytes or a number with a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), "
    'like "512KB", "10MB" or "1MiB"'
)

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")
_SIZE = re.compile(rf"({_NUMBER})\s*([a-z]+)")


def parse_duration(text: str) -> float:
    """Parse "500ms", "90s", "1m30s", "2h", "30d" or "0" into seconds."""
    compact = text.strip()
    if compact == "0":
        return 0.0
    if not compact:
        raise ValueError(f"invalid duration {_quote(text)}: expected {DURATION_HINT}")
    total = 0.0
    position = 0
    seen: list[str] = []
    while position < len(compact):
        match = _DURATION_PART.match(compact, position)
        if match is None:
            if re.fullmatch(_NUMBER, compact):
                raise ValueError(
                    f"invalid duration {_quote(text)}: a unit is required, "
                    f'like "{compact}s" or "{compact}ms"'
                )
            raise ValueError(f"invalid duration {_quote(text)}: expected {DURATION_HINT}")
        number, unit = match.groups()
        if unit in seen or (seen and DURATION_UNITS[unit] >= DURATION_UNITS[seen[-1]]):
            raise ValueError(
                f"invalid duration {_quote(text)}: units must go from largest to smallest, "
                'each at most once, like "1h30m" or "1m30s"'
            )
        seen.append(unit)
        # Divide for ms: 59 / 1000 is the float 0.059, 59 * 0.001 is not.
        total += float(number) / 1000 if unit == "ms" else float(number) * DURATION_UNITS[unit]
        position = match.end()
    return total


def format_duration(seconds: float) -> str:
    """The shortest config spelling of `seconds` that parses back to the same float."""
    if seconds < 0:
        raise ValueError(f"negative duration: {seconds!r}")
    if seconds == int(seconds):
        days, rest = divmod(int(seconds), DAY)
        return f"{days}d" if days and not rest else f"{int(seconds)}s"
    millis = seconds * 1000
    if millis == int(millis) and int(millis) / 1000 == seconds:
        return f"{int(millis)}ms"
    return f"{seconds!r}s"


def parse_size(value: int | str) -> int:
    """Parse a byte count: an int, "0", "512B", "512KB", "10MB", "1MiB", "1.5GB"."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value}: must not be negative")
        return value
    compact = value.strip().lower()
    if compact.isdigit():
        return int(compact)
    match = _SIZE.fullmatch(compact)
    if match is None or match.group(2) not in SIZE_UNITS:
        raise ValueError(f"invalid size {_quote(value)}: expected {SIZE_HINT}")
    number: str = match.group(1)
    unit: str = match.group(2)
    # Exact arithmetic for decimals like "1.5GB": split the digits instead of using floats.
    whole, _, fraction = number.partition(".")
    scale: int = 10 ** len(fraction)
    numerator = int(whole or "0") * scale + int(fraction or "0")
    count, remainder = divmod(numerator * SIZE_UNITS[unit], scale)
    if remainder:
        raise ValueError(f"invalid size {_quote(value)}: not a whole number of bytes")
    return count


def format_size(size: int) -> int | str:
    """The config spelling of `size` bytes: 0 stays 0, else the largest exact unit."""
    if size < 0:
        raise ValueError(f"negative size: {size!r}")
    if size == 0:
        return 0
    for unit in _SIZE_FORMAT_ORDER:
        count, remainder = divmod(size, SIZE_UNITS[unit.lower()])
        if count and not remainder:
            return f"{count}{unit}"
    return f"{size}B"


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
