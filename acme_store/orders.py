"""Orders: certificates from an ACME CA over HTTP-01 (an edge: the network and challenge files).

Second step of the ACME flow: ``planning`` decides which names to order, renew or look up,
this module talks to the CA through certbot's ``acme``, and the daemon puts the results
into the ``store``. Synchronous on purpose: ``acme`` sleeps while it polls, so the daemon
calls an ``AcmeClient`` from one worker thread at a time, never from its reconcile loop.

HTTP-01 answers are files: ``<challenge_dir>/<token>`` holds the key authorization while
the CA validates, and nginx serves that directory at ``/.well-known/acme-challenge/``.
Every failure of the CA or of the network leaves as one ``OrderError`` with a readable
line (the CA's problem type and detail), the CA's ``Retry-After`` and whether the CA was
unreachable; the daemon logs it and backs off, nothing here logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import os
import re
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from acme import challenges, messages
from acme import errors as acme_errors
from acme.client import ClientNetwork, ClientV2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.errors import DeserializationError
from josepy.json_util import field
from josepy.jwa import ES256, ES384, RS256
from josepy.jwk import JWK, JWKEC, JWKRSA

from acme_store.errors import OrderError
from acme_store.keys import load_key, make_csr, new_account_key, new_key, validity
from acme_store.records import Account, Certificate

# A token becomes a file name: RFC 8555 says base64url, anything else is refused so a
# hostile CA cannot write outside the challenge directory.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_CHALLENGE_DIR_MODE = 0o755
# nginx workers run as an unprivileged user and must read the answers
_CHALLENGE_FILE_MODE = 0o644
# the CA is down or in maintenance, as told by it or by a proxy in front of it
_UNAVAILABLE = frozenset({502, 503, 504})
_EC_ALGORITHMS = {"secp256r1": ES256, "secp384r1": ES384}


class _NewOrder(messages.NewOrder):
    """A newOrder request that can name the certificate it replaces (RFC 9773, ARI)."""

    replaces: str | None = field("replaces", omitempty=True)


class AcmeClient:
    """One CA (its directory URL) and the account that signs the requests to it.

    Not thread-safe: one worker thread uses it at a time. The directory is fetched on
    first use, so constructing a client never touches the network.
    """

    def __init__(
        self,
        directory_url: str,
        challenge_dir: Path,
        *,
        timeout: float = 30.0,
        user_agent: str = "dockyard",
    ) -> None:
        self.directory_url = directory_url
        self.challenge_dir = challenge_dir
        # verify_ssl stays on: requests then honours REQUESTS_CA_BUNDLE for the CA's TLS.
        # acme annotates the timeout as int; requests takes float seconds.
        self._net = ClientNetwork(user_agent=user_agent, timeout=timeout)  # type: ignore[arg-type]
        self._last_response: requests.Response | None = None
        self._net.session.hooks["response"].append(self._remember_response)
        self._client: ClientV2 | None = None

    def register(self, account: Account | None, email: str | None) -> Account:
        """The account to order with: registered now, or the stored one set up for signing.

        Without an account, or with one never registered (``uri`` None), a new account is
        registered (terms agreed, ``email`` as contact) with the stored key if there is
        one, else a new ES256 key. A registered account is looked up at the CA
        (``onlyReturnExisting``) and returned unchanged (its contact is not updated) unless
        the CA no longer knows the key, as after a reset of a test CA: then it is
        registered again with the same key. The caller stores the result when it differs.
        """
        key_pem = account.key_pem if account is not None else new_account_key()
        with self._translated():
            client, _ = self._use_key(key_pem, uri=None)
            if account is not None and account.uri is not None:
                try:
                    regr = client.query_registration(_registration(account.uri))
                except messages.Error as err:
                    if err.code != "accountDoesNotExist":
                        raise
                else:
                    return dataclasses.replace(account, uri=regr.uri)
            new = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
            try:
                regr = client.new_account(new)
            except acme_errors.ConflictError as err:
                # the key is registered already: the CA answered with its Location
                regr = _registration(err.location)
        return Account(
            directory=self.directory_url,
            key_pem=key_pem,
            uri=regr.uri,
            email=email,
            created=datetime.now(UTC),
        )

    def issue(
        self,
        account: Account,
        names: tuple[str, ...],
        key_type: str,
        *,
        profile: str | None,
        replaces: str | None,
        deadline: float,
    ) -> Certificate:
        """Order, validate over HTTP-01 and download a certificate for ``names``.

        ``account`` must be registered (from ``register``). ``profile`` is asked for only
        when the CA offers it (else ``OrderError``); ``replaces`` (an ARI certificate id)
        is sent only to a CA with ARI. ``deadline`` bounds, in seconds, the wait for
        validation and issuance. The challenge files are removed whatever happens.
        """
        if account.uri is None:
            msg = "issue() needs a registered account; call register() first"
            raise ValueError(msg)
        key_pem = new_key(key_type)
        csr_pem = make_csr(key_pem, names)
        written: list[Path] = []
        with self._translated():
            client, signer = self._use_key(account.key_pem, uri=account.uri)
            order = _NewOrder(
                identifiers=[
                    messages.Identifier(typ=messages.IDENTIFIER_FQDN, value=name) for name in names
                ],
                profile=self._checked_profile(profile),
                replaces=replaces if self.offers_renewal_info() else None,
            )
            orderr = self._place_order(client, order, csr_pem)
            try:
                answers = [
                    self._answer_file(authzr, signer, written)
                    for authzr in orderr.authorizations
                    # a CA may reuse an authorization it validated recently
                    if authzr.body.status != messages.STATUS_VALID
                ]
                for challb, response in answers:
                    client.answer_challenge(challb, response)
                # acme compares its deadline with datetime.now(): naive local time
                finished = client.poll_and_finalize(
                    orderr, datetime.now() + timedelta(seconds=deadline)
                )
            finally:
                for path in written:
                    path.unlink(missing_ok=True)
        chain_pem: str = finished.fullchain_pem
        try:
            not_before, not_after = validity(chain_pem)
        except ValueError:
            raise OrderError("the CA sent a certificate chain that is not PEM") from None
        return Certificate(
            directory=self.directory_url,
            names=names,
            key_type=key_type,
            profile=profile,
            chain_pem=chain_pem,
            key_pem=key_pem,
            not_before=not_before,
            not_after=not_after,
        )

    def renewal_info(self, chain_pem: str) -> tuple[datetime | None, datetime]:
        """The CA's suggested renewal time (None without ARI) and when to ask again, UTC."""
        with self._translated():
            try:
                renew_at, next_check = self._directory_client().renewal_time(
                    chain_pem.encode("ascii")
                )
            except (ValueError, x509.ExtensionNotFound) as err:
                # acme builds the ARI URL from the leaf's serial and authority key id
                raise OrderError(f"no renewal info for this certificate: {err}") from None
        return (_utc(renew_at) if renew_at is not None else None), _utc(next_check)

    def offers_renewal_info(self) -> bool:
        """Whether the CA's directory has ``renewalInfo`` (ARI, RFC 9773)."""
        with self._translated():
            directory = self._directory_client().directory
        return "renewalInfo" in directory.to_partial_json()

    def profiles(self) -> dict[str, str]:
        """The profiles the CA offers (name → description); empty when it has none."""
        with self._translated():
            directory = self._directory_client().directory
        return dict(directory.meta.profiles or {})

    def _directory_client(self) -> ClientV2:
        if self._client is None:
            directory = ClientV2.get_directory(self.directory_url, self._net)
            self._client = ClientV2(directory, self._net)
        return self._client

    def _use_key(self, key_pem: str, uri: str | None) -> tuple[ClientV2, JWK]:
        """The client, signing with ``key_pem``: as that key (``jwk``) or as account ``uri``."""
        client = self._directory_client()
        try:
            key = load_key(key_pem)
        except ValueError as err:
            raise OrderError(f"the account key is unusable: {err}") from None
        signer: JWK
        if isinstance(key, rsa.RSAPrivateKey):
            signer, self._net.alg = JWKRSA(key=key), RS256
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _EC_ALGORITHMS:
            signer, self._net.alg = JWKEC(key=key), _EC_ALGORITHMS[key.curve.name]
        else:
            raise OrderError("the account key is unusable: expected RSA, EC P-256 or EC P-384")
        self._net.key = signer
        self._net.account = _registration(uri) if uri is not None else None
        return client, signer

    def _checked_profile(self, profile: str | None) -> str | None:
        if profile is None:
            return None
        offered = self.profiles()
        if profile not in offered:
            listed = ", ".join(sorted(offered)) if offered else "none"
            raise OrderError(f"the CA does not offer profile {profile!r} (offered: {listed})")
        return profile

    def _place_order(
        self, client: ClientV2, order: _NewOrder, csr_pem: bytes
    ) -> messages.OrderResource:
        """Post the order; if the CA refuses its ``replaces``, post it again without.

        A CA accepts ``replaces`` only from the account that owns the old certificate and
        only once per certificate (RFC 9773: ``alreadyReplaced``); a certificate imported
        without its account, or a renewal retried after a crash, would otherwise never
        renew. Without ``replaces`` the order is an ordinary new order.
        """
        try:
            return self._new_order(client, order, csr_pem)
        except messages.Error:
            if order.replaces is None:
                raise
        return self._new_order(client, order.update(replaces=None), csr_pem)

    def _new_order(
        self, client: ClientV2, order: _NewOrder, csr_pem: bytes
    ) -> messages.OrderResource:
        """ClientV2.new_order, but posting our order message (it can carry ``replaces``)."""
        directory = client.directory
        response = self._net.post(directory["newOrder"], order, new_nonce_url=directory.newNonce)
        body = messages.Order.from_json(response.json())
        authorizations = [
            client.poll(messages.AuthorizationResource(uri=url, body=messages.Authorization()))[0]
            for url in body.authorizations
        ]
        return messages.OrderResource(
            body=body,
            uri=response.headers.get("Location"),
            authorizations=authorizations,
            csr_pem=csr_pem,
        )

    def _answer_file(
        self, authzr: messages.AuthorizationResource, signer: JWK, written: list[Path]
    ) -> tuple[messages.ChallengeBody, challenges.ChallengeResponse]:
        """Write the HTTP-01 key authorization for one authorization; return the answer."""
        name = authzr.body.identifier.value
        challb = next(
            (c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01)), None
        )
        if challb is None:
            raise OrderError(f"the CA offers no http-01 challenge for {name}")
        token = challb.chall.encode("token")
        if not _TOKEN.fullmatch(token):
            raise OrderError(f"the CA sent a challenge token for {name} that is not base64url")
        response, key_authorization = challb.response_and_validation(signer)
        path = self.challenge_dir / token
        written.append(path)
        try:
            _write_answer(path, key_authorization)
        except OSError as err:
            msg = f"cannot write the http-01 answer for {name} to {path}: {err.strerror or err}"
            raise OrderError(msg) from err
        return challb, response

    def _remember_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """requests hook: keep the last answer, whose Retry-After acme's errors drop."""
        self._last_response = response

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """Turn the CA's and the network's exceptions into ``OrderError``, once, here."""
        self._last_response = None
        try:
            yield
        except OrderError:
            raise
        except acme_errors.ARIError as err:
            cause = err.__cause__ or err
            raise OrderError(
                f"renewal info unavailable: {_describe(cause, self.directory_url)}",
                _until(_utc(err.retry_after)),
                unreachable=self._unreachable(cause),
            ) from err
        except (acme_errors.Error, DeserializationError, requests.RequestException) as err:
            raise OrderError(
                _describe(err, self.directory_url),
                self._retry_after(),
                unreachable=self._unreachable(err),
            ) from err

    def _unreachable(self, err: BaseException) -> bool:
        if isinstance(err, requests.ConnectionError | requests.Timeout):
            return True
        response = self._last_response
        return response is not None and response.status_code in _UNAVAILABLE

    def _retry_after(self) -> timedelta | None:
        response = self._last_response
        if response is None or response.ok or "Retry-After" not in response.headers:
            return None
        value = response.headers["Retry-After"].strip()
        if value.isdigit():
            return timedelta(seconds=int(value))
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return _until(when if when.tzinfo else when.replace(tzinfo=UTC))


