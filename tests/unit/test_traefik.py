"""Traefik v1 labels: read as Traefik 1.7 reads them, checked as strictly as native labels."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from daemon.errors import LabelError
from daemon.labels import IgnoredLabel, UnknownLabel
from daemon.rendering import Paths, RenderFacts, make_environment, render_config
from daemon.routing import (
    Attachment,
    ContainerInfo,
    RoutingContext,
    RoutingResult,
    build_routes,
    has_prefixed_labels,
)
from daemon.running import builtin_templates
from daemon.settings import Settings
from daemon.sources import event_matters
from daemon.tls import CertFiles, TlsState
from daemon.traefik import parse_traefik_labels, translate_traefik, uses_traefik_labels

P = "dockyard"
APR1 = "$apr1$abcdefgh$" + "b" * 22
SETTINGS = Settings(state_dir=Path("/var/lib/dockyard"))

# The labels of the Traefik service on the Jellyfin seed page ("Traefik (with
# docker-compose)"), copied verbatim from its docker-compose.yml.
JELLYFIN_COMPOSE_LABELS = """\
      traefik.enable: "true"
      traefik.backend: traefik
      traefik.docker.network: traefik
      traefik.port: 8080
      traefik.frontend.rule: Host:traefik.example.com,
      traefik.frontend.entryPoints: https
      traefik.frontend.passHostHeader: "true"
      traefik.frontend.headers.SSLForceHost: "true"
      traefik.frontend.headers.SSLHost: traefik.example.com
      traefik.frontend.headers.SSLRedirect: "true"
      traefik.frontend.headers.browserXSSFilter: "true"
      traefik.frontend.headers.contentTypeNosniff: "true"
      traefik.frontend.headers.forceSTSHeader: "true"
      traefik.frontend.headers.STSSeconds: 315360000
      traefik.frontend.headers.STSIncludeSubdomains: "true"
      traefik.frontend.headers.STSPreload: "true"
      traefik.frontend.headers.customResponseHeaders: X-Robots-Tag:noindex,nofollow,nosnippet,noarchive,notranslate,noimageindex
      traefik.frontend.headers.frameDeny: "true"
      traefik.frontend.headers.customFrameOptionsValue: 'allow-from https://example.com'
