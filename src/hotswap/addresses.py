"""Domain names and host:port addresses: validation and normalisation, no I/O.

Domains are ASCII hostnames (RFC 1123 labels: letters, digits, hyphens; an
internationalised name is written in its punycode form "xn--..."). They are
normalised to lower case without a port and without a trailing dot, the same
way the proxy normalises a Host header, so a route key and a request agree.

The parsers raise ValueError with a message meant for the user; the caller
adds the file and the key path.
"""

from __future__ import annotations

import ipaddress
import json
import re

MAX_DOMAIN_LENGTH = 253
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT_SUFFIX = re.compile(r":\d*$")

ADDRESS_HINT = 'expected host:port, like "127.0.0.1:8080" or "[::1]:8080"'


def normalize_domain(text: str) -> str:
    """Return `text` as a route key: lower case, no ":port", no trailing dot.

    Raises ValueError naming what is wrong when `text` is not a hostname.
    """
    name = _PORT_SUFFIX.sub("", text.strip()).lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ValueError(f"invalid domain {_quote(text)}: empty")
    if not name.isascii():
        raise ValueError(
            f"invalid domain {_quote(text)}: only ASCII is allowed; "
            'write an internationalised name in its punycode form ("xn--...")'
        )
    if len(name) > MAX_DOMAIN_LENGTH:
        raise ValueError(
            f"invalid domain {_quote(text)}: longer than {MAX_DOMAIN_LENGTH} characters"
        )
    for label in name.split("."):
        if not _LABEL.fullmatch(label):
            raise ValueError(
                f"invalid domain {_quote(text)}: each dot-separated label must be 1-63 letters, "
                "digits or hyphens, not starting or ending with a hyphen"
            )
    return name


def split_host_port(text: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port" into (host, port); the host keeps no brackets.

    `allow_port_zero` is for listen addresses: port 0 asks the OS for a free port.
    """
    invalid = f"invalid address {_quote(text)}"
    value = text.strip()
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"{invalid}: {ADDRESS_HINT}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{invalid}: {_quote(host)} is not an IPv6 address") from None
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or not host:
            raise ValueError(f"{invalid}: {ADDRESS_HINT}")
        if ":" in host:
            raise ValueError(f'{invalid}: write an IPv6 address in brackets, like "[::1]:8080"')
        if not _is_ipv4(host) and not _is_hostname(host):
            raise ValueError(f"{invalid}: {_quote(host)} is not an IPv4 address or a host name")
    if not port_text.isdigit():
        raise ValueError(f"{invalid}: port {_quote(port_text)} is not a number")
    port = int(port_text)
    low = 0 if allow_port_zero else 1
    if not low <= port <= 65535:
        raise ValueError(f"{invalid}: port must be {low}-65535")
    return host, port


def _is_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _is_hostname(host: str) -> bool:
    # All-numeric names like "1.2.3.999" are botched IPv4 addresses, not host names.
    if re.fullmatch(r"[\d.]+", host):
        return False
    try:
        normalize_domain(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """True when `host` (an IP address or "localhost") can only be reached from this machine."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
