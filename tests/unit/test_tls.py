"""TLS policy: each host's certificate, HTTP role and HSTS follow the labels and defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from daemon.labels import Hsts
from daemon.routing import Backend, Route, RoutingTable
from daemon.settings import Settings
from daemon.tls import DEFAULT_HSTS, CertFiles, HostTls, TlsState, acme_hosts, host_policies

FALLBACK = CertFiles(Path("/s/certs/_fallback.pem"), "f" * 16)
ISSUED = CertFiles(Path("/s/certs/a.test.pem"), "a" * 16)
STATE = TlsState(FALLBACK, (("a.test", ISSUED),))
ACME = Settings(acme_email="ops@example.org")
NO_ACME = Settings()


def route(host: str, **options: object) -> Route:
    """A one-backend route at / with the given host options."""
    base = Route(host, "/", (Backend("172.17.0.2", 80),), ("c",))
    return dataclasses.replace(base, **options)  # type: ignore[arg-type]


def policy(r: Route, settings: Settings = ACME, state: TlsState = STATE) -> HostTls:
    """The policy of the only host in a one-route table."""
    return host_policies(RoutingTable((r,)), settings, state)[r.host]


def test_issued_certificate_redirects_http_and_sends_hsts() -> None:
    """A CA-issued certificate: HTTPS with it, HTTP redirects, HSTS one year."""
    assert policy(route("a.test")) == HostTls(ISSUED, "redirect", DEFAULT_HSTS)


def test_host_waiting_for_its_certificate_gets_fallback_on_both_schemes() -> None:
    """No certificate yet: the self-signed fallback, HTTP still proxies, no HSTS."""
    assert policy(route("b.test")) == HostTls(FALLBACK, "proxy", None)


def test_without_acme_hosts_are_self_signed_even_with_a_stored_certificate() -> None:
    """ACME off: the default mode is self-signed, a leftover CA certificate is not used."""
    assert policy(route("a.test"), NO_ACME) == HostTls(FALLBACK, "proxy", None)
    assert acme_hosts(RoutingTable((route("a.test"),)), NO_ACME) == frozenset()


def test_tls_off_is_http_only_and_not_ordered() -> None:
    """tls=off: no HTTPS server, plain HTTP proxy, no order for it."""
    r = route("a.test", tls="off")
    assert policy(r) == HostTls(None, "proxy", None)
    assert acme_hosts(RoutingTable((r,)), ACME) == frozenset()


def test_explicit_https_and_hsts_labels_win() -> None:
    """https=only drops the HTTP route; an explicit HSTS is sent even on the fallback."""
    hsts = Hsts(600, include_subdomains=True)
    assert policy(route("b.test", https="only", hsts=hsts)) == HostTls(FALLBACK, "none", hsts)
    assert policy(route("a.test", https="both", hsts="off")) == HostTls(ISSUED, "proxy", None)


def test_self_signed_label_ignores_the_issued_certificate() -> None:
    """tls=self-signed serves the fallback and is not ordered."""
    r = route("a.test", tls="self-signed")
    assert policy(r) == HostTls(FALLBACK, "proxy", None)
    assert acme_hosts(RoutingTable((r,)), ACME) == frozenset()


def test_no_fallback_yet_means_http_only() -> None:
    """Without any certificate file (dockyard render), hosts are served over HTTP only."""
    assert policy(route("b.test"), ACME, TlsState()) == HostTls()
