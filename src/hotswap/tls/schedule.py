"""When to renew a certificate and when to try again after a failure. No I/O.

Renewal: `renew_before` ahead of the certificate's expiry (30 days by default,
a third of a Let's Encrypt certificate's 90). A `renew_before` as long as the
whole lifetime (a short-lived certificate) cannot be honoured without renewing
for ever: then renewal starts with a third of the lifetime left.

Failures back off exponentially — 2, 4, 8, ... minutes up to 6 hours — so a
domain whose DNS does not point here yet costs the CA a few requests an hour,
far below Let's Encrypt's failed-validation limit (5 per hostname per hour);
a Retry-After from the CA (rate limits, maintenance) is always waited out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from hotswap.tls.certificate import Certificate

FIRST_RETRY = 120.0  # seconds after the first failure
MAX_RETRY = 6 * 3600.0


@dataclass(frozen=True)
class Backoff:
    first: float = FIRST_RETRY
    factor: float = 2.0
    maximum: float = MAX_RETRY

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th failure in a row (1 for the first).

        The CA's Retry-After wins when it asks for longer.
        """
        exponent = max(failures - 1, 0)
        delay = (
            self.maximum
            if exponent >= 64
            else min(self.first * self.factor**exponent, self.maximum)
        )
        return max(delay, retry_after) if retry_after is not None else delay


DEFAULT_BACKOFF = Backoff()


def renewal_time(certificate: Certificate, renew_before: float) -> datetime:
    """When `certificate` should be renewed (aware, UTC)."""
    lifetime = certificate.not_after - certificate.not_before
    ahead = timedelta(seconds=renew_before)
    if ahead >= lifetime:
        ahead = lifetime / 3
    return certificate.not_after - ahead


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from `now` that a Retry-After header asks for (delta-seconds or an
    HTTP date, RFC 9110 §10.2.3); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)
