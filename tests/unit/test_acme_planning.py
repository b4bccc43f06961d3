"""The certificate planner: new names, renewals, ARI, failure backoff, wildcards."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from acme_store.planning import (
    CHECK_INTERVAL,
    after_failure,
    plan_certificates,
    renewal_time,
    retry_delay,
)
from acme_store.records import Certificate, StoreData

CA = "https://ca.test/dir"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def cert(name: str, days_old: float, lifetime_days: float, **changes: object) -> Certificate:
    """An issued record for ``name`` that began ``days_old`` days ago."""
    begin = NOW - timedelta(days=days_old)
    record = Certificate(
        CA,
        (name,),
        chain_pem="chain",
        key_pem="key",
        not_before=begin,
        not_after=begin + timedelta(days=lifetime_days),
        ari_next_check=NOW + timedelta(hours=6),
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def store(*records: Certificate) -> StoreData:
    """A store holding ``records``."""
    data = StoreData()
    for record in records:
        data = data.with_certificate(record)
    return data


def test_new_names_are_ordered_and_wildcards_are_not() -> None:
    """Names without a record are ordered now; HTTP-01 cannot validate ``*.`` names."""
    plan = plan_certificates(["b.test", "a.test", "*.w.test", "a.test"], StoreData(), CA, NOW)
    assert plan.order == ("a.test", "b.test")
    assert plan.not_eligible == ("*.w.test",)
    assert plan.renew == ()


def test_valid_certificate_is_not_ordered_again() -> None:
    """A restart with a fresh certificate in the store orders nothing."""
    plan = plan_certificates(["a.test"], store(cert("a.test", 1, 90)), CA, NOW)
    assert (plan.order, plan.renew) == ((), ())
    assert plan.wake_at == NOW + timedelta(hours=6), "the ARI check is the next thing due"


@pytest.mark.parametrize(
    ("lifetime", "renew_after"),
    [(90, 60), (45, 30), (160 / 24, 80 / 24)],
)
def test_renewal_at_a_third_left_or_half_for_short_lifetimes(
    lifetime: float, renew_after: float
) -> None:
    """90 days renews at day 60, 45 at day 30; 160-hour certificates at half their life."""
    record = cert("a.test", 0, lifetime)
    assert record.not_before is not None
    assert renewal_time(record) == record.not_before + timedelta(days=renew_after)


def test_due_certificate_is_renewed() -> None:
    """Past its renewal time, an issued name is in ``renew``, not ``order``."""
    plan = plan_certificates(["a.test"], store(cert("a.test", 61, 90)), CA, NOW)
    assert plan.renew == ("a.test",)
    assert plan.order == ()


def test_ari_suggestion_wins_over_the_lifetime_rule() -> None:
    """A CA-suggested renewal time is used even when the third-left rule says later."""
    early = cert("a.test", 10, 90, renew_at=NOW - timedelta(minutes=1))
    assert plan_certificates(["a.test"], store(early), CA, NOW).renew == ("a.test",)
    late = cert("a.test", 70, 90, renew_at=NOW + timedelta(days=3))
    assert plan_certificates(["a.test"], store(late), CA, NOW).renew == ()


def test_stale_renewal_info_is_checked() -> None:
    """An issued name whose ARI check time has passed (or never came) is looked up."""
    stale = cert("a.test", 1, 90, ari_next_check=NOW - timedelta(seconds=1))
    never = cert("b.test", 1, 90, ari_next_check=None)
    plan = plan_certificates(["a.test", "b.test"], store(stale, never), CA, NOW)
    assert plan.check_renewal_info == ("a.test", "b.test")
    assert plan.renew == ()


def test_failures_back_off_1_10_100_minutes_then_daily() -> None:
    """Each failure in a row waits longer; Retry-After can only make it longer."""
    assert [retry_delay(n) for n in (1, 2, 3, 4, 9)] == [
        timedelta(minutes=1),
        timedelta(minutes=10),
        timedelta(minutes=100),
        timedelta(days=1),
        timedelta(days=1),
    ]
    assert retry_delay(1, timedelta(hours=2)) == timedelta(hours=2)
    assert retry_delay(4, timedelta(seconds=5)) == timedelta(days=1)


def test_failed_name_waits_and_other_names_go_on() -> None:
    """A name that just failed is not ordered before its retry time; others are."""
    failed = after_failure(Certificate(CA, ("bad.test",)), "dns error", NOW)
    assert (failed.failures, failed.last_error) == (1, "dns error")
    plan = plan_certificates(["bad.test", "good.test"], store(failed), CA, NOW)
    assert plan.order == ("good.test",)
    assert plan.wake_at == NOW + timedelta(minutes=1)
    later = plan_certificates(["bad.test"], store(failed), CA, NOW + timedelta(minutes=1))
    assert later.order == ("bad.test",)


def test_failed_renewal_keeps_the_certificate_and_waits() -> None:
    """A failed renewal backs off too, and the record keeps serving its certificate."""
    record = after_failure(cert("a.test", 61, 90), "timeout", NOW)
    assert record.issued
    assert plan_certificates(["a.test"], store(record), CA, NOW).renew == ()


def test_gone_hosts_are_not_renewed_and_checks_come_twice_a_day() -> None:
    """Records of names no longer routed stay untouched; an idle plan wakes within 12 h."""
    plan = plan_certificates(
        [], store(cert("gone.test", 80, 90)), CA, NOW, jitter=timedelta(minutes=7)
    )
    assert (plan.order, plan.renew, plan.check_renewal_info) == ((), (), ())
    assert plan.wake_at == NOW + CHECK_INTERVAL - timedelta(minutes=7)


def test_records_of_another_ca_do_not_count() -> None:
    """A certificate from the previous directory does not stop an order at the new one."""
    old = dataclasses.replace(cert("a.test", 1, 90), directory="https://old.test/dir")
    assert plan_certificates(["a.test"], store(old), CA, NOW).order == ("a.test",)
