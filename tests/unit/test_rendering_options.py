"""Rendering of the proxy-option labels: what each label prints, and how values are quoted."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from daemon.rendering import (
    Paths,
    RenderFacts,
    auth_files,
    make_environment,
    quote,
    render_config,
)
from daemon.routing import Attachment, ContainerInfo, RoutingContext, RoutingTable, build_routes
from daemon.running import builtin_templates
from daemon.settings import Settings
from daemon.tls import CertFiles, TlsState

SNAPSHOTS = Path(__file__).parent / "snapshots"
SETTINGS = Settings(state_dir=Path("/var/lib/dockyard"))
FACTS = RenderFacts(Paths.under(SETTINGS.state_dir))
APR1 = "$apr1$abcdefgh$" + "b" * 22


def table(*containers: dict[str, str]) -> RoutingTable:
    """The routing table of containers given as label dicts (named c0, c1, ... on 172.17.0.x)."""
    infos = [
        ContainerInfo(
            id=f"id{i}",
            name=f"c{i}",
            labels=tuple(sorted(labels.items())),
            attachments=(Attachment("bridge", f"172.17.0.{i + 2}"),),
            exposed_ports=(8080,),
        )
        for i, labels in enumerate(containers)
    ]
    result = build_routes(infos, RoutingContext())
    assert [p for p in result.problems if p.level != "info"] == []
    return result.table


def render(routes: RoutingTable, tls: TlsState | None = None) -> str:
    """The config for ``routes`` with the shipped templates."""
    env = make_environment(None, builtin_templates())
    return render_config(routes, SETTINGS, FACTS, env, tls)


def location(text: str, path: str, host: str = "a.test") -> str:
    """The body of the first ``location <path> {`` block after ``server_name <host>;``."""
    start = text.index(f"location {path} {{", text.index(f"server_name {host};"))
    return text[start : text.index("\n        }", start)]


def test_quote_escapes_what_nginx_reads_inside_quotes() -> None:
    """Backslash, double quote and dollar are escaped; everything else is literal."""
    assert quote('a "b" \\ $x ;{}#') == '"a \\"b\\" \\\\ ${dockyard_dollar}x ;{}#"'


def test_options_config_matches_snapshot() -> None:
    """A config using every option label is exactly the reviewed snapshot."""
    routes = table(
        {
            "dockyard.host": "jatos.example.org",
            "dockyard.websocket": "true",
            "dockyard.max_body_size": "500m",
            "dockyard.route.gui.path": "/jatos",
            "dockyard.route.gui.allow": "192.168.1.0/24",
        },
        {
            "dockyard.host": "media.example.org",
            "dockyard.path": "/jellyfin",
            "dockyard.path.strip": "true",
            "dockyard.buffering": "false",
            "dockyard.frame": "sameorigin",
            "dockyard.nosniff": "true",
            "dockyard.xss_filter": "true",
            "dockyard.csp": "default-src https: data: blob:; object-src 'none'",
            "dockyard.headers.X-Robots-Tag": 'a "quoted" $value',
            "dockyard.headers.Server": "",
        },
        {
            "dockyard.host": "hub.example.org",
            "dockyard.request_headers.X-Script-Name": "/jhub",
            "dockyard.auth.basic": f"admin:{APR1}",
            "dockyard.rate_limit": "10r/s",
            "dockyard.rate_limit.burst": "20",
            "dockyard.timeout.read": "2m",
            "dockyard.scheme": "https",
            "dockyard.lb": "least_conn",
            "dockyard.route.api.path": "/api",
            "dockyard.route.api.auth.forward": "http://172.17.0.9:9091/api/verify",
            "dockyard.route.api.auth.forward.response_headers": "Remote-User",
            "dockyard.route.exact.path": "/e",
            "dockyard.route.exact.path.exact": "true",
            "dockyard.route.exact.path.replace": "/r",
        },
        {
            "dockyard.host": "old.example.org",
            "dockyard.redirect.to": "https://new.example.org$request_uri",
            "dockyard.redirect.permanent": "true",
        },
        {"dockyard.host": "example.net", "dockyard.redirect.to": "www"},
    )
    text = render(routes)
    path = SNAPSHOTS / "options.conf"
    if __import__("os").environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert text == path.read_text()


def test_headers_are_printed_quoted_with_always() -> None:
    """Response headers go out on every status with their exact value; empty ones are hidden."""
    text = render(
        table(
            {
                "dockyard.host": "a.test",
                "dockyard.headers.X-A": 'x "y" $z \\',
                "dockyard.headers.Server": "",
            }
        )
    )
    body = location(text, "/")
    assert 'add_header X-A "x \\"y\\" ${dockyard_dollar}z \\\\" always;' in body
    assert "proxy_hide_header Server;" in body
    assert 'geo $dockyard_dollar {\n        default "$";' in text


def test_location_headers_repeat_hsts() -> None:
    """nginx drops inherited add_header in a location with its own: HSTS is printed again."""
    routes = table(
        {"dockyard.host": "a.test", "dockyard.nosniff": "true", "dockyard.hsts": "max-age=60"}
    )
    cert = CertFiles(Path("/certs/fallback.pem"), "1" * 16)
    text = render(routes, TlsState(fallback=cert))
    https = text[text.index("ssl_certificate /certs/fallback.pem") :]
    body = https[https.index("location / {") : https.index("\n        }")]
    assert 'add_header Strict-Transport-Security "max-age=60" always;' in body
    assert 'add_header X-Content-Type-Options "nosniff" always;' in body


def test_request_headers_repeat_the_forwarded_set_without_the_overridden() -> None:
    """A location setting request headers also sets dockyard's, minus the ones it replaces."""
    text = render(
        table(
            {
                "dockyard.host": "a.test",
                "dockyard.request_headers.Host": "inner.test",
                "dockyard.request_headers.X-Script-Name": "/jhub",
            }
        )
    )
    body = location(text, "/")
    assert 'proxy_set_header Host "inner.test";' in body
    assert "proxy_set_header Host $http_host;" not in body
    assert "proxy_set_header X-Forwarded-For $dockyard_forwarded_for;" in body
    assert 'proxy_set_header X-Script-Name "/jhub";' in body


def test_pass_host_header_false_sends_the_backend_address() -> None:
    """pass_host_header=false sets Host to the backend's address and port, as Traefik does."""
    text = render(table({"dockyard.host": "a.test", "dockyard.pass_host_header": "false"}))
    assert 'proxy_set_header Host "172.17.0.2:8080";' in location(text, "/")


def test_access_checks_come_before_proxying() -> None:
    """allow/deny, basic auth and limits are printed in the location that proxies."""
    text = render(
        table(
            {
                "dockyard.host": "a.test",
                "dockyard.allow": "10.0.0.0/8,fd00::/8",
                "dockyard.auth.basic": f"admin:{APR1}",
                "dockyard.rate_limit": "5r/m",
            }
        )
    )
    body = location(text, "/")
    assert re.search(r"allow 10\.0\.0\.0/8;\s+allow fd00::/8;\s+deny all;", body)
    (name,) = auth_files(table({"dockyard.host": "a.test", "dockyard.auth.basic": f"admin:{APR1}"}))
    assert f"auth_basic_user_file /var/lib/dockyard/auth/{name};" in body
    # nginx 1.22 refuses burst=0: without a burst the limit is printed bare
    assert "limit_req zone=dockyard_rate_5_per_m;" in body
    assert (
        'limit_req_zone "$binary_remote_addr$host" zone=dockyard_rate_5_per_m:10m rate=5r/m;'
        in text
    )


def test_htpasswd_files_are_named_by_their_content() -> None:
    """Equal user lists share one file; its content is one user:hash line per user."""
    routes = table(
        {"dockyard.host": "a.test", "dockyard.auth.basic": f"admin:{APR1}"},
        {"dockyard.host": "b.test", "dockyard.auth.basic": f"admin:{APR1}"},
    )
    files = auth_files(routes)
    assert list(files.values()) == [f"admin:{APR1}\n"]
    (name,) = files
    # same options, same shape: both hosts share one server block naming the one file
    assert render(routes).count(f"auth_basic_user_file /var/lib/dockyard/auth/{name};") == 1


def test_forward_auth_gets_one_internal_location_per_server() -> None:
    """Two paths asking one auth server share its internal location; headers are copied."""
    text = render(
        table(
            {
                "dockyard.host": "a.test",
                "dockyard.auth.forward": "https://sso.test/verify",
                "dockyard.auth.forward.response_headers": "Remote-User",
                "dockyard.route.b.path": "/b",
            }
        )
    )
    (uri,) = set(re.findall(r"auth_request (\S+);", text))
    assert text.count(f"location = {uri} {{") == 1
    internal = location(text, f"= {uri}")
    assert "proxy_pass https://sso.test:443/verify;" in internal
    assert "proxy_set_header Host sso.test;" in internal
    assert "proxy_ssl_verify on;" in internal
    body = location(text, "/")
    assert "auth_request_set $dockyard_auth_remote_user $upstream_http_remote_user;" in body
    assert "proxy_set_header Remote-User $dockyard_auth_remote_user;" in body


def test_redirects_print_status_and_braced_target() -> None:
    """redirect.to prints 302 (301 when permanent) to the target with braced variables."""
    text = render(
        table(
            {"dockyard.host": "a.test", "dockyard.redirect.to": "https://b.test$request_uri"},
            {
                "dockyard.host": "c.test",
                "dockyard.redirect.to": "https://d.test/",
                "dockyard.redirect.permanent": "true",
            },
        )
    )
    assert 'return 302 "https://b.test${request_uri}";' in text
    assert 'return 301 "https://d.test/";' in text


def test_path_rewrites() -> None:
    """strip with add_prefix, add_prefix alone, replace and exact strip rewrite as Traefik does."""
    text = render(
        table(
            {
                "dockyard.host": "a.test",
                "dockyard.path": "/s",
                "dockyard.path.strip": "true",
                "dockyard.path.add_prefix": "/p",
                "dockyard.route.add.path": "/add",
                "dockyard.route.add.path.strip": "false",
                "dockyard.route.rep.path": "/rep",
                "dockyard.route.rep.path.strip": "false",
                "dockyard.route.rep.path.replace": "/new",
                "dockyard.route.ex.path": "/ex",
                "dockyard.route.ex.path.exact": "true",
            }
        )
    )
    assert "rewrite ^/s/(.*)$ /p/$1 break;" in location(text, "/s/")
    assert "rewrite ^(.*)$ /p$1 break;" in location(text, "/add/")
    assert "rewrite ^ /new break;" in location(text, "/rep/")
    assert "rewrite ^ /p break;" in location(text, "= /ex")


def test_exact_route_takes_the_bare_uri_from_a_prefix_route() -> None:
    """A prefix route does not print its ``= /x`` twin when an exact route owns ``/x``."""
    text = render(
        table(
            {"dockyard.host": "a.test", "dockyard.path": "/x"},
            {"dockyard.host": "a.test", "dockyard.path": "/x", "dockyard.path.exact": "true"},
        )
    )
    assert text.count("location = /x {") == 1
    assert "location /x/ {" in text


def test_https_backends_are_verified_unless_insecure() -> None:
    """scheme=https verifies against the backend CA bundle; https+insecure does not."""
    text = render(
        table(
            {"dockyard.host": "a.test", "dockyard.scheme": "https"},
            {"dockyard.host": "b.test", "dockyard.scheme": "https+insecure"},
        )
    )
    secure = text.split("server_name b.test;")[0]
    assert "proxy_ssl_verify on;" in location(secure, "/")
    assert "proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;" in secure
    assert "proxy_pass https://" in location(text, "/", "b.test")
    assert "proxy_ssl_verify" not in location(text, "/", "b.test")


def test_balancing_methods_go_into_their_own_upstreams() -> None:
    """lb prints its method first in the upstream; the same backends with another method differ."""
    text = render(
        table(
            {"dockyard.host": "a.test", "dockyard.lb": "ip_hash", "dockyard.port": "80"},
            {"dockyard.host": "b.test", "dockyard.lb": "least_conn", "dockyard.port": "80"},
        )
    )
    assert re.search(r"# c0\n\s+ip_hash;\n\s+server 172\.17\.0\.2:80;", text)
    assert re.search(r"# c1\n\s+least_conn;\n\s+server 172\.17\.0\.3:80;", text)


def test_unreachable_auth_server_fails_closed() -> None:
    """A forward-auth check whose server is not running answers 503 (the client gets 500)."""
    labels = {"dockyard.host": "a.test", "dockyard.auth.forward": "http://nobody-here:9091/"}
    app = ContainerInfo("id", "app", tuple(labels.items()), exposed_ports=(80,))
    app = dataclasses.replace(app, attachments=(Attachment("bridge", "172.17.0.2"),))
    text = render(build_routes([app], RoutingContext()).table)
    (uri,) = set(re.findall(r"auth_request (\S+);", text))
    internal = location(text, f"= {uri}")
    assert "return 503;" in internal
    assert "proxy_pass" not in internal


def test_forward_auth_to_an_ipv6_literal_is_bracketed_once() -> None:
    """An auth URL with an IPv6 host proxies to ``[addr]:port``, not ``[[addr]]``."""
    text = render(
        table({"dockyard.host": "a.test", "dockyard.auth.forward": "http://[fd00::1]:9091/v"})
    )
    assert "proxy_pass http://[fd00::1]:9091/v;" in text
