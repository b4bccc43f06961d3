"""The certificate keeper's ACME decisions (ARI, replaces, backoff), with a fake CA client."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from acme_store import keys
from acme_store.errors import OrderError
from acme_store.records import Account, Certificate, StoreData
from acme_store.store import JsonStore
from daemon.certificates import CertificateKeeper
from daemon.settings import Settings

DIRECTORY = "https://ca.test/dir"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ACCOUNT = Account(DIRECTORY, keys.new_account_key(), uri="https://ca.test/acct/1")


def ca_issued(name: str, not_before: datetime, lifetime: timedelta) -> tuple[str, str]:
    """A leaf for ``name`` signed by a throw-away CA (so it has an AKI): (chain, key) PEM."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key_pem = keys.new_key("ec256")
    leaf_key = serialization.load_pem_private_key(leaf_key_pem.encode(), None)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(leaf_key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), leaf_key_pem


def issued_record(name: str, not_before: datetime, lifetime: timedelta) -> Certificate:
    """A store record holding a CA-issued certificate."""
    chain, key = ca_issued(name, not_before, lifetime)
    return Certificate(
        DIRECTORY,
        (name,),
        chain_pem=chain,
        key_pem=key,
        not_before=not_before,
        not_after=not_before + lifetime,
    )


class FakeCa:
    """Answers like AcmeClient; records what it was asked."""

    def __init__(self, *, suggestion: datetime | None = None) -> None:
        self.suggestion = suggestion
        self.orders: list[tuple[str, str | None]] = []
        self.fail: dict[str, OrderError] = {}

    def register(self, account: Account | None, email: str | None) -> Account:
        """The stored account, or the test account."""
        return account or ACCOUNT

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
        """A fresh 90-day certificate, or the failure set up for the name."""
        self.orders.append((names[0], replaces))
        if names[0] in self.fail:
            raise self.fail[names[0]]
        return issued_record(names[0], NOW, timedelta(days=90))

    def renewal_info(self, chain_pem: str) -> tuple[datetime | None, datetime]:
        """The configured ARI suggestion."""
        return self.suggestion, NOW + timedelta(hours=6)


def run_keeper(
    tmp_path: Path,
    data: StoreData,
    ca: FakeCa,
    hosts: set[str],
    done: Callable[[StoreData], bool],
) -> StoreData:
    """Start a keeper on a store holding ``data``, want ``hosts`` until ``done``; the store."""
    settings = Settings(state_dir=tmp_path, acme_email="ops@example.org", acme_directory=DIRECTORY)
    with JsonStore(settings.store_path) as store:
        store.save(data)
    keeper = CertificateKeeper(
        settings, tmp_path / "challenges", lambda: None, clock=lambda: NOW, client=ca
    )
    keeper.start()
    try:
        keeper.want(frozenset(hosts))
        deadline = time.monotonic() + 5
        while not done(JsonStore(settings.store_path).load()) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        keeper.stop()
    return JsonStore(settings.store_path).load()


def record(data: StoreData, host: str) -> Certificate:
    """The store's record for ``host`` (which must exist)."""
    found = data.certificate_for(DIRECTORY, host)
    assert found is not None, f"no record for {host}"
    return found


def test_renewal_names_the_replaced_certificate(tmp_path: Path) -> None:
    """A due renewal passes the old certificate's ARI id as ``replaces`` to the client."""
    old = issued_record("a.test", NOW - timedelta(days=80), timedelta(days=90))
    ca = FakeCa()
    after = run_keeper(
        tmp_path,
        StoreData((ACCOUNT,), (old,)),
        ca,
        {"a.test"},
        lambda d: record(d, "a.test").not_before == NOW,
    )
    assert ca.orders == [("a.test", keys.ari_cert_id(old.chain_pem or ""))]
    assert record(after, "a.test").not_before == NOW


def test_ari_suggestion_becomes_the_renewal_time(tmp_path: Path) -> None:
    """A certificate not yet due asks the CA's renewal info and stores its suggestion."""
    current = issued_record("a.test", NOW - timedelta(days=10), timedelta(days=90))
    suggestion = NOW + timedelta(days=3)
    ca = FakeCa(suggestion=suggestion)
    after = run_keeper(
        tmp_path,
        StoreData((ACCOUNT,), (current,)),
        ca,
        {"a.test"},
        lambda d: record(d, "a.test").renew_at is not None,
    )
    assert record(after, "a.test").renew_at == suggestion
    assert record(after, "a.test").ari_next_check == NOW + timedelta(hours=6)
    assert ca.orders == []


