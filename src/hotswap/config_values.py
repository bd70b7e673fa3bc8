"""Checking single config values against their KeySpec, and wording the problems.

Sans-I/O helpers of the loader in config.py. `convert()` returns plain Python
values (an address is a (host, port) tuple, a choice its string) or raises
ValueError with the message the user sees after "<file>: <key.path>: ". The
route helpers report through a `Report` callback instead, so that one route
can yield several problems.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from hotswap.addresses import normalize_domain, split_host_port
from hotswap.config_schema import ROUTE_KEYS, KeySpec, Kind
from hotswap.units import parse_duration, parse_size

_T = TypeVar("_T")
Report = Callable[[str, str], None]  # (key path, message)
_ROUTE_LEAVES = [spec.leaf for spec in ROUTE_KEYS[1:]]
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def convert(spec: KeySpec, raw: object) -> object:
    """The Python value of `raw` for a section key (server / docker / deploy / external route)."""
    kind = spec.kind
    if kind in (Kind.STRING, Kind.PATH):
        return expect(raw, str, "a string")
    if kind is Kind.BOOLEAN:
        return expect(raw, bool, "a boolean (true or false)")
    if kind is Kind.INTEGER:
        number = expect(raw, int, "an integer")
        if spec.positive and number < 1:
            raise ValueError(f"must be at least 1, got {number}")
        return number
    if kind is Kind.DURATION:
        return _duration(spec, raw)
    if kind is Kind.SIZE:
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError(f'expected a size like "10MB" or 0, got {describe(raw)}')
        return parse_size(raw)
    if kind in (Kind.ADDRESS, Kind.LISTEN_ADDRESS):
        text = expect(raw, str, 'an address like "127.0.0.1:8080"')
        return split_host_port(text, allow_port_zero=kind is Kind.LISTEN_ADDRESS)
    if kind is Kind.OPTIONAL_LISTEN_ADDRESS:
        text = expect(raw, str, 'an address like "0.0.0.0:443" or ""')
        return split_host_port(text, allow_port_zero=True) if text.strip() else None
    if kind is Kind.URL:
        text = expect(raw, str, "a URL")
        parts = urlsplit(text.strip())
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"expected an https:// URL, got {describe(raw)}")
        return text.strip()
    if kind is Kind.CHOICE:
        if raw not in spec.choices:
            names = ", ".join(f'"{value}"' for value in spec.choices)
            match = closest(raw, list(spec.choices)) if isinstance(raw, str) else None
            hint = f' (did you mean "{match}"?)' if match else ""
            raise ValueError(f"expected one of {names}, got {describe(raw)}{hint}")
        return raw
    raise AssertionError(f"no converter for {kind} ({spec.name})")  # pragma: no cover


def _duration(spec: KeySpec, raw: object) -> float:
    # A bare number is refused (seconds? milliseconds?) except 0, which means the same in any unit.
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw == 0:
        seconds = 0.0
    elif isinstance(raw, str):
        seconds = parse_duration(raw)
    else:
        raise ValueError(f'expected a duration like "30s" or "500ms", got {describe(raw)}')
    if spec.positive and seconds <= 0:
        raise ValueError(f"must be greater than 0, got {describe(raw)}")
    return seconds


def relative_to_config(config_path: Path | None, value: str) -> Path:
    """A path named in the config file: a relative one is relative to the file's directory."""
    path = Path(value).expanduser()
    return path if config_path is None else config_path.parent / path


def expect(raw: object, expected: type[_T], description: str) -> _T:
    """`raw` if it has the `expected` TOML type, else ValueError naming both types."""
    # bool is an int in Python but not in TOML: `max_connections = true` is a type error.
    if isinstance(raw, expected) and (expected is bool or not isinstance(raw, bool)):
        return raw
    raise ValueError(f"expected {description}, got {describe(raw)}")