"""  # noqa: E501 - verbatim
# What Traefik 1.7 sends with those labels on every HTTPS answer.
JELLYFIN_HEADERS = {
    "Strict-Transport-Security": "max-age=315360000; includeSubDomains; preload",
    "X-Frame-Options": "allow-from https://example.com",
    "X-XSS-Protection": "1; mode=block",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex,nofollow,nosnippet,noarchive,notranslate,noimageindex",
}


def compose_labels(text: str) -> dict[str, str]:
    """A compose ``labels:`` map as Docker stores it: every value a string, quotes removed."""
    labels = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(": ")
        if len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]:
            value = value[1:-1]
        labels[key] = value
    return labels


JELLYFIN_LABELS = compose_labels(JELLYFIN_COMPOSE_LABELS)


def translated(labels: dict[str, str]) -> dict[str, str]:
    """The native labels (without ``dockyard.``) for the Traefik labels of a container ``app``."""
    result = translate_traefik(labels, P, container_name="app")
    assert result.reason is None, result.reason
    return {key.removeprefix(P + "."): value for key, value in result.labels.items()}


def container(labels: dict[str, str], name: str = "app", **extra: str) -> ContainerInfo:
    """A running container on the networks ``bridge`` and ``traefik`` exposing port 8080."""
    return ContainerInfo(
        id=f"id-{name}",
        name=name,
        labels=tuple(sorted({**labels, **extra}.items())),
        attachments=(Attachment("bridge", "172.17.0.2"), Attachment("traefik", "172.20.0.2")),
        exposed_ports=(8080,),
    )


def routes_of(*containers: ContainerInfo) -> RoutingResult:
    """build_routes with the default prefix."""
    return build_routes(containers, RoutingContext(label_prefix=P))


HOST = {"traefik.frontend.rule": "Host:a.test"}
H = "traefik.frontend.headers."


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        # backend
        ({"traefik.port": "8096"}, {"port": "8096"}),
        ({"traefik.protocol": "https"}, {"scheme": "https"}),
        ({"traefik.protocol": "http"}, {"scheme": "http"}),
        ({"traefik.docker.network": "traefik"}, {"network": "traefik"}),
        ({"traefik.backend": "jellyfin"}, {}),
        ({"traefik.backend.loadbalancer.method": "wrr"}, {"lb": "round_robin"}),
        ({"traefik.backend.loadbalancer.method": "drr"}, {"lb": "least_conn"}),
        ({"traefik.backend.loadbalancer.stickiness": "true"}, {"lb": "ip_hash"}),
        ({"traefik.backend.loadbalancer.stickiness": "false"}, {}),
        (
            {
                "traefik.backend.loadbalancer.method": "drr",
                "traefik.backend.loadbalancer.sticky": "1",
            },
            {"lb": "ip_hash"},
        ),
        (
            {"traefik.backend.buffering.maxRequestBodyBytes": "1048576"},
            {"max_body_size": "1048576"},
        ),
        # entry points and redirects
        ({"traefik.frontend.entryPoints": "https"}, {"https": "redirect"}),
        ({"traefik.frontend.entryPoints": "http"}, {"tls": "off", "hsts": None}),
        ({"traefik.frontend.entryPoints": "http,https"}, {"hsts": "off"}),
        ({"traefik.frontend.redirect.entryPoint": "https"}, {"https": "redirect"}),
        ({H + "SSLRedirect": "true"}, {"https": "redirect"}),
        ({H + "SSLTemporaryRedirect": "T"}, {"https": "redirect"}),
        # frontend
        ({"traefik.frontend.passHostHeader": "false"}, {"pass_host_header": "false"}),
        ({"traefik.frontend.passHostHeader": "true"}, {"pass_host_header": "true"}),
        # an empty label is an absent one, as in Traefik
        ({"traefik.port": "", "traefik.frontend.entryPoints": ""}, {}),
        ({"traefik.frontend.priority": "10"}, {"priority": "10"}),
        (
            {"traefik.frontend.whiteList.sourceRange": "10.0.0.0/8, 192.168.1.0/24,"},
            {"allow": "10.0.0.0/8,192.168.1.0/24"},
        ),
        ({"traefik.frontend.whitelistSourceRange": "10.0.0.0/8"}, {"allow": "10.0.0.0/8"}),
        ({"traefik.frontend.whiteList.useXForwardedFor": "false"}, {}),
        (
            {"traefik.frontend.auth.basic.users": f"a:{APR1},b:{APR1}"},
            {"auth.basic": f"a:{APR1},b:{APR1}"},
        ),
        ({"traefik.frontend.auth.basic": f"a:{APR1}"}, {"auth.basic": f"a:{APR1}"}),
        (
            {
                "traefik.frontend.auth.basic.users": f"a:{APR1}",
                "traefik.frontend.auth.basic.removeHeader": "true",
            },
            {"auth.basic": f"a:{APR1}", "request_headers.Authorization": ""},
        ),
        (
            {
                "traefik.frontend.auth.forward.address": "http://authelia:9091/api/verify",
                "traefik.frontend.auth.forward.authResponseHeaders": "Remote-User, Remote-Groups",
            },
            {
                "auth.forward": "http://authelia:9091/api/verify",
                "auth.forward.response_headers": "Remote-User,Remote-Groups",
            },
        ),
        # secure headers
        (
            {
                H + "STSSeconds": "63072000",
                H + "STSPreload": "true",
            },
            {"hsts": "max-age=63072000; preload"},
        ),
        ({H + "STSSeconds": "0"}, {"hsts": "off"}),
        (
            {H + "STSSeconds": "60", H + "STSIncludeSubdomains": "true"},
            {"hsts": "max-age=60; includeSubDomains"},
        ),
        (
            {"traefik.frontend.entryPoints": "http", H + "STSSeconds": "60"},
            {"tls": "off", "hsts": None},
        ),
        ({H + "allowedHosts": "A.test, b.test"}, {}),
        ({H + "hostsProxyHeaders": "X-Forwarded-Host"}, {}),
        ({H + "frameDeny": "true"}, {"frame": "deny"}),
        (
            {
                H + "frameDeny": "true",
                H + "customFrameOptionsValue": "SAMEORIGIN",
            },
            {"frame": "SAMEORIGIN"},
        ),
        ({H + "contentTypeNosniff": "true"}, {"nosniff": "true"}),
        ({H + "browserXSSFilter": "true"}, {"xss_filter": "true"}),
        (
            {
                H + "browserXSSFilter": "true",
                H + "customBrowserXSSValue": "0",
            },
            {"headers.X-XSS-Protection": "0"},
        ),
        ({H + "contentSecurityPolicy": "default-src 'self'"}, {"csp": "default-src 'self'"}),
        ({H + "referrerPolicy": "same-origin"}, {"referrer_policy": "same-origin"}),
        ({H + "publicKey": 'pin-sha256="x"'}, {"headers.Public-Key-Pins": 'pin-sha256="x"'}),
        (
            {
                H + "isDevelopment": "true",
                H + "publicKey": 'pin-sha256="x"',
                H + "allowedHosts": "b.test",
            },
            {},
        ),
        (
            {
                H + "isDevelopment": "true",
                H + "SSLRedirect": "true",
                H + "STSSeconds": "60",
            },
            {"hsts": "off"},
        ),
        # custom headers: Name:value||Name2:value2, commas and colons in values, empty removes
        (
            {
                H + "customResponseHeaders": "x-robots-tag:noindex,nofollow||Server:"
                "||Link:<https://a.test>; rel=preload"
            },
            {
                "headers.X-Robots-Tag": "noindex,nofollow",
                "headers.Server": "",
                "headers.Link": "<https://a.test>; rel=preload",
            },
        ),
        (
            {H + "customRequestHeaders": "X-Script-Name:/jhub||X-Forwarded-Proto: https"},
            {
                "request_headers.X-Script-Name": "/jhub",
                "request_headers.X-Forwarded-Proto": "https",
            },
        ),
        # rate limits: average per period, as nginx's whole requests per second or minute
        (
            {
                "traefik.frontend.rateLimit.extractorFunc": "client.ip",
                "traefik.frontend.rateLimit.rateSet.api.period": "10s",
                "traefik.frontend.rateLimit.rateSet.api.average": "100",
                "traefik.frontend.rateLimit.rateSet.api.burst": "50",
            },
            {"rate_limit": "10r/s", "rate_limit.burst": "50"},
        ),
        (
            {
                "traefik.frontend.rateLimit.extractorFunc": "client.ip",
                "traefik.frontend.rateLimit.rateSet.slow.period": "1m30s",
                "traefik.frontend.rateLimit.rateSet.slow.average": "3",
            },
            {"rate_limit": "2r/m"},
        ),
    ],
)
def test_each_key_translates(labels: dict[str, str], expected: dict[str, str | None]) -> None:
    """Every Traefik key becomes the native label with the same meaning (None: absent)."""
    want = {"host": "a.test", "hsts": "off"} | expected
    assert translated({**HOST, **labels}) == {k: v for k, v in want.items() if v is not None}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("Host:a.test", {"host": "a.test"}),
        ("Host: a.test , b.test ,", {"host": "a.test,b.test"}),
        ("HostRegexp:{sub:[a-z]+}.example.com", {"host": "*.example.com"}),
        ("HostRegexp:{sub}.example.com,example.com", {"host": "*.example.com,example.com"}),
        ("Host:a.test;Path:/health", {"path": "/health", "path.exact": "true"}),
        ("Host:a.test;PathPrefix:/api,/v1", {"path": "/api,/v1"}),
        (
            "Host:a.test;PathStrip:/ping",
            {
                "path": "/ping",
                "path.exact": "true",
                "path.strip": "true",
                "request_headers.X-Forwarded-Prefix": "/ping",
            },
        ),
        (
            "Host:a.test;PathPrefixStrip:/jellyfin",
            {
                "path": "/jellyfin",
                "path.strip": "true",
                "request_headers.X-Forwarded-Prefix": "/jellyfin",
            },
        ),
        ("Host:a.test;PathPrefixStrip:/a,/b", {"path": "/a,/b", "path.strip": "true"}),
        (
            "Host:a.test;PathPrefixStrip:/app;AddPrefix:/v2",
            {
                "path": "/app",
                "path.strip": "true",
                "path.add_prefix": "/v2",
                "request_headers.X-Forwarded-Prefix": "/app",
            },
        ),
        ("Host:a.test;ReplacePath:/index.html", {"path.replace": "/index.html"}),
        (
            "Host:a.test;PathPrefixStrip:/old;ReplacePath:/new",
            {"path": "/old", "path.replace": "/new"},
        ),
        ("PathPrefix:/api;Host:a.test;", {"host": "a.test", "path": "/api"}),
    ],
)
def test_rules_translate(rule: str, expected: dict[str, str]) -> None:
    """Matchers joined by ';' all apply; values joined by ',' are alternatives."""
    result = translated({"traefik.frontend.rule": rule})
    assert result == {"host": "a.test", "hsts": "off"} | expected


def test_segments_become_named_routes_with_the_plain_labels_as_defaults() -> None:
    """``traefik.<segment>.*`` labels are routes of their own; plain ones fill their gaps."""
    result = translated(
        {
            "traefik.docker.network": "traefik",
            "traefik.frontend.entryPoints": "https",
            "traefik.frontend.rule": "Host:media.test",
            "traefik.web.port": "8096",
            "traefik.web.frontend.rule": "Host:web.test",
            "traefik.api.port": "9000",
            "traefik.api.frontend.rule": "Host:media.test;PathPrefix:/api",
        }
    )
    common = {"network": "traefik", "https": "redirect", "hsts": "off"}
    assert result == {
        **{f"route.web.{k}": v for k, v in {**common, "host": "web.test", "port": "8096"}.items()},
        **{
            f"route.api.{k}": v
            for k, v in {**common, "host": "media.test", "path": "/api", "port": "9000"}.items()
        },
    }


def test_ssl_force_host_redirects_the_other_hosts() -> None:
    """SSLHost with SSLForceHost: the rule's other hosts go to https://SSLHost, on any scheme."""
    labels = {
        "traefik.port": "80",
        "traefik.frontend.rule": "Host:example.com,www.example.com",
        H + "SSLRedirect": "true",
        H + "SSLHost": "example.com",
        H + "SSLForceHost": "true",
    }
    result = translated(labels)
    assert result["host"] == "example.com"
    assert result["https"] == "redirect"
    assert result["route.sslhost.host"] == "www.example.com"
    assert result["route.sslhost.redirect.to"] == "https://example.com$request_uri"
    assert result["route.sslhost.redirect.permanent"] == "true"
    assert result["route.sslhost.https"] == "both"

    (plain, moved) = parse_traefik_labels(labels, P).routes
    assert plain.hosts == ("example.com",) and plain.options.redirect is None
    assert moved.hosts == ("www.example.com",)
    assert moved.options.redirect is not None
    assert moved.options.redirect.target == "https://example.com${request_uri}"


