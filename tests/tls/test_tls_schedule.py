"""Renewal times, back-off after failures, and the CA's Retry-After."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tls_helpers import ThrowawayCA

from hotswap.tls.redirect import https_location
from hotswap.tls.schedule import Backoff, parse_retry_after, renewal_time

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_renewal_is_renew_before_ahead_of_expiry(tmp_path: Path) -> None:
    certificate = ThrowawayCA(tmp_path).issue("a.example").certificate()
    ninety_days = replace(certificate, not_before=NOW, not_after=NOW + timedelta(days=90))
    assert renewal_time(ninety_days, 30 * 86400) == NOW + timedelta(days=60)
    assert renewal_time(ninety_days, 86400) == NOW + timedelta(days=89)


def test_a_short_lived_certificate_renews_with_a_third_of_its_life_left(tmp_path: Path) -> None:
    certificate = ThrowawayCA(tmp_path).issue("a.example").certificate()
    six_days = replace(certificate, not_before=NOW, not_after=NOW + timedelta(days=6))
    assert renewal_time(six_days, 30 * 86400) == NOW + timedelta(days=4)


def test_backoff_doubles_up_to_a_maximum_and_retry_after_wins_when_longer() -> None:
    backoff = Backoff(first=120, factor=2, maximum=3600)
    assert [backoff.delay(n) for n in range(1, 7)] == [120, 240, 480, 960, 1920, 3600]
    assert backoff.delay(1000) == 3600
    assert backoff.delay(1, retry_after=86400) == 86400  # a rate limit: wait it out
    assert backoff.delay(3, retry_after=10) == 480


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("120", NOW) == 120
    assert parse_retry_after("Tue, 01 Jan 2030 01:00:00 GMT", NOW) == 3600
    assert parse_retry_after("Mon, 31 Dec 2029 00:00:00 GMT", NOW) == 0  # in the past
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_the_redirect_keeps_path_and_query_and_names_a_port_other_than_443() -> None:
    assert https_location("app.example.com", "/a/b?c=1", 443) == "https://app.example.com/a/b?c=1"
    assert https_location("app.example.com", "/", 8443) == "https://app.example.com:8443/"
    assert https_location("[::1]", "*", 8443) == "https://[::1]:8443/"
