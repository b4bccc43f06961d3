"""Planning: which host names need a certificate order now, and when to look again.

First step of the ACME flow, pure: the routed host names, the store's records and the
time in; a ``Plan`` out (order these, renew those, wake at). The order edge runs the
plan and writes the outcome back through ``after_failure`` / the store.

The rules, chosen to stay far from Let's Encrypt's rate limits (5 failed validations per
name per hour, 5 duplicate certificates per week):

- one certificate per host name, so one failing name never blocks another;
- a name with a valid certificate is never ordered again before its renewal time, so
  restarts cost no order;
- renewal time: the CA's ARI suggestion when the record has one, else when a third of
  the lifetime is left (half, for certificates shorter than 10 days);
- failures back off per name: 1 min, 10 min, 100 min, then daily, or longer when the CA
  said ``Retry-After``;
- wildcards cannot be validated over HTTP-01 and are never ordered;
- the planner looks again at least twice a day (with jitter) even when nothing is due.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from acme_store.records import Certificate, StoreData

RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=10),
    timedelta(minutes=100),
    timedelta(days=1),
)
CHECK_INTERVAL = timedelta(hours=12)
SHORT_LIFETIME = timedelta(days=10)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do now, and when the next plan is due at the latest."""

    order: tuple[str, ...] = ()
    renew: tuple[str, ...] = ()
    check_renewal_info: tuple[str, ...] = ()
    not_eligible: tuple[str, ...] = ()
    wake_at: datetime | None = None


def renewal_time(certificate: Certificate) -> datetime | None:
    """When ``certificate`` should be renewed; None when it holds no certificate."""
    if certificate.renew_at is not None:
        return certificate.renew_at
    if certificate.not_before is None or certificate.not_after is None:
        return None
    lifetime = certificate.not_after - certificate.not_before
    left = lifetime / 2 if lifetime < SHORT_LIFETIME else lifetime / 3
    return certificate.not_after - left


def retry_delay(failures: int, retry_after: timedelta | None = None) -> timedelta:
    """The wait after the ``failures``-th failure in a row (1-based), honouring Retry-After."""
    delay = RETRY_DELAYS[min(max(failures, 1), len(RETRY_DELAYS)) - 1]
    return max(delay, retry_after) if retry_after is not None else delay


def after_failure(
    certificate: Certificate, error: str, now: datetime, retry_after: timedelta | None = None
) -> Certificate:
    """The record after a failed order: one more failure, the error and the next retry."""
    failures = certificate.failures + 1
    return dataclasses.replace(
        certificate,
        failures=failures,
        last_error=error,
        next_retry=now + retry_delay(failures, retry_after),
    )


def plan_certificates(
    hosts: Iterable[str],
    data: StoreData,
    directory: str,
    now: datetime,
    jitter: timedelta = timedelta(0),
) -> Plan:
    """Decide for every routed name; ``jitter`` (0 to 1 h, the caller's dice) spreads checks.

    ``check_renewal_info`` lists issued names whose ARI suggestion is missing or stale: the
    order edge asks the CA (``renewalInfo``) and stores ``renew_at`` / ``ari_next_check``.
    """
    order: list[str] = []
    renew: list[str] = []
    check: list[str] = []
    not_eligible: list[str] = []
    wake_at = now + CHECK_INTERVAL - jitter
    for host in sorted(set(hosts)):
        if host.startswith("*."):
            not_eligible.append(host)
            continue
        record = data.certificate_for(directory, host)
        issued = record is not None and record.issued
        due = _order_due(record, now)
        if due <= now:
            (renew if issued else order).append(host)
            continue
        wake_at = min(wake_at, due)
        if record is not None and issued:
            if record.ari_next_check is None or record.ari_next_check <= now:
                check.append(host)
            else:
                wake_at = min(wake_at, record.ari_next_check)
    return Plan(tuple(order), tuple(renew), tuple(check), tuple(not_eligible), wake_at)


def _order_due(record: Certificate | None, now: datetime) -> datetime:
    """When the name needs an order: now for a new name, else renewal or retry time."""
    if record is None:
        return now
    due = now
    if record.issued:
        renew = renewal_time(record)
        due = renew if renew is not None else now
    if record.next_retry is not None and record.next_retry > due:
        due = record.next_retry
    return due