def test_ssl_host_redirect_is_temporary_with_ssl_temporary_redirect() -> None:
    """SSLTemporaryRedirect makes the SSLHost redirect temporary, as Traefik's 302."""
    result = translated(
        {
            "traefik.frontend.rule": "Host:example.com,www.example.com",
            H + "SSLTemporaryRedirect": "true",
            H + "SSLHost": "example.com",
            H + "SSLForceHost": "true",
        }
    )
    assert result["route.sslhost.redirect.permanent"] == "false"


def test_ssl_host_is_off_in_development() -> None:
    """isDevelopment turns SSLHost off as it does the SSL redirect: every host is served."""
    result = translated(
        {
            "traefik.frontend.rule": "Host:example.com,www.example.com",
            H + "isDevelopment": "true",
            H + "SSLHost": "example.com",
            H + "SSLForceHost": "true",
        }
    )
    assert result == {"host": "example.com,www.example.com", "hsts": "off"}


def test_default_rule_needs_traefik_domain() -> None:
    """Without a rule Traefik uses Host:<name>.<domain>: built from traefik.domain, else refused."""
    assert translated({"traefik.domain": "example.com", "traefik.port": "80"})["host"] == (
        "app.example.com"
    )
    compose = {
        "com.docker.compose.project": "media_stack",
        "com.docker.compose.service": "jelly_fin",
    }
    with_domain = {"traefik.domain": "example.com", **compose}
    result = translate_traefik(with_domain, P, container_name="ignored")
    assert result.labels[f"{P}.host"] == "jelly-fin.media-stack.example.com"

    missing = translate_traefik({"traefik.enable": "true", "traefik.port": "80"}, P)
    assert missing.labels == {}
    assert missing.reason is not None
    assert "no traefik.frontend.rule" in missing.reason
    assert "traefik.toml" in missing.reason
    v2 = translate_traefik({"traefik.http.routers.app.rule": "Host(`a.test`)"}, P)
    assert v2.reason is not None and "Traefik v2" in v2.reason


