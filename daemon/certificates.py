"""Certificates: the edge that keeps certificate files ready for nginx and runs the ACME orders.

Sits beside ``reconcile``: every pass tells it which hosts want a CA certificate (``want``)
and asks which certificate files are ready (``state``), which ``tls`` turns into per-host
policy. It owns the JSON store (``acme_store.store``), the PEM files nginx reads, the
self-signed fallback, and one worker thread that runs the planner (``acme_store.planning``)
and the orders (``acme_store.orders``): the acme client blocks for seconds, so orders never
run on the reconcile loop. When a certificate arrives, ``on_change`` wakes the loop, whose
next pass renders the new file into the config and reloads.

Store trouble never stops the proxy: a store another daemon holds is used read-only, a
group/world-readable one is refused untouched, and an unreadable one is set aside; in every
case the hosts keep being served, with the fallback certificate where nothing better exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from acme_store import keys
from acme_store.errors import (
    OrderError,
    StoreLockedError,
    StorePermissionError,
    StoreUnreadableError,
)
from acme_store.orders import AcmeClient
from acme_store.planning import after_failure, plan_certificates, retry_delay
from acme_store.records import Account, Certificate, StoreData, time_text
from acme_store.store import JsonStore, write_atomic
from daemon.settings import Settings
from daemon.tls import CertFiles, TlsState

log = structlog.get_logger("daemon.certificates")

FALLBACK_NAME = "dockyard.invalid"
_FALLBACK_LIFETIME = timedelta(days=365)
_FALLBACK_RENEW_BEFORE = timedelta(days=30)
# Underscores never occur in host names, so the fallback cannot collide with a host's file.
_FALLBACK_FILE = "_fallback.pem"
_ORDER_DEADLINE = 90.0
# The CA unreachable is not a failed validation (no rate limit counts it): retry soon, then
# back off to a ceiling, and order as soon as it answers again.
_UNREACHABLE_DELAYS = (2.0, 5.0, 15.0, 60.0, 300.0)
_LOCKED_RETRY = 60.0
# What routing accepts as a host name (without wildcards): only such names become files.
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")


class OrderClient(Protocol):
    """What the keeper needs from the CA (``acme_store.orders.AcmeClient``)."""

    def register(self, account: Account | None, email: str | None) -> Account:
        """The registered account to order with."""
        ...

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
        """Order and download one certificate."""
        ...

    def renewal_info(self, chain_pem: str) -> tuple[datetime | None, datetime]:
        """The CA's ARI suggestion (None without ARI) and when to ask again."""
        ...


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class CertificateKeeper:
    """Certificate files for nginx, the store, and the ACME worker thread."""

    def __init__(
        self,
        settings: Settings,
        challenge_dir: Path,
        on_change: Callable[[], None],
        clock: Callable[[], datetime] = utc_now,
        client: OrderClient | None = None,
    ) -> None:
        self._settings = settings
        self._on_change = on_change
        self._clock = clock
        self._dir = settings.state_dir / "certs"
        self._store = JsonStore(settings.store_path)
        self._directory = settings.acme_directory
        self._data = StoreData()
        self._owner = False  # holds the store lock: may order and save
        self._usable = settings.acme_enabled
        self._guard = threading.Lock()
        self._wanted: frozenset[str] = frozenset()
        self._files: dict[str, CertFiles] = {}
        self._fallback: CertFiles | None = None
        self._announced_ineligible: set[str] = set()
        self._warned_locked = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = client or AcmeClient(settings.acme_directory, challenge_dir)

    def start(self) -> None:
        """Make the fallback, open the store, publish stored certificates, start the worker."""
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._fallback = self._ensure_fallback()
        if not self._usable:
            return
        self._open_store()
        self._publish_all()
        self._thread = threading.Thread(target=self._run, name="acme", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the worker (an order in flight finishes or hits its deadline) and the lock."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._store.unlock()

    def want(self, hosts: frozenset[str]) -> None:
        """The hosts that want a CA certificate now (called by every reconcile pass)."""
        with self._guard:
            changed = hosts != self._wanted
            self._wanted = hosts
        if changed:
            self._wake.set()

    def state(self) -> TlsState:
        """The certificate files ready for nginx right now."""
        with self._guard:
            return TlsState(self._fallback, tuple(sorted(self._files.items())))

    # -- files ---------------------------------------------------------------------------

    def _ensure_fallback(self) -> CertFiles:
        """The self-signed certificate served until (or instead of) a CA-issued one."""
        path = self._dir / _FALLBACK_FILE
        now = self._clock()
        try:
            content = path.read_bytes()
            _, not_after = keys.validity(content.decode("ascii"))
            if not_after - now > _FALLBACK_RENEW_BEFORE:
                return CertFiles(path, _digest(content))
        except (OSError, ValueError):
            pass
        key_pem = keys.new_key("ec256")
        cert_pem = keys.self_signed((FALLBACK_NAME,), key_pem, now, _FALLBACK_LIFETIME)
        content = (cert_pem + key_pem).encode("ascii")
        write_atomic(path, content)
        log.info("fallback_certificate_created", path=str(path), name=FALLBACK_NAME)
        return CertFiles(path, _digest(content))

    def _publish_all(self) -> bool:
        """Write the PEM file of every stored certificate of this CA; True if any changed."""
        changed = False
        for record in self._data.certificates:
            if record.directory == self._directory:
                changed = self._publish(record) or changed
        return changed

    def _publish(self, record: Certificate) -> bool:
        """Write an issued, unexpired record's PEM file for nginx; True when it changed."""
        if not record.issued or record.not_after is None or record.not_after <= self._clock():
            return False
        if not _HOST_NAME.fullmatch(record.main):  # the name becomes a file name
            log.warning("certificate_name_invalid", name=record.main, store=str(self._store.path))
            return False
        assert record.chain_pem is not None and record.key_pem is not None
        content = (record.chain_pem.rstrip("\n") + "\n" + record.key_pem).encode("ascii")
        path = self._dir / f"{record.main}.pem"
        files = CertFiles(path, _digest(content))
        with self._guard:
            if self._files.get(record.main) == files and path.exists():
                return False
        write_atomic(path, content)
        with self._guard:
            self._files[record.main] = files
        return True

    # -- the store -----------------------------------------------------------------------

    def _open_store(self) -> None:
        """Take the lock (or go read-only) and load; refuse or set aside a bad store."""
        path = str(self._store.path)
        try:
            self._store.lock()
            self._owner = True
        except StoreLockedError:
            if not self._warned_locked:
                self._warned_locked = True
                log.error(
                    "acme_store_locked",
                    store=path,
                    reason="another dockyard holds the store lock; using its certificates "
                    "read-only and ordering none until the lock is free",
                )
        except OSError as err:
            log.error("acme_store_unusable", store=path, reason=str(err))
            self._usable = False
            return
        try:
            self._data = self._store.load()
        except StorePermissionError as err:
            log.error("acme_store_refused", store=path, reason=err.reason)
            self._usable = False
        except StoreUnreadableError as err:
            log.error("acme_store_unreadable", store=path, reason=err.reason)
            self._set_aside()
        else:
            if self._owner and self._warned_locked:
                log.info("acme_store_lock_taken", store=path)

    def _set_aside(self) -> None:
        if not self._owner:
            self._usable = False
            return
        try:
            aside = self._store.set_aside()
        except OSError as err:
            log.error("acme_store_unusable", store=str(self._store.path), reason=str(err))
            self._usable = False
            return
        log.warning(
            "acme_store_set_aside",
            store=str(self._store.path),
            moved_to=str(aside),
            reason="kept for inspection; continuing with a new store and fallback certificates",
        )
        self._data = StoreData()

    def _save(self) -> None:
        try:
            self._store.save(self._data)
        except OSError as err:
            log.error("acme_store_write_failed", store=str(self._store.path), error=str(err))

    # -- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        unreachable = 0
        while not self._stop.is_set() and self._usable:
            self._wake.clear()
            try:
                wait, unreachable = self._cycle(unreachable)
            except Exception:  # a bug here must not end certificate upkeep for good
                log.exception("acme_cycle_failed")
                wait = 60.0
            self._wake.wait(timeout=wait)

    def _cycle(self, unreachable: int) -> tuple[float, int]:
        """One planning round; returns (seconds to sleep, CA-unreachable streak)."""
        if not self._owner:
            # Read-only: pick up what the lock holder issued, and take over when it is gone.
            self._open_store()
            if self._publish_all():
                self._on_change()
            if not self._owner:
                return _LOCKED_RETRY, unreachable
        with self._guard:
            wanted = self._wanted
        now = self._clock()
        jitter = timedelta(seconds=random.uniform(0, 3600))  # noqa: S311 - spreading, not secrecy
        plan = plan_certificates(wanted, self._data, self._directory, now, jitter)
        self._announce_not_eligible(plan.not_eligible)
        due = [(host, False) for host in plan.order] + [(host, True) for host in plan.renew]
        if due or plan.check_renewal_info:
            try:
                account = self._account()
                for host, renewal in due:
                    if self._stop.is_set():
                        break
                    self._order(account, host, renewal)
                for host in plan.check_renewal_info:
                    self._check_renewal_info(host)
            except _CaUnavailableError as err:
                delay = err.retry_in(unreachable)
                log.warning(
                    "acme_account_refused" if err.refused else "acme_unavailable",
                    directory=self._directory,
                    error=err.message,
                    retry_in=delay,
                )
                return delay, unreachable + 1
            if due:
                return 0.0, 0  # plan again: the outcomes changed the store
        wake_at = plan.wake_at or now + timedelta(hours=12)
        return max(1.0, (wake_at - self._clock()).total_seconds()), 0

    def _announce_not_eligible(self, hosts: Sequence[str]) -> None:
        for host in hosts:
            if host not in self._announced_ineligible:
                self._announced_ineligible.add(host)
                log.warning(
                    "certificate_not_eligible",
                    host=host,
                    reason="wildcard names need a DNS-01 challenge; served with the fallback",
                )

    def _account(self) -> Account:
        existing = self._data.account_for(self._directory)
        try:
            account = self._client.register(existing, self._settings.acme_email)
        except OrderError as err:
            raise _CaUnavailableError(err.message, refused=not err.unreachable) from err
        if account != existing:
            self._data = self._data.with_account(account)
            self._save()
            log.info("acme_account_registered", directory=self._directory, uri=account.uri)
        return account

    def _order(self, account: Account, host: str, renewal: bool) -> None:
        settings = self._settings
        previous = self._data.certificate_for(self._directory, host)
        # ARI: a renewal names the certificate it replaces (exempt from rate limits); the
        # client leaves it out for a CA without ARI.
        old_chain = previous.chain_pem if renewal and previous is not None else None
        replaces = None
        if old_chain is not None:
            with contextlib.suppress(ValueError):  # a certificate without an AKI has no id
                replaces = keys.ari_cert_id(old_chain)
        log.info("certificate_ordered", host=host, renewal=renewal, directory=self._directory)
        began = time.monotonic()
        try:
            issued = self._client.issue(
                account,
                (host,),
                settings.acme_key_type,
                profile=settings.acme_profile,
                replaces=replaces,
                deadline=_ORDER_DEADLINE,
            )
        except OrderError as err:
            if err.unreachable:
                raise _CaUnavailableError(err.message) from err
            record = previous or Certificate(
                self._directory,
                (host,),
                key_type=settings.acme_key_type,
                profile=settings.acme_profile,
            )
            record = after_failure(record, err.message, self._clock(), err.retry_after)
            self._data = self._data.with_certificate(record)
            self._save()
            log.warning(
                "certificate_failed",
                host=host,
                error=err.message,
                failures=record.failures,
                next_retry=time_text(record.next_retry),
            )
            return
        self._data = self._data.with_certificate(issued)
        self._save()
        self._publish(issued)
        log.info(
            "certificate_issued",
            host=host,
            not_after=time_text(issued.not_after),
            seconds=round(time.monotonic() - began, 3),
            renewal=renewal,
        )
        self._on_change()

    def _check_renewal_info(self, host: str) -> None:
        record = self._data.certificate_for(self._directory, host)
        if record is None or record.chain_pem is None:
            return
        try:
            renew_at, next_check = self._client.renewal_info(record.chain_pem)
        except OrderError as err:
            if err.unreachable:
                raise _CaUnavailableError(err.message) from err
            log.warning("renewal_info_failed", host=host, error=err.message)
            renew_at, next_check = record.renew_at, self._clock() + timedelta(hours=6)
        updated = dataclasses.replace(record, renew_at=renew_at, ari_next_check=next_check)
        if updated != record:
            self._data = self._data.with_certificate(updated)
            self._save()


class _CaUnavailableError(Exception):
    """No order can go on: the CA did not answer, or it ``refused`` the account."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.refused = refused

    def retry_in(self, streak: int) -> float:
        """Seconds to wait after ``streak`` such errors in a row before this one."""
        if self.refused:
            # the CA answered and said no (a bad contact address, its terms): asking again
            # soon would only burn the new-account rate limit
            return retry_delay(streak + 1).total_seconds()
        return _UNREACHABLE_DELAYS[min(streak, len(_UNREACHABLE_DELAYS) - 1)]


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:16]
