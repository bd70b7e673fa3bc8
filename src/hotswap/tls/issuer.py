"""Getting one certificate from the CA: the steps of acme_client, from Trio.

Each blocking step runs in a worker thread (our own CapacityLimiter) and may
be abandoned on cancellation: a session is never shared, so an abandoned call
finishes in its thread and is forgotten. The challenge tokens are in the
pending table from just before the CA is told to validate until the order is
over, whatever the outcome; the new certificate is written to the store
(never abandoned half-way) before it is returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import trio

from hotswap.tls.acme_client import AcmeSession, AcmeSettings
from hotswap.tls.certificate import Certificate
from hotswap.tls.challenges import PendingChallenges
from hotswap.tls.plan import CertificateOrder
from hotswap.tls.store import CertificateStore, new_private_key_pem

log = logging.getLogger(__name__)

VALIDATION_WAIT = 90.0  # seconds the CA has to validate and issue, once asked
T = TypeVar("T")


async def issue_certificate(
    settings: AcmeSettings,
    account_key: bytes,
    order: CertificateOrder,
    pending: PendingChallenges,
    store: CertificateStore,
    limiter: trio.CapacityLimiter,
) -> Certificate:
    """Order, prove and download a certificate for `order.names`; store and return it.

    Raises AcmeError (the CA's error), CertificateError (what the CA sent does
    not check out) or OSError (the store).
    """

    async def blocking(call: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(call, limiter=limiter, abandon_on_cancel=True)

    key_pem = await blocking(new_private_key_pem)
    session = AcmeSession(settings, account_key)
    try:
        account = await blocking(session.connect)
        log.debug("acme account name=%s account=%s", order.name, account)
        challenges = await blocking(partial(session.order, order.names, key_pem))
        for challenge in challenges:
            pending.add(challenge.domain, challenge.token, challenge.key_authorization)
        try:
            for challenge in challenges:
                log.debug("acme challenge ready name=%s domain=%s", order.name, challenge.domain)
                await blocking(partial(session.answer, challenge))
            chain = await blocking(partial(session.finish, VALIDATION_WAIT))
        finally:
            for challenge in challenges:
                pending.remove(challenge.token)
    finally:
        session.close()
    return await trio.to_thread.run_sync(
        store.save, settings.directory, order.name, key_pem, chain.encode("ascii"), limiter=limiter
    )
