"""TLS policy: which certificate each routed host is served with, and what its HTTP port does.

Pure step between routing and rendering. The certificate edge (``certificates``) says which
certificate files exist; this module combines that with each host's ``tls``/``https``/``hsts``
labels and the settings into one ``HostTls`` per host, which ``rendering`` prints. The
defaults follow the issue's table: ACME when an email is set, else the self-signed fallback;
HTTP redirects once a host has a CA-issued certificate and serves both schemes while it
only has the fallback; HSTS only on CA-issued certificates unless a label asks for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from daemon.labels import Hsts
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
    """The certificate files the edge has ready: the fallback, and CA-issued ones by host."""

    fallback: CertFiles | None = None
    certificates: tuple[tuple[str, CertFiles], ...] = ()


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


def acme_hosts(table: RoutingTable, settings: Settings) -> frozenset[str]:
    """Hosts that want a certificate from the ACME CA."""
    return frozenset(r.host for r in table.routes if tls_mode(r, settings) == "acme")


def host_policies(
    table: RoutingTable, settings: Settings, state: TlsState
) -> Mapping[str, HostTls]:
    """One ``HostTls`` per routed host (routing already made the options per host)."""
    issued = dict(state.certificates)
    policies: dict[str, HostTls] = {}
    for route in table.routes:
        if route.host not in policies:
            policies[route.host] = _policy(route, settings, state.fallback, issued)
    return policies


def _policy(
    route: Route, settings: Settings, fallback: CertFiles | None, issued: Mapping[str, CertFiles]
) -> HostTls:
    mode = tls_mode(route, settings)
    if mode == "off":
        return HTTP_ONLY
    certificate = issued.get(route.host) if mode == "acme" else None
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
