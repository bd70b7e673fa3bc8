"""One ACME (RFC 8555) conversation on Certbot's `acme` package. Blocking: run in threads.

`AcmeSession` does what one certificate needs, each step a blocking call that
the issuer (issuer.py) runs through trio.to_thread.run_sync:

    connect()            directory, then the account of our key (created the first
                         time; the same key finds the same account afterwards)
    order(names, key)    a new order; returns the HTTP-01 challenges still to answer
    answer(challenge)    tell the CA a challenge is ready (the token is served by then)
    finish(seconds)      wait for validation, finalize, download the full chain

A session is used by one task, one call at a time, and never shared: a call
abandoned on cancellation (shutdown) can finish in its thread without
disturbing anyone. Every failure becomes an AcmeError whose message carries
the CA's own error (type and detail) and, when the CA sent one, Retry-After.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import josepy.errors
import requests
from acme import challenges, client, crypto_util, messages
from acme import errors as acme_errors
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.jwa import ES256, RS256, JWASignature
from josepy.jwk import JWK, JWKEC, JWKRSA

from hotswap import __version__
from hotswap.errors import HotswapError
from hotswap.tls.schedule import parse_retry_after

NETWORK_TIMEOUT = 30  # seconds, per HTTP request to the CA
USER_AGENT = f"hotswap/{__version__}"
_RETRY_STATUSES = frozenset({429, 503})


class AcmeError(HotswapError):
    """The CA refused or could not be reached; the message carries the CA's error."""

    http_status = 502

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class AcmeSettings:
    directory: str
    email: str
    ca_bundle: str = ""  # a resolved path, or "" for the system's CAs


@dataclass(frozen=True)
class HttpChallenge:
    """A challenge to serve: GET /.well-known/acme-challenge/<token> -> key_authorization."""

    domain: str
    token: str
    key_authorization: str
    body: messages.ChallengeBody = field(repr=False, compare=False)
    response: challenges.ChallengeResponse = field(repr=False, compare=False)


class _Network(client.ClientNetwork):
    """ClientNetwork that remembers the last response: the CA's errors lose their
    headers on the way up, and Retry-After is one of them."""

    last_response: requests.Response | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        response = super()._send_request(method, url, *args, **kwargs)
        self.last_response = response
        return response