def _describe(err: BaseException, directory_url: str) -> str:
    """One readable line for an exception from acme, josepy or requests."""
    if isinstance(err, acme_errors.ValidationError):
        return "; ".join(_failed_authorization(authzr) for authzr in err.failed_authzrs)
    if isinstance(err, acme_errors.IssuanceError):
        return f"order failed: {_problem(err.error)}"
    if isinstance(err, messages.Error):
        return _problem(err)
    if isinstance(err, acme_errors.TimeoutError):
        return "the CA did not finish validating and issuing before the deadline"
    if isinstance(err, requests.RequestException):
        return f"cannot talk to the CA at {directory_url}: {_network_reason(err)}"
    return f"unexpected answer from the CA: {_unexpected(err)}"


def _unexpected(err: BaseException) -> str:
    # acme's ClientError carries the bare response (or it and a parse error) when the
    # answer was no problem document, e.g. an HTML page from a proxy in front of the CA
    first = err.args[0] if err.args else None
    response = first[0] if isinstance(first, tuple) and first else first
    if isinstance(response, requests.Response):
        return f"HTTP {response.status_code} for {response.url}"
    return f"{type(err).__name__}: {err}"


def _problem(problem: messages.Error) -> str:
    text = f"{problem.typ}: {problem.detail or problem.title or problem.description or ''}"
    if problem.identifier is not None:
        text = f"{problem.identifier.value}: {text}"
    for sub in problem.subproblems or ():
        text += f"; {_problem(sub)}"
    return text.rstrip(": ")