def test_enable_false_disables_the_container() -> None:
    """``traefik.enable=false`` leaves the container out, with that reason."""
    result = translate_traefik({**HOST, "traefik.enable": "false"}, P)
    assert (result.labels, result.reason) == ({}, "traefik.enable is false")


@pytest.mark.parametrize(
    ("label", "suggestion"),
    [
        ("traefik.frontend.rul", "traefik.frontend.rule"),
        ("traefik.frontend.entrypoints", "traefik.frontend.entryPoints"),
        (H + "SSLRedirct", H + "SSLRedirect"),
        (H + "stsSeconds", H + "STSSeconds"),
        ("traefik.prot", "traefik.port"),
        ("traefik.web.frontend.rul", "traefik.web.frontend.rule"),
        ("traefik.docker.networks", "traefik.docker.network"),
    ],
)
def test_unknown_labels_get_a_suggestion(label: str, suggestion: str) -> None:
    """A typo is reported with the Traefik label it most likely meant, and has no effect."""
    result = translate_traefik({**HOST, label: "x"}, P)
    assert result.unknown == (UnknownLabel(label, suggestion),)
    assert set(translated(HOST)) == {key.removeprefix(P + ".") for key in result.labels}


@pytest.mark.parametrize(
    ("labels", "label", "reason"),
    [
        ({"traefik.port": "80x"}, "traefik.port", "port number"),
        ({"traefik.enable": "maybe"}, "traefik.enable", "true or false"),
        ({"traefik.frontend.rule": "Host:a.test;Method:GET"}, "traefik.frontend.rule", "Method"),
        (
            {"traefik.frontend.rule": "Host:a.test;Headers:X-A,b"},
            "traefik.frontend.rule",
            "by host name and path only",
        ),
        ({"traefik.frontend.rule": "Host:a.test;Query:a=b"}, "traefik.frontend.rule", "Query"),
        (
            {"traefik.frontend.rule": "Host:a.test;PathPrefix:/{id:[0-9]+}"},
            "traefik.frontend.rule",
            "regular-expression",
        ),
        (
            {"traefik.frontend.rule": "Host:a.test;PathPrefixStripRegex:/a/[0-9]+"},
            "traefik.frontend.rule",
            "regular-expression",
        ),
        ({"traefik.frontend.rule": "PathPrefix:/api"}, "traefik.frontend.rule", "no Host matcher"),
        (
            {"traefik.frontend.rule": "Host:a.test;Host:b.test"},
            "traefik.frontend.rule",
            "comma-separated",
        ),
        ({"traefik.frontend.rule": "Hots:a.test"}, "traefik.frontend.rule", "did you mean Host?"),
        (
            {"traefik.frontend.rule": "HostRegexp:{a}.{b}.example.com"},
            "traefik.frontend.rule",
            "whole first name part",
        ),
        (
            {"traefik.frontend.rule": "HostRegexp:app-{n:[0-9]+}.example.com"},
            "traefik.frontend.rule",
            "whole first name part",
        ),
        ({"traefik.frontend.rule": "Host:a_b.test"}, "traefik.frontend.rule", "host names"),
        (
            {"traefik.frontend.rule": "Host:a.test;PathPrefix:/a b"},
            "traefik.frontend.rule",
            "path segments",
        ),
        (
            {"traefik.frontend.whiteList.useXForwardedFor": "true"},
            "traefik.frontend.whiteList.useXForwardedFor",
            "DOCKYARD_TRUSTED_PROXIES",
        ),
        (
            {"traefik.frontend.whiteList.sourceRange": "10.0.0.0/33"},
            "traefik.frontend.whiteList.sourceRange",
            "CIDR",
        ),
        (
            {"traefik.frontend.entryPoints": "internal"},
            "traefik.frontend.entryPoints",
            "named http and https",
        ),
        (
            {"traefik.frontend.redirect.entryPoint": "http"},
            "traefik.frontend.redirect.entryPoint",
            "https entry point",
        ),
        (
            {
                "traefik.frontend.entryPoints": "http",
                H + "SSLRedirect": "true",
            },
            H + "SSLRedirect",
            "entryPoints is http",
        ),
        (
            {"traefik.frontend.redirect.regex": "^http://a/(.*)"},
            "traefik.frontend.redirect.regex",
            "regular-expression",
        ),
        ({"traefik.protocol": "h2c"}, "traefik.protocol", "one of http, https"),
        (
            {"traefik.backend.loadbalancer.method": "random"},
            "traefik.backend.loadbalancer.method",
            "one of wrr, drr",
        ),
        (
            {"traefik.frontend.auth.digest.users": "a:r:h"},
            "traefik.frontend.auth.digest.users",
            "digest",
        ),
        (
            {"traefik.frontend.auth.basic.usersFile": "/users"},
            "traefik.frontend.auth.basic.usersFile",
            "file",
        ),
        (
            {"traefik.frontend.auth.basic.users": "admin:secret"},
            "traefik.frontend.auth.basic.users",
            "htpasswd",
        ),
        (
            {"traefik.frontend.auth.forward.tls.insecureSkipVerify": "true"},
            "traefik.frontend.auth.forward.tls.insecureSkipVerify",
            "DOCKYARD_BACKEND_CA",
        ),
        (
            {"traefik.frontend.auth.forward.trustForwardHeader": "true"},
            "traefik.frontend.auth.forward.trustForwardHeader",
            "DOCKYARD_TRUSTED_PROXIES",
        ),
        (
            {"traefik.frontend.passTLSClientCert.pem": "true"},
            "traefik.frontend.passTLSClientCert.pem",
            "certificates",
        ),
        ({H + "STSSeconds": "a year"}, H + "STSSeconds", "whole number"),
        (
            {H + "customFrameOptionsValue": "ALLOWALL"},
            H + "customFrameOptionsValue",
            "deny, sameorigin",
        ),
        ({H + "referrerPolicy": "strict"}, H + "referrerPolicy", "one of"),
        ({H + "customResponseHeaders": "X-Robots-Tag"}, H + "customResponseHeaders", "Name:value"),
        ({H + "customResponseHeaders": "X-A:1||x-a:2"}, H + "customResponseHeaders", "twice"),
        (
            {
                H + "frameDeny": "true",
                H + "customResponseHeaders": "X-Frame-Options:DENY",
            },
            H + "customResponseHeaders",
            "already set by traefik.frontend.headers.frameDeny",
        ),
        (
            {H + "customResponseHeaders": "Strict-Transport-Security:max-age=1"},
            H + "customResponseHeaders",
            "managed",
        ),
        ({H + "allowedHosts": "b.test"}, H + "allowedHosts", "Bad Host"),
        (
            {H + "SSLProxyHeaders": "X-Forwarded-Proto:https"},
            H + "SSLProxyHeaders",
            "terminates TLS",
        ),
        (
            {
                "traefik.frontend.rule": "Host:a.test,b.test",
                H + "SSLRedirect": "true",
                H + "SSLHost": "a.test",
            },
            H + "SSLHost",
            "SSLForceHost",
        ),
        (
            {
                "traefik.frontend.rateLimit.extractorFunc": "request.host",
                "traefik.frontend.rateLimit.rateSet.a.average": "5",
            },
            "traefik.frontend.rateLimit.extractorFunc",
            "client.ip",
        ),
        (
            {
                "traefik.frontend.rule": "Host:a.test,b.test",
                H + "SSLHost": "a.test/login",
                H + "SSLForceHost": "true",
            },
            H + "SSLHost",
            "a host name",
        ),
        (
            {
                "traefik.a.frontend.rule": "Host:a.test,b.test",
                "traefik.a.frontend.headers.SSLHost": "a.test",
                "traefik.a.frontend.headers.SSLForceHost": "true",
                "traefik.a-sslhost.frontend.rule": "Host:c.test",
            },
            "traefik.a-sslhost.frontend.rule",
            "two frontends would be named a-sslhost",
        ),
        (
            {
                "traefik.frontend.rateLimit.extractorFunc": "client.ip",
                "traefik.frontend.rateLimit.rateSet.a.average": "1",
                "traefik.frontend.rateLimit.rateSet.a.period": "7s",
            },
            "traefik.frontend.rateLimit.rateSet.a.average",
            "whole requests",
        ),
        (
            {
                "traefik.frontend.auth.basic.users": f"a:{APR1}",
                "traefik.frontend.auth.forward.address": "http://auth/",
            },
            "traefik.frontend.auth.forward.address",
            "one kind of auth",
        ),
        (
            {"traefik.web.port": "80", "traefik.web.frontend.rule": "Host:a.test;Host:b.test"},
            "traefik.web.frontend.rule",
            "AND",
        ),
        ({"traefik.we.b.port": "80"}, "traefik.we.b.port", "segment name"),
        (
            {"traefik.a.frontend.rule": "Host:a.test", "traefik.b.frontend.rule": "Host:a.test"},
            "traefik.b.frontend.rule",
            "already served by route 'a'",
        ),
        (
            {"traefik.frontend.rule": "Host:a.test\nb.test"},
            "traefik.frontend.rule",
            "control characters",
        ),
        *(
            (
                {
                    "traefik.frontend.rateLimit.extractorFunc": "client.ip",
                    "traefik.frontend.rateLimit.rateSet.a.average": "1",
                    "traefik.frontend.rateLimit.rateSet.a.period": period,
                },
                "traefik.frontend.rateLimit.rateSet.a.period",
                reason,
            )
            for period, reason in (
                ("9" * 5000, "at most 100 characters"),
                ("9" * 5000 + "s", "at most 100 characters"),
                ("\u00b2", "a period such as 10s"),
            )
        ),
    ],
)
def test_invalid_values_name_the_traefik_label(
    labels: dict[str, str], label: str, reason: str
) -> None:
    """A bad or untranslatable value raises LabelError naming the Traefik label and why."""
    with pytest.raises(LabelError) as caught:
        parse_traefik_labels({**HOST, **labels}, P)
    assert caught.value.label == label
    assert caught.value.value == {**HOST, **labels}[label]
    assert reason in caught.value.reason


