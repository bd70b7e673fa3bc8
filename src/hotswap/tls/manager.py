"""The TLS side of a running hotswap: certificates served, ACME orders kept valid.

    TlsManager.run()                  (a task in the app's root nursery)
    └── one task per ACME order       load the stored certificate, then loop:
                                      wait until it is due (renewal time, or the end
                                      of a back-off), order, publish, schedule the next

Orders are independent tasks: a domain whose validation fails, or whose CA is
slow, delays no other. A new certificate is published at once (live.py): the
next handshake uses it. Waiting is a cancel scope on a wake-up Event, never a
poll of our own state: `wake()` (a reload, a test moving the clock) makes
every task look at its schedule again.

What the proxy uses (see docs/tls.md, "Integration"):
    context                        the listener's SSLContext (SNI -> certificate)
    challenge_response(...)        the body for a pending HTTP-01 challenge, or None
    redirect_location(host, path)  the https URL to redirect to, or None
    hsts                           the Strict-Transport-Security value, or None
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from hotswap.config import Address, Config, TlsConfig
from hotswap.config_values import relative_to_config
from hotswap.tls.acme_client import AcmeError
from hotswap.tls.certificate import Certificate, CertificateError
from hotswap.tls.challenges import PendingChallenges, challenge_response
from hotswap.tls.issuer import issue_certificate
from hotswap.tls.live import LiveCertificates
from hotswap.tls.plan import CertificateOrder, TlsPlan, plan_tls
from hotswap.tls.redirect import https_location
from hotswap.tls.schedule import DEFAULT_BACKOFF, Backoff, renewal_time
from hotswap.tls.store import CertificateStore, default_certs_dir

log = logging.getLogger(__name__)

ACME_THREADS = 4  # blocking ACME calls at once, all orders together
ATTEMPT_TIMEOUT = 300.0  # one whole order: connect, order, validation, download
MAX_SLEEP = 12 * 3600.0  # look at the wall clock again at least this often

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class OrderState:
    """An ACME order's certificate and how getting it went; what `status` shows."""

    order: CertificateOrder
    certificate: Certificate | None = None
    certificate_directory: str = ""  # the CA the certificate came from
    store_directory: str = ""  # the CA whose stored certificate was loaded last
    state: str = "waiting"  # waiting | issuing | valid | failed
    failures: int = 0  # in a row
    last_error: str = ""
    last_error_at: datetime | None = None
    next_attempt: datetime | None = None  # the end of the back-off
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    def to_json(self, renew_before: float) -> dict[str, Any]:
        certificate = self.certificate
        return {
            "order": self.order.name,
            "names": list(self.order.names),
            "state": self.state,
            "failures": self.failures,
            "last_error": self.last_error or None,
            "last_error_at": _iso(self.last_error_at),
            "next_attempt": _iso(self.next_attempt),
            "renew_at": _iso(renewal_time(certificate, renew_before)) if certificate else None,
        }