def test_refused_name_backs_off_alone(tmp_path: Path) -> None:
    """The CA refusing one name records its failure and next retry; the other is issued."""
    ca = FakeCa()
    ca.fail["bad.test"] = OrderError("urn:ietf:params:acme:error:rejectedIdentifier: no")
    after = run_keeper(
        tmp_path,
        StoreData((ACCOUNT,)),
        ca,
        {"bad.test", "good.test"},
        lambda d: len(d.certificates) == 2,
    )
    bad = record(after, "bad.test")
    assert (bad.failures, bad.next_retry) == (1, NOW + timedelta(minutes=1))
    assert "rejectedIdentifier" in (bad.last_error or "")
    assert record(after, "good.test").issued


def test_unreachable_ca_counts_against_no_name(tmp_path: Path) -> None:
    """The CA being down is retried later but never recorded as the name's failure."""
    ca = FakeCa()
    ca.fail["late.test"] = OrderError("cannot talk to the CA", unreachable=True)
    after = run_keeper(
        tmp_path, StoreData((ACCOUNT,)), ca, {"late.test"}, lambda d: bool(ca.orders)
    )
    # stop() joined the worker, so a wrongly recorded failure would be in the store by now
    assert ca.orders == [("late.test", None)]
    assert after.certificate_for(DIRECTORY, "late.test") is None


def test_another_ca_gets_its_own_account_and_keeps_the_old_certificates(tmp_path: Path) -> None:
    """Switching the directory URL registers a new account; the old CA's records stay."""
    staging = "https://staging.ca.test/dir"
    old_account = Account(staging, keys.new_account_key(), uri="https://staging.ca.test/acct/9")
    old_cert = dataclasses.replace(
        issued_record("a.test", NOW - timedelta(days=1), timedelta(days=90)), directory=staging
    )
    ca = FakeCa()
    after = run_keeper(
        tmp_path,
        StoreData((old_account,), (old_cert,)),
        ca,
        {"a.test"},
        lambda d: d.certificate_for(DIRECTORY, "a.test") is not None,
    )
    assert after.account_for(staging) == old_account
    assert after.account_for(DIRECTORY) == ACCOUNT
    assert after.certificate_for(staging, "a.test") == old_cert
    assert record(after, "a.test").issued
    assert ca.orders == [("a.test", None)]


def test_refused_account_waits_like_a_refused_name(tmp_path: Path) -> None:
    """A CA that refuses the account is asked again after a minute, not after seconds."""

    class Refusing(FakeCa):
        def register(self, account: Account | None, email: str | None) -> Account:
            """The CA says no."""
            raise OrderError("urn:ietf:params:acme:error:invalidContact: bad address")

    with capture_logs() as logs:
        run_keeper(
            tmp_path,
            StoreData(),
            Refusing(),
            {"a.test"},
            lambda _: any(e["event"] == "acme_account_refused" for e in logs),
        )
    refused = [e for e in logs if e["event"] == "acme_account_refused"]
    assert refused and refused[0]["retry_in"] == 60.0
    assert "invalidContact" in refused[0]["error"]
    assert not [e for e in logs if e["event"] == "acme_unavailable"]


def test_a_store_name_that_is_no_host_name_never_becomes_a_file(tmp_path: Path) -> None:
    """Only host names become PEM files: a stored ``../x`` is skipped, a real host served."""
    evil = dataclasses.replace(
        issued_record("a.test", NOW - timedelta(days=1), timedelta(days=90)), names=("../x",)
    )
    good = issued_record("b.test", NOW - timedelta(days=1), timedelta(days=90))
    settings = Settings(state_dir=tmp_path, acme_email="ops@example.org", acme_directory=DIRECTORY)
    with JsonStore(settings.store_path) as store:
        store.save(StoreData((ACCOUNT,), (evil, good)))
    keeper = CertificateKeeper(
        settings, tmp_path / "c", lambda: None, clock=lambda: NOW, client=FakeCa()
    )
    keeper.start()
    keeper.stop()
    assert [host for host, _ in keeper.state().certificates] == ["b.test"]
    assert not (tmp_path / "x.pem").exists()
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == ["_fallback.pem", "b.test.pem"]