def test_machinery_keys_are_reported_as_ignored() -> None:
    """Keys that only tune Traefik itself (health checks, weights) are read, reported, harmless."""
    parsed = parse_traefik_labels(
        {
            **HOST,
            "traefik.backend.healthcheck.path": "/health",
            "traefik.weight": "10",
            "traefik.frontend.errors.e.status": "500-599",
            "traefik.frontend.rateLimit.rateSet.a.average": "5",
        },
        P,
    )
    assert parsed.route is not None
    assert parsed.route.options.rate_limit is None
    assert [i.label for i in parsed.ignored] == [
        "traefik.backend.healthcheck.path",
        "traefik.frontend.errors.e.status",
        "traefik.frontend.rateLimit.rateSet.a.average",
        "traefik.weight",
    ]
    assert all(isinstance(i, IgnoredLabel) and i.reason for i in parsed.ignored)


def test_dialect_is_used_only_without_own_labels() -> None:
    """traefik.* labels are read only when the container has no dockyard.* labels."""
    assert uses_traefik_labels(HOST, P)
    assert not uses_traefik_labels({**HOST, "dockyard.host": "b.test"}, P)
    assert not uses_traefik_labels({"com.example": "x"}, P)
    assert not uses_traefik_labels(HOST, "traefik")

    mixed = routes_of(container({**HOST, "dockyard.host": "b.test"}))
    assert [r.host for r in mixed.table.routes] == ["b.test"]
    assert mixed.problems == ()