def account_jwk(key_pem: bytes) -> tuple[JWK, JWASignature]:
    """The JWK and signature algorithm of an account key (EC P-256 or RSA)."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return JWKEC(key=key), ES256
    if isinstance(key, rsa.RSAPrivateKey):
        return JWKRSA(key=key), RS256
    raise AcmeError(f"unsupported ACME account key type: {type(key).__name__}")


class AcmeSession:
    """One conversation with the CA, for one order."""

    def __init__(self, settings: AcmeSettings, account_key_pem: bytes) -> None:
        self.settings = settings
        self._jwk, algorithm = account_jwk(account_key_pem)
        # requests takes a CA file path where acme's signature says bool.
        verify = cast(bool, settings.ca_bundle or True)
        self._net = _Network(
            self._jwk,
            alg=algorithm,
            verify_ssl=verify,
            user_agent=USER_AGENT,
            timeout=NETWORK_TIMEOUT,
        )
        self._client: client.ClientV2 | None = None
        self._order: messages.OrderResource | None = None

    def connect(self) -> str:
        """Fetch the directory and find or create the account; returns its URL."""
        with self._errors("fetching the ACME directory"):
            directory = client.ClientV2.get_directory(self.settings.directory, self._net)
        acme = client.ClientV2(directory, self._net)
        registration = messages.NewRegistration.from_data(
            email=self.settings.email, terms_of_service_agreed=True
        )
        with self._errors("registering the ACME account"):
            try:
                account = acme.new_account(registration)
            except acme_errors.ConflictError as existing:
                # The key already has an account (RFC 8555 §7.3.1): use it.
                account = messages.RegistrationResource(
                    uri=existing.location, body=messages.Registration()
                )
                self._net.account = account
        self._client = acme
        return str(account.uri)

    def order(self, names: Sequence[str], key_pem: bytes) -> list[HttpChallenge]:
        """Order a certificate for `names` (the key's CSR); the challenges to answer.

        Authorizations the CA already holds as valid need no challenge.
        """
        acme = self._connected()
        csr = crypto_util.make_csr(key_pem, list(names))
        with self._errors(f"ordering a certificate for {', '.join(names)}"):
            order = acme.new_order(csr)
        pending: list[HttpChallenge] = []
        for authorization in order.authorizations:
            body = authorization.body
            if body.status == messages.STATUS_VALID:
                continue
            domain = str(body.identifier.value)
            http = next(
                (c for c in body.challenges if isinstance(c.chall, challenges.HTTP01)), None
            )
            if http is None:
                raise AcmeError(f"the CA offers no http-01 challenge for {domain}")
            response, validation = http.response_and_validation(self._jwk)
            token = http.chall.encode("token")
            pending.append(HttpChallenge(domain, token, validation, http, response))
        self._order = order
        return pending

    def answer(self, challenge: HttpChallenge) -> None:
        """Tell the CA to validate `challenge` (its token must be served by now)."""
        acme = self._connected()
        with self._errors(f"answering the challenge for {challenge.domain}"):
            acme.answer_challenge(challenge.body, challenge.response)

    def finish(self, seconds: float) -> str:
        """Wait (at most `seconds`) for validation, finalize, return the full chain PEM."""
        acme = self._connected()
        if self._order is None:
            raise AcmeError("no order to finish")
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=seconds)
        with self._errors("finishing the order"):
            order = acme.poll_and_finalize(self._order, deadline)
        if not order.fullchain_pem:
            raise AcmeError("the CA finished the order without a certificate")
        return str(order.fullchain_pem)

    def close(self) -> None:
        self._net.session.close()

    def _connected(self) -> client.ClientV2:
        if self._client is None:
            raise AcmeError("not connected to the CA")
        return self._client

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn what acme and requests raise into AcmeError, with the CA's words."""
        self._net.last_response = None
        try:
            yield
        except messages.Error as exc:
            raise AcmeError(
                f"{doing}: the CA answered: {exc}", retry_after=self._retry_after()
            ) from exc
        except acme_errors.ValidationError as exc:
            raise AcmeError(f"{doing}: validation failed: {_validation_errors(exc)}") from exc
        except acme_errors.TimeoutError as exc:
            raise AcmeError(f"{doing}: the CA did not finish in time") from exc
        except requests.exceptions.SSLError as exc:
            raise AcmeError(
                f"{doing}: cannot reach {self.settings.directory} over TLS: {_reason(exc)} "
                "(a private or test CA needs tls.acme.ca_bundle)"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise AcmeError(
                f"{doing}: cannot reach {self.settings.directory}: {_reason(exc)}"
            ) from exc
        except (acme_errors.Error, josepy.errors.Error, ValueError) as exc:
            raise AcmeError(f"{doing}: {exc}", retry_after=self._retry_after()) from exc

    def _retry_after(self) -> float | None:
        response = self._net.last_response
        if response is None or response.status_code not in _RETRY_STATUSES:
            return None
        now = datetime.datetime.now(datetime.UTC)
        return parse_retry_after(response.headers.get("Retry-After"), now)


def _validation_errors(exc: acme_errors.ValidationError) -> str:
    found = [
        f"{authorization.body.identifier.value}: {challenge.error}"
        for authorization in exc.failed_authzrs
        for challenge in authorization.body.challenges
        if challenge.error is not None
    ]
    return "; ".join(found) or str(exc)


def _reason(exc: requests.exceptions.RequestException) -> str:
    """The innermost reason of a requests error (urllib3 wraps it in retries)."""
    inner: object = exc.args[0] if exc.args else exc
    reason = getattr(inner, "reason", None)
    return str(reason if reason is not None else inner)
