"""TLS policy with your own certificates: they serve the hosts they cover, before ACME."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.own_certificates import OwnCertificate
from daemon.routing import Backend, Route, RoutingTable
from daemon.settings import Settings
from daemon.tls import (
    DEFAULT_HSTS,
    CertFiles,
    HostTls,
    TlsState,
    acme_hosts,
    host_policies,
    own_in_use,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
FALLBACK = CertFiles(Path("/s/certs/_fallback.pem"), "f" * 16)
ISSUED = CertFiles(Path("/s/certs/a.example.org.pem"), "a" * 16)
ACME = Settings(acme_email="ops@example.org")
NO_ACME = Settings()


def own(name: str, *names: str, days: int = 90) -> OwnCertificate:
    """A checked pair covering ``names`` (no real PEM: policy never reads it)."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return OwnCertificate(
        name, names, NOW - timedelta(days=1), NOW + timedelta(days=days), b"", digest
    )


def files(certificate: OwnCertificate) -> CertFiles:
    """Where the copy of ``certificate`` lives, as reconcile names it."""
    return CertFiles(Path(f"/s/certs/own/{certificate.digest}.pem"), certificate.digest)


EXACT = own("exact", "a.example.org")
WILDCARD = own("wild", "*.example.org", days=300)
STATE = TlsState(
    FALLBACK,
    (("a.example.org", ISSUED),),
    ((EXACT, files(EXACT)), (WILDCARD, files(WILDCARD))),
)


def route(host: str, **options: object) -> Route:
    """A one-backend route at / with the given host options."""
    base = Route(host, "/", (Backend("172.17.0.2", 80),), ("c",))
    return dataclasses.replace(base, **options)  # type: ignore[arg-type]


def table(*hosts: str, **options: object) -> RoutingTable:
    """A table with one route per host, all with the same options."""
    return RoutingTable(tuple(route(host, **options) for host in sorted(hosts)))


def policy(r: Route, settings: Settings = ACME, state: TlsState = STATE) -> HostTls:
    """The policy of the only host in a one-route table."""
    return host_policies(RoutingTable((r,)), settings, state)[r.host]


def test_an_exact_own_certificate_wins_over_the_acme_one() -> None:
    """Your certificate naming the host beats the ACME-issued one (and the wildcard)."""
    assert policy(route("a.example.org")) == HostTls(files(EXACT), "redirect", DEFAULT_HSTS)


def test_a_wildcard_own_certificate_serves_a_host_one_label_down() -> None:
    """``*.example.org`` serves ``b.example.org``, not ``example.org`` nor ``x.b.example.org``."""
    assert policy(route("b.example.org")) == HostTls(files(WILDCARD), "redirect", DEFAULT_HSTS)
    assert policy(route("example.org")) == HostTls(FALLBACK, "proxy", None)
    assert policy(route("x.b.example.org")) == HostTls(FALLBACK, "proxy", None)


def test_an_own_certificate_counts_as_ca_issued_without_acme() -> None:
    """Without ACME, or with tls=self-signed, your certificate serves, redirects, sends HSTS."""
    expected = HostTls(files(WILDCARD), "redirect", DEFAULT_HSTS)
    assert policy(route("b.example.org"), NO_ACME) == expected
    assert policy(route("b.example.org", tls="self-signed")) == expected


def test_host_labels_still_shape_https_and_hsts_with_an_own_certificate() -> None:
    """Explicit https and hsts values apply to a host served with your certificate."""
    assert policy(route("b.example.org", https="both", hsts="off")) == HostTls(
        files(WILDCARD), "proxy", None
    )


def test_tls_off_stays_http_only_with_an_own_certificate() -> None:
    """tls=off: no HTTPS even though your certificate covers the host, and nothing is used."""
    off = route("a.example.org", tls="off")
    assert policy(off) == HostTls()
    assert own_in_use(RoutingTable((off,)), ACME, [EXACT, WILDCARD]) == ()


def test_acme_hosts_leave_out_hosts_an_own_certificate_covers() -> None:
    """Hosts your certificates cover (exactly or by wildcard) are not ordered from ACME."""
    routes = table("a.example.org", "b.example.org", "example.org", "other.test")
    assert acme_hosts(routes, ACME, [EXACT, WILDCARD]) == frozenset({"example.org", "other.test"})
    assert acme_hosts(routes, ACME) == frozenset(
        {"a.example.org", "b.example.org", "example.org", "other.test"}
    )


def test_own_in_use_lists_only_certificates_serving_routed_hosts() -> None:
    """Only certificates chosen for some routed host are in use, each once, by name."""
    unused = own("unused", "nothing.test")
    routes = table("a.example.org", "b.example.org", "c.example.org")
    assert own_in_use(routes, ACME, [unused, WILDCARD, EXACT]) == (EXACT, WILDCARD)
    assert own_in_use(table("a.example.org"), ACME, [unused, WILDCARD, EXACT]) == (EXACT,)
    assert own_in_use(table("other.test"), ACME, [unused, WILDCARD, EXACT]) == ()


def test_without_own_certificates_the_acme_policy_is_unchanged() -> None:
    """No own pairs: the ACME-issued certificate and the fallback serve as before."""
    state = TlsState(FALLBACK, (("a.example.org", ISSUED),))
    assert policy(route("a.example.org"), state=state) == HostTls(ISSUED, "redirect", DEFAULT_HSTS)
    assert policy(route("b.example.org"), state=state) == HostTls(FALLBACK, "proxy", None)