def _failed_authorization(authzr: messages.AuthorizationResource) -> str:
    name = authzr.body.identifier.value
    problems = [_problem(c.error) for c in authzr.body.challenges if c.error is not None]
    return f"authorization for {name} failed: {'; '.join(problems) or authzr.body.status}"


def _network_reason(err: BaseException) -> str:
    """The innermost useful cause (refused, timed out, untrusted certificate) of a failure."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({cause.verify_message})"
        if isinstance(cause, TimeoutError | requests.Timeout):
            return "timed out"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    return type(err).__name__


def _write_answer(path: Path, key_authorization: str) -> None:
    """Write one answer file readable by nginx's workers, making the directory if missing."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        # the umask cuts mkdir's mode; nginx's workers must be able to look inside
        path.parent.chmod(_CHALLENGE_DIR_MODE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _CHALLENGE_FILE_MODE)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        os.fchmod(handle.fileno(), _CHALLENGE_FILE_MODE)  # the umask cuts O_CREAT's mode too
        handle.write(key_authorization)


def _registration(uri: str) -> messages.RegistrationResource:
    """An account known by its URL only: enough to sign requests with ``kid``."""
    return messages.RegistrationResource(uri=uri, body=messages.Registration())


def _utc(value: datetime) -> datetime:
    """An aware UTC time; acme hands out naive local times (``datetime.now()`` based)."""
    return value.astimezone(UTC)


def _until(when: datetime) -> timedelta:
    return max(when - datetime.now(UTC), timedelta(0))