def describe(value: object) -> str:
    """How a TOML value is named in messages: `integer 30`, `string "yes"`, `a table`."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value}"
    if isinstance(value, str):
        return f"string {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a date/time ({value})"


def key_part(part: str) -> str:
    """One key of a dotted path, quoted the TOML way when it is not a bare key."""
    return part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)


def closest(name: str, candidates: list[str]) -> str | None:
    """The candidate most like `name` (difflib ratio >= 0.6), or None."""
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def syntax_error_position(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, int, str]:
    """(line, column, message) of a TOML syntax error; tomllib puts them in the message."""
    message = str(exc)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if match:
        return int(match[1]), int(match[2]), message[: match.start()]
    if message.endswith("(at end of document)"):
        lines = text.split("\n")
        return len(lines), len(lines[-1]) + 1, message.removesuffix(" (at end of document)")
    return 1, 1, message  # pragma: no cover - tomllib always gives a position


def parse_env(raw: object, key: str, report: Report) -> dict[str, str]:
    """A route's env table; every value must be a string (no silent str(1) for the user)."""
    if not isinstance(raw, dict):
        report(key, f"expected a table of strings, got {describe(raw)}")
        return {}
    env: dict[str, str] = {}
    for name, value in raw.items():
        if "=" in name or "\0" in name or not name:
            report(f"{key}.{key_part(name)}", "invalid environment variable name")
        elif not isinstance(value, str):
            report(f"{key}.{key_part(name)}", f"expected a string, got {describe(value)}")
        else:
            env[name] = value
    return env


def parse_cidrs(raw: object, key: str, report: Report) -> tuple[str, ...]:
    """An array of networks ("10.0.0.0/8") or single addresses ("192.0.2.7"), normalised."""
    if not isinstance(raw, list):
        report(key, f'expected an array of CIDRs like ["10.0.0.0/8"], got {describe(raw)}')
        return ()
    networks: list[str] = []
    for index, item in enumerate(raw):
        item_key = f"{key}[{index}]"
        if not isinstance(item, str):
            report(item_key, f"expected a string, got {describe(item)}")
            continue
        try:
            network = ipaddress.ip_network(item.strip())
        except ValueError:
            try:
                loose = ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                report(
                    item_key,
                    f"invalid CIDR {describe(item)}: expected an IP address or address/prefix, "
                    'like "10.0.0.0/8", "192.0.2.7" or "2001:db8::/32"',
                )
            else:
                report(
                    item_key,
                    f'invalid CIDR {describe(item)}: host bits are set; did you mean "{loose}"?',
                )
            continue
        networks.append(str(network))
    return tuple(networks)


def parse_certificate_files(raw: object, key: str, report: Report) -> list[tuple[str, str]]:
    """tls.certificates: (cert, key) paths as written; the loader reads the files later."""
    expected = 'an array of tables like [{ cert = "fullchain.pem", key = "privkey.pem" }]'
    if not isinstance(raw, list):
        report(key, f"expected {expected}, got {describe(raw)}")
        return []
    pairs: list[tuple[str, str]] = []
    for index, item in enumerate(raw):
        item_key = f"{key}[{index}]"
        if not isinstance(item, dict):
            report(item_key, f"expected a table with cert and key, got {describe(item)}")
            continue
        paths: dict[str, str] = {}
        for leaf, value in item.items():
            if leaf not in ("cert", "key"):
                match = closest(leaf, ["cert", "key"])
                hint = f"; did you mean {item_key}.{match}?" if match else ""
                report(f"{item_key}.{key_part(leaf)}", "unknown key" + hint)
            elif not isinstance(value, str) or not value.strip():
                report(f"{item_key}.{leaf}", f"expected a file path, got {describe(value)}")
            else:
                paths[leaf] = value
        for leaf in ("cert", "key"):
            if leaf not in item:
                report(f"{item_key}.{leaf}", "missing; each certificate needs cert and key files")
        if len(paths) == 2:
            pairs.append((paths["cert"], paths["key"]))
    return pairs


def unquoted_domain(raw: str, value: object, key: str, report: Report) -> bool:
    """Report `app.example.com = ...` written without quotes, which TOML nests at the dots."""
    parts = [raw]
    while isinstance(value, dict) and len(value) == 1 and "image" not in value:
        ((part, value),) = value.items()
        # A (misspelt) route key; stricter than closest(), which takes "com" for "command".
        if difflib.get_close_matches(part, _ROUTE_LEAVES, n=1, cutoff=0.7):
            return False
        parts.append(part)
    if "." in raw or len(parts) == 1 or not isinstance(value, str | dict):
        return False
    domain = ".".join(parts)
    report(key, f'TOML splits unquoted keys at dots; write the domain in quotes: "{domain}"')
    return True


def check_image(image: str, key: str, report: Report) -> str | None:
    """`image` if it can be an image reference; Docker checks the rest when it pulls."""
    if not image or any(char.isspace() for char in image):
        report(key, f'expected an image reference like "myapp:latest", got {describe(image)}')
        return None
    return image


def is_host(value: str) -> bool:
    """True for a host name, optionally with a :port (a Host header value)."""
    try:
        normalize_domain(value)
    except ValueError:
        return False
    return True