class TlsManager:
    """Certificates from files and from ACME, served through one LiveCertificates."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = utc_now,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.tls: TlsConfig = config.tls
        self.plan: TlsPlan = plan_tls(config)
        self.live = LiveCertificates()
        self.pending = PendingChallenges()
        certs_dir = config.tls.certs_dir
        root = relative_to_config(config.path, certs_dir) if certs_dir else default_certs_dir()
        self.store = CertificateStore(root)
        self.clock = clock
        self.backoff = backoff
        self._states: dict[str, OrderState] = {}
        self._wake = trio.Event()
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._orders_released = trio.Event()
        self._limiter = trio.CapacityLimiter(ACME_THREADS)
        self._store_lock = trio.Lock()
        self._store_open = False
        self._account_key: bytes | None = None
        # The HTTPS port in redirects; the listener sets the bound port when tls.listen has 0.
        self.https_port = config.tls.listen.port if config.tls.listen else 443
        self._publish()  # the certificate files were checked when the config was loaded

    # -- for the proxy ------------------------------------------------------------------

    @property
    def context(self) -> ssl.SSLContext:
        """The SSLContext of the TLS listener: SNI picks the certificate."""
        return self.live.context

    @property
    def listen(self) -> Address | None:
        return self.tls.listen

    @property
    def handshake_timeout(self) -> float:
        return self.tls.handshake_timeout

    @property
    def hsts(self) -> str | None:
        """The Strict-Transport-Security value for HTTPS responses, or None."""
        return self.tls.hsts or None

    def challenge_response(
        self, method: str | bytes, host: str, target: str | bytes
    ) -> bytes | None:
        """The body (200, application/octet-stream) for a pending ACME challenge, or None."""
        if not len(self.pending):
            return None  # the plain listener's hot path: no order is pending
        return challenge_response(self.pending, method, host, target)

    def has_certificate(self, host: str) -> bool:
        """True when a TLS handshake for `host` would succeed now."""
        return self.live.covers(host)

    def redirect_location(self, host: str, target: str) -> str | None:
        """Where a plain-HTTP request should be redirected (308), or None to serve it.

        Only with an HTTPS listener, tls.redirect_http, and a certificate for
        `host` (the normalised route host). Ask challenge_response first.
        """
        if self.https_origin(host) is None:
            return None
        return https_location(host, target, self.https_port)

    def https_origin(self, host: str) -> str | None:
        """ "https://<host>[:port]" when plain-HTTP requests for `host` go to HTTPS (an
        HTTPS listener, tls.redirect_http, a certificate for `host`), else None."""
        listen = self.tls.listen
        if listen is None or not self.tls.redirect_http or not self.live.covers(host):
            return None
        return https_location(host, "", self.https_port).rstrip("/")

    # -- running -------------------------------------------------------------------------

    async def run(
        self,
        *,
        hold_orders: bool = False,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Load stored certificates, signal started (HTTPS can serve them), keep orders valid.

        `hold_orders`: place no order until release_orders() — the app calls it once
        the plain listener that answers the CA's challenges is up.
        """
        async with trio.open_nursery() as nursery:
            for order in self.plan.orders.values():
                self._states[order.name] = OrderState(order)
            for state in self._states.values():
                await self._load_stored(state)
            self._publish()
            task_status.started()
            if hold_orders:
                await self._orders_released.wait()
            self._nursery = nursery
            for state in self._states.values():
                nursery.start_soon(self._maintain, state)
            await trio.sleep_forever()

    def release_orders(self) -> None:
        """Let run(hold_orders=True) start placing ACME orders."""
        self._orders_released.set()

    def apply(self, config: Config) -> list[str]:
        """A reload: new certificate files, ACME settings and routes; one line per change."""
        old, new = self.plan, plan_tls(config)
        self.tls, self.plan = config.tls, new
        changes: list[str] = []
        if old.static != new.static:
            changes.append(f"tls: certificate files reloaded ({len(new.static)} in use)")
        if old.disabled != new.disabled:
            changes.append(f"tls: plain HTTP only for {', '.join(sorted(new.disabled)) or 'none'}")
        if old.acme != new.acme or old.renew_before != new.renew_before:
            changes.append("tls: ACME " + ("settings changed" if new.acme else "is off"))
        for name, state in list(self._states.items()):
            if name in new.orders:
                state.order = new.orders[name]
                continue
            state.scope.cancel()
            del self._states[name]
            changes.append(f"tls: {name} no longer gets certificates from ACME")
        for name, order in new.orders.items():
            if name not in self._states:
                state = self._states[name] = OrderState(order)
                if self._nursery is not None:
                    self._nursery.start_soon(self._maintain, state)
                changes.append(f"tls: {name} gets a certificate from ACME")
        self._publish()
        self.wake()
        return changes

    def wake(self) -> None:
        """Make every order look at its schedule again (settings or the clock changed)."""
        self._wake.set()
        self._wake = trio.Event()

    async def changed(self) -> None:
        """Return at the next change: certificates published, or an order failed."""
        await self._changed.wait()

    def _signal_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    # -- status --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The `tls` part of GET /v1/status (JSON-ready)."""
        by_name = {name: state for state in self._states.values() for name in state.order.names}
        domains: dict[str, Any] = {}
        for domain in self.plan.domains:
            certificate = self.live.certificate_for(domain)
            state = by_name.get(domain)
            entry: dict[str, Any] = {
                "https": certificate is not None and self.tls.listen is not None,
                "off": domain in self.plan.disabled,
                "certificate": certificate.describe() if certificate else None,
            }
            if state is not None:
                entry["acme"] = state.to_json(self.plan.renew_before)
            domains[domain] = entry
        acme = self.plan.acme
        return {
            "listen": str(self.tls.listen) if self.tls.listen else None,
            "acme": {"directory": acme.directory, "email": acme.email} if acme else None,
            "certificates": [certificate.describe() for certificate in self.plan.static],
            "domains": domains,
        }

    def expiry_samples(self) -> list[tuple[str, float]]:
        """(domain, not-after as a Unix time) for each domain that has a certificate."""
        samples = []
        for domain in self.plan.domains:
            certificate = self.live.certificate_for(domain)
            if certificate is not None:
                samples.append((domain, certificate.not_after.timestamp()))
        return samples

    def failure_samples(self) -> list[tuple[str, int]]:
        """(order name, failures in a row) for each ACME order."""
        return [(name, state.failures) for name, state in self._states.items()]

    # -- one order -----------------------------------------------------------------------

    async def _maintain(self, state: OrderState) -> None:
        with state.scope:
            while True:
                acme = self.plan.acme
                if acme is None:  # pragma: no cover - apply() cancels orders when ACME is off
                    return
                if state.store_directory != acme.directory:
                    await self._load_stored(state)
                    self._publish()
                now = self.clock()
                due = self._due(state, acme.directory, now)
                if due <= now:
                    await self._attempt(state)
                    continue
                if state.state != "failed":
                    state.state = "valid" if state.certificate else "waiting"
                await self._sleep_until(due)

    def _due(self, state: OrderState, directory: str, now: datetime) -> datetime:
        if state.next_attempt is not None and state.next_attempt > now:
            return state.next_attempt
        certificate = state.certificate
        if (
            certificate is None
            or state.certificate_directory != directory
            or not all(certificate.covers(name) for name in state.order.names)
        ):
            return now
        return renewal_time(certificate, self.plan.renew_before)

    async def _attempt(self, state: OrderState) -> None:
        acme = self.plan.acme
        assert acme is not None
        order = state.order
        state.state = "issuing"
        log.info(
            "acme order name=%s names=%s directory=%s",
            order.name,
            ",".join(order.names),
            acme.directory,
        )
        try:
            with trio.fail_after(ATTEMPT_TIMEOUT):
                account_key = await self._ensure_account_key()
                certificate = await issue_certificate(
                    acme, account_key, order, self.pending, self.store, self._limiter
                )
        except (AcmeError, CertificateError, OSError, trio.TooSlowError) as exc:
            self._failed(state, exc)
            return
        state.certificate, state.certificate_directory = certificate, acme.directory
        state.state, state.failures, state.next_attempt = "valid", 0, None
        self._publish()
        log.info(
            "acme certificate issued name=%s names=%s issuer=%s not_after=%s",
            order.name,
            ",".join(certificate.names),
            certificate.issuer,
            certificate.not_after.isoformat(),
        )

    def _failed(self, state: OrderState, exc: Exception) -> None:
        now = self.clock()
        if isinstance(exc, trio.TooSlowError):
            message = f"the order took longer than {ATTEMPT_TIMEOUT:.0f}s"
        else:
            message = str(exc)
        state.failures += 1
        delay = self.backoff.delay(state.failures, getattr(exc, "retry_after", None))
        state.state = "failed"
        state.last_error, state.last_error_at = message, now
        state.next_attempt = now + timedelta(seconds=delay)
        log.warning(
            "acme order failed name=%s failures=%d retry_in=%.0fs error=%s",
            state.order.name,
            state.failures,
            delay,
            message,
        )
        self._signal_change()

    async def _load_stored(self, state: OrderState) -> None:
        acme = self.plan.acme
        if acme is None:
            return
        state.store_directory = acme.directory
        try:
            await self._ensure_store()
            stored = await trio.to_thread.run_sync(
                self.store.load, acme.directory, state.order.name, limiter=self._limiter
            )
        except OSError as exc:
            log.error("cannot read the certificate store path=%s error=%s", self.store.root, exc)
            return
        if stored is not None:
            state.certificate, state.certificate_directory = stored, acme.directory
            log.info(
                "stored certificate loaded name=%s not_after=%s",
                state.order.name,
                stored.not_after.isoformat(),
            )

    async def _ensure_store(self) -> None:
        async with self._store_lock:
            if not self._store_open:
                await trio.to_thread.run_sync(self.store.open, limiter=self._limiter)
                self._store_open = True

    async def _ensure_account_key(self) -> bytes:
        await self._ensure_store()
        async with self._store_lock:
            if self._account_key is None:
                self._account_key = await trio.to_thread.run_sync(
                    self.store.account_key, limiter=self._limiter
                )
            return self._account_key

    async def _sleep_until(self, when: datetime) -> None:
        wake = self._wake
        seconds = min((when - self.clock()).total_seconds(), MAX_SLEEP)
        with trio.move_on_after(max(seconds, 0.0)):
            await wake.wait()

    def _publish(self) -> None:
        issued = [s.certificate for s in self._states.values() if s.certificate is not None]
        try:
            self.live.publish([*self.plan.static, *issued], self.plan.disabled)
        except ssl.SSLError as exc:  # pragma: no cover - checked certificates load
            log.error("cannot serve the new certificates; the previous ones stay error=%s", exc)
        self._signal_change()


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None