def test_traefik_containers_are_inspected_and_their_events_wake_a_pass() -> None:
    """A container with only traefik.* labels is worth inspecting and its start is relevant."""
    assert has_prefixed_labels(HOST, P)
    event = {"Type": "container", "Action": "start", "Actor": {"ID": "x", "Attributes": HOST}}
    assert event_matters(event, P, (), None)
    assert not event_matters(
        {**event, "Actor": {"ID": "x", "Attributes": {"image": "traefik"}}}, P, (), None
    )


def test_routing_reports_problems_by_traefik_label() -> None:
    """Unknown, ignored and invalid labels are logged with the Traefik label's own name."""
    typo = container({**HOST, "traefik.frontend.rul": "Host:b.test", "traefik.weight": "2"}, "typo")
    bad = container({"traefik.frontend.rule": "Host:c.test;Method:GET"}, "bad")
    result = routes_of(typo, bad)
    assert [r.host for r in result.table.routes] == ["a.test"]
    assert {(p.event, p.container, dict(p.fields)["label"]) for p in result.problems} == {
        ("label_unknown", "typo", "traefik.frontend.rul"),
        ("label_ignored", "typo", "traefik.weight"),
        ("label_invalid", "bad", "traefik.frontend.rule"),
    }
    unknown = next(p for p in result.problems if p.event == "label_unknown")
    assert dict(unknown.fields)["suggestion"] == "traefik.frontend.rule"


