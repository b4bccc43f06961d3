"""TLS policy: which certificate each routed host is served with, and what its HTTP port does.

Pure step between routing and rendering. The certificate edge (``certificates``) says which
certificate files exist; this module combines that with each host's ``tls``/``https``/``hsts``
labels and the settings into one ``HostTls`` per host, which ``rendering`` prints. The
defaults follow the issue's table: ACME when an email is set, else the self-signed fallback;
HTTP redirects once a host has a CA-issued certificate and serves both schemes while it
only has the fallback; HSTS only on CA-issued certificates unless a label asks for it.
Your own certificates (``DOCKYARD_CERTS_DIR``) come first: a host one of them covers is
served with it, counts as CA-issued, and wants no ACME certificate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from daemon.labels import Hsts
from daemon.own_certificates import CertificateIndex, OwnCertificate
from daemon.routing import Route, RoutingTable
from daemon.settings import Settings

DEFAULT_HSTS = Hsts(max_age=31536000)

HttpRole = Literal["proxy", "redirect", "none"]


@dataclass(frozen=True, slots=True)
class CertFiles:
    """One PEM file holding a certificate chain and its key, as nginx reads it.

    Chain and key share a file so one rename replaces both: nginx never sees a new
    certificate with an old key. ``digest`` is printed into the config, so a new
    certificate changes the config's generation and the reload happens.
    """

    path: Path
    digest: str


@dataclass(frozen=True, slots=True)
class TlsState:
    """The certificate files ready to serve: the fallback, CA-issued ones by host, your own."""

    fallback: CertFiles | None = None
    certificates: tuple[tuple[str, CertFiles], ...] = ()
    own: tuple[tuple[OwnCertificate, CertFiles], ...] = ()


@dataclass(frozen=True, slots=True)
class HostTls:
    """How one host is served: its certificate (None: no HTTPS), its HTTP role, HSTS."""

    certificate: CertFiles | None = None
    http: HttpRole = "proxy"
    hsts: Hsts | None = None


HTTP_ONLY = HostTls()
# What the HTTP port does for each ``https`` mode.
_HTTP_ROLES: dict[str, HttpRole] = {"redirect": "redirect", "both": "proxy", "only": "none"}


def tls_mode(route: Route, settings: Settings) -> str:
    """``acme``, ``self-signed`` or ``off``: the label, else the default for the settings."""
    return route.tls or ("acme" if settings.acme_enabled else "self-signed")


def acme_hosts(
    table: RoutingTable, settings: Settings, own: Iterable[OwnCertificate] = ()
) -> frozenset[str]:
    """Hosts that want a certificate from the ACME CA: none that one of ``own`` covers."""
    index = CertificateIndex(own)
    return frozenset(
        r.host
        for r in table.routes
        if tls_mode(r, settings) == "acme" and index.choose(r.host) is None
    )


def host_policies(
    table: RoutingTable, settings: Settings, state: TlsState
) -> Mapping[str, HostTls]:
    """One ``HostTls`` per routed host (routing already made the options per host)."""
    issued = dict(state.certificates)
    # Keyed by the certificate's value: the index hands back one of these very values.
    own_files = dict(state.own)
    index = CertificateIndex(own_files)
    policies: dict[str, HostTls] = {}
    for route in table.routes:
        if route.host not in policies:
            own = index.choose(route.host)
            mine = own_files[own] if own is not None else None
            policies[route.host] = _policy(route, settings, state.fallback, issued, mine)
    return policies


def _policy(
    route: Route,
    settings: Settings,
    fallback: CertFiles | None,
    issued: Mapping[str, CertFiles],
    own: CertFiles | None,
) -> HostTls:
    mode = tls_mode(route, settings)
    if mode == "off":
        return HTTP_ONLY
    # your own certificate wins over both ACME and the fallback (``tls: self-signed`` only
    # says "order nothing"); it is trusted like a CA-issued one
    certificate = own or (issued.get(route.host) if mode == "acme" else None)
    from_ca = certificate is not None
    certificate = certificate or fallback
    if certificate is None:  # no fallback yet (``dockyard render`` without a state dir)
        return HTTP_ONLY
    https = route.https or ("redirect" if from_ca else "both")
    if isinstance(route.hsts, Hsts):
        hsts: Hsts | None = route.hsts
    else:
        hsts = DEFAULT_HSTS if from_ca and route.hsts is None else None
    return HostTls(certificate, _HTTP_ROLES[https], hsts)


def own_in_use(
    table: RoutingTable, settings: Settings, own: Iterable[OwnCertificate]
) -> tuple[OwnCertificate, ...]:
    """Your certificates that serve at least one routed host (the ones nginx must read)."""
    index = CertificateIndex(own)
    used: dict[str, OwnCertificate] = {}
    for route in table.routes:
        if tls_mode(route, settings) != "off":
            found = index.choose(route.host)
            if found is not None:
                used[found.name] = found
    return tuple(used[name] for name in sorted(used))
