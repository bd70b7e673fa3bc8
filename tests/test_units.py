"""Durations and sizes: parsing, formatting, and the messages for bad values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotswap.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("90s", 90.0),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("30d", 2_592_000.0),
        ("1d12h", 129_600.0),
        ("1.5s", 1.5),
        ("1h2m3s4ms", 3723.004),
        ("0s", 0.0),
        ("0", 0.0),
        (" 10s ", 10.0),
    ],
)
def test_parse_duration_accepts_units_largest_first(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", 'invalid duration "10": a unit is required, like "10s" or "10ms"'),
        (
            "",
            'invalid duration "": expected a number with a unit (ms, s, m, h, d), '
            'like "500ms", "90s" or "1m30s"',
        ),
        (
            "5 minutes",
            'invalid duration "5 minutes": expected a number with a unit '
            '(ms, s, m, h, d), like "500ms", "90s" or "1m30s"',
        ),
        (
            "-1s",
            'invalid duration "-1s": expected a number with a unit (ms, s, m, h, d), '
            'like "500ms", "90s" or "1m30s"',
        ),
        (
            "30s1m",
            'invalid duration "30s1m": units must go from largest to smallest, '
            'each at most once, like "1h30m" or "1m30s"',
        ),
        (
            "1s1s",
            'invalid duration "1s1s": units must go from largest to smallest, '
            'each at most once, like "1h30m" or "1m30s"',
        ),
        (
            "12h1d",
            'invalid duration "12h1d": units must go from largest to smallest, '
            'each at most once, like "1h30m" or "1m30s"',
        ),
    ],
)
def test_parse_duration_rejects_with_a_hint(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (90.0, "90s"),
        (0.5, "500ms"),
        (2.0, "2s"),
        (0.0015, "0.0015s"),
        (86_400.0, "1d"),
        (2_592_000.0, "30d"),
        (129_600.0, "129600s"),
    ],
)
def test_format_duration_is_short(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**9))
def test_format_duration_round_trips_milliseconds(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.floats(min_value=1e-3, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_format_duration_round_trips_any_float(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (0, 0),
        ("0", 0),
        (1024, 1024),
        ("512B", 512),
        ("512KB", 512_000),
        ("10MB", 10_000_000),
        ("100MB", 100_000_000),
        ("1GB", 1_000_000_000),
        ("1MiB", 1_048_576),
        ("1KiB", 1024),
        ("2GiB", 2 * 1024**3),
        ("1.5GB", 1_500_000_000),
        ("10mb", 10_000_000),
        ("10 MB", 10_000_000),
    ],
)
def test_parse_size_decimal_and_binary_units(value: int | str, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "10 potatoes",
            'invalid size "10 potatoes": expected a number of bytes or a number '
            "with a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), "
            'like "512KB", "10MB" or "1MiB"',
        ),
        (
            "MB",
            'invalid size "MB": expected a number of bytes or a number '
            "with a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), "
            'like "512KB", "10MB" or "1MiB"',
        ),
        ("1.5B", 'invalid size "1.5B": not a whole number of bytes'),
        (-1, "invalid size -1: must not be negative"),
    ],
)
def test_parse_size_rejects_with_a_hint(value: int | str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, 0), (100_000_000, "100MB"), (1_048_576, "1MiB"), (1000, "1KB"), (1536, "1536B")],
)
def test_format_size_uses_the_largest_exact_unit(size: int, text: int | str) -> None:
    assert format_size(size) == text


@given(st.integers(min_value=0, max_value=2**50))
def test_format_size_round_trips(size: int) -> None:
    assert parse_size(format_size(size)) == size