def test_missing_port_names_the_traefik_label() -> None:
    """Several exposed ports and no traefik.port: skipped, and the reason says traefik.port."""
    info = dataclasses.replace(container(HOST), exposed_ports=(80, 443))
    (problem,) = routes_of(info).problems
    assert problem.event == "container_skipped"
    assert "no traefik.port label" in dict(problem.fields)["reason"]


def test_not_exposed_reason_is_logged() -> None:
    """traefik.* labels without a rule: container_not_exposed says what Traefik would have done."""
    (problem,) = routes_of(container({"traefik.port": "80"})).problems
    assert problem.event == "container_not_exposed"
    assert "traefik.toml" in dict(problem.fields)["reason"]


def test_jellyfin_seed_labels_send_traefiks_headers_and_redirect() -> None:
    """The Jellyfin page's Traefik labels, verbatim: Traefik 1.7's HTTPS headers, HTTP redirect."""
    result = routes_of(container(JELLYFIN_LABELS, "jellyfin"))
    assert result.problems == ()
    (route,) = result.table.routes
    assert (route.host, route.path, route.backends[0].endpoint) == (
        "traefik.example.com",
        "/",
        "172.20.0.2:8080",
    )
    cert = CertFiles(Path("/var/lib/dockyard/certs/_fallback.pem"), "f" * 16)
    env = make_environment(None, builtin_templates())
    facts = RenderFacts(Paths.under(SETTINGS.state_dir))
    text = render_config(result.table, SETTINGS, facts, env, TlsState(fallback=cert))

    https = text[text.index(f"ssl_certificate {cert.path};") :]
    body = https[
        https.index("location / {") : https.index("\n        }", https.index("location / {"))
    ]
    sent = dict(re.findall(r'add_header (\S+) "([^"]*)" always;', body))
    assert sent == JELLYFIN_HEADERS

    # HTTP: only the redirect block names the host (one more server block is the HTTPS one)
    redirect = text[text.index("# HTTPS hosts: HTTP answers ACME challenges") :]
    redirect = redirect[: redirect.index("\n    }\n")]
    assert "server_name traefik.example.com;" in redirect
    assert "return 301 https://$host$request_uri;" in redirect
    assert text.count("server_name traefik.example.com;") == 2
