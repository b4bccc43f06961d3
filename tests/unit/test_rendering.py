"""Rendering: the routing table becomes deterministic, injection-proof nginx config."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from daemon.labels import Hsts, RouteOptions
from daemon.rendering import (
    KEEPALIVE_SLOTS,
    WORKER_CONNECTIONS,
    Paths,
    RenderFacts,
    config_generation,
    make_environment,
    plan_layout,
    render_config,
    upstream_keepalive,
)
from daemon.routing import Backend, Route, RoutingTable
from daemon.running import builtin_templates
from daemon.settings import Settings
from daemon.tls import CertFiles, TlsState, host_policies

SNAPSHOTS = Path(__file__).parent / "snapshots"
SETTINGS = Settings(state_dir=Path("/var/lib/dockyard"), http_port=80)
FACTS = RenderFacts(Paths.under(SETTINGS.state_dir))


def route(host: str, path: str = "/", *ips: str, strip: bool = False, ws: bool = False) -> Route:
    """A route to backends on port 8080 at ``ips``."""
    return Route(
        host=host,
        path=path,
        options=RouteOptions(
            strip=strip,
            websocket=ws,
            buffering=not ws,
            read_timeout="7d" if ws else None,
            send_timeout="7d" if ws else None,
        ),
        backends=tuple(Backend(ip, 8080) for ip in ips),
        containers=tuple(f"c-{ip}" for ip in ips),
    )


def render(table: RoutingTable, settings: Settings = SETTINGS) -> str:
    """Render with the shipped templates."""
    return render_config(table, settings, FACTS, make_environment(None, builtin_templates()))


SAMPLE = RoutingTable(
    (
        route("a.test", "/", "172.17.0.2", "172.17.0.3"),
        route("b.test", "/", "172.17.0.4"),
        route("media.test", "/", "172.17.0.5"),
        route("media.test", "/jellyfin", "172.17.0.6", strip=True, ws=True),
        route("media.test", "/api", "172.17.0.7"),
        route("sick.test", "/"),
        route("*.wild.test", "/", "172.17.0.8"),
    )
)


def check_snapshot(name: str, text: str) -> None:
    """Compare with the stored snapshot; UPDATE_SNAPSHOTS=1 rewrites it."""
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text)
    assert text == path.read_text()


def test_sample_config_matches_snapshot() -> None:
    """The full config for a mixed table is exactly the reviewed snapshot."""
    check_snapshot("sample.conf", render(SAMPLE))


def test_empty_config_matches_snapshot() -> None:
    """With no routes only the default server (404) and the control socket remain."""
    check_snapshot("empty.conf", render(RoutingTable()))


def test_rendering_is_deterministic() -> None:
    """The same table renders to the same bytes, and so the same generation."""
    first, second = render(SAMPLE), render(RoutingTable(tuple(reversed(SAMPLE.routes))))
    assert first == second
    assert config_generation(first) is not None
    assert config_generation(first) != config_generation(render(RoutingTable()))


def test_hosts_of_the_same_shape_share_a_server_and_a_map() -> None:
    """Plain one-path hosts share one server block; a map picks each host's upstream."""
    layout = plan_layout(SAMPLE)
    shared = next(s for s in layout.servers if "a.test" in s.hosts)
    assert shared.hosts == ("*.wild.test", "a.test", "b.test")
    (location,) = shared.locations
    assert location.target is not None
    assert location.target.startswith("$")
    (host_map,) = layout.maps
    assert [host for host, _ in host_map.entries] == ["*.wild.test", "a.test", "b.test"]


def test_replica_upstream_lists_every_backend() -> None:
    """Replicas are one upstream with a server line each and keepalive."""
    text = render(SAMPLE)
    block = text[: text.index("server 172.17.0.2:8080;")].rsplit("upstream ", 1)[1]
    block += text[text.index("server 172.17.0.2:8080;") :].split("}", 1)[0]
    assert "server 172.17.0.2:8080;" in block
    assert "server 172.17.0.3:8080;" in block
    assert f"keepalive {KEEPALIVE_SLOTS // 6};" in block  # the sample has six upstreams


@pytest.mark.parametrize(
    ("upstreams", "keepalive"),
    [(0, 1024), (1, 1024), (2, 1024), (4, 512), (65, 31), (128, 16), (10_000, 16)],
)
def test_keepalive_pool_shrinks_as_upstreams_grow(upstreams: int, keepalive: int) -> None:
    """Upstreams share half of worker_connections as idle pools: 1,024 each at most, 16 least."""
    assert upstream_keepalive(upstreams) == keepalive


def test_every_upstream_gets_the_pool_size_for_their_number() -> None:
    """65 upstreams share 2,048 slots: each block says ``keepalive 31``."""
    text = render(RoutingTable(tuple(route(f"h{i}.test", "/", f"10.0.0.{i}") for i in range(65))))
    assert text.count("keepalive 31;") == 65
    assert f"worker_connections {WORKER_CONNECTIONS};" in text


def test_upstream_names_are_stable_and_differ_early_and_in_length() -> None:
    """Names do not shift when routes come and go, and nginx tells them apart at once."""
    many = RoutingTable(
        tuple(route(f"h{i}.test", "/", f"10.0.{i // 250}.{i % 250}") for i in range(500))
    )
    names = {u.servers: u.name for u in plan_layout(many).upstreams}
    assert len(set(names.values())) == 500
    fewer = RoutingTable(many.routes[::2])
    assert all(names[u.servers] == u.name for u in plan_layout(fewer).upstreams)
    assert len({name[:2] for name in names.values()}) == 16
    assert len({len(name) for name in names.values()}) == 32


def test_strip_rewrites_and_redirects_the_bare_prefix() -> None:
    """``path.strip`` removes the prefix and sends ``/prefix`` to ``/prefix/``."""
    text = render(SAMPLE)
    assert "rewrite ^/jellyfin/(.*)$ /$1 break;" in text
    assert "return 301 /jellyfin/$is_args$args;" in text


def test_all_unhealthy_route_answers_503() -> None:
    """A route whose containers are all not ready returns 503 instead of another site."""
    text = render(RoutingTable((route("sick.test", "/"),)))
    server = text[text.index("server_name sick.test;") :]
    assert "return 503;" in server.split("}", 2)[1] + server.split("}", 2)[0]


def test_websocket_routes_get_long_timeouts_and_no_buffering() -> None:
    """``websocket=true`` gives days-long timeouts and unbuffered proxying."""
    text = render(RoutingTable((route("ws.test", "/", "172.17.0.2", ws=True),)))
    for directive in (
        "proxy_read_timeout 7d;",
        "proxy_send_timeout 7d;",
        "proxy_buffering off;",
        "proxy_request_buffering off;",
    ):
        assert directive in text


def test_forwarding_headers_and_upgrade_are_set_on_every_route() -> None:
    """Host is preserved, X-Forwarded-* and X-Real-IP come from the proxy, upgrades pass."""
    text = render(SAMPLE)
    for directive in (
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $dockyard_forwarded_for;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $dockyard_connection;",
        "server_tokens off;",
        "proxy_http_version 1.1;",
    ):
        assert directive in text
    assert "set_real_ip_from" not in text


def test_trusted_proxies_enable_real_ip() -> None:
    """Configured trusted proxies are the only sources whose X-Forwarded-For is believed."""
    settings = Settings(state_dir=SETTINGS.state_dir, trusted_proxies=("10.0.0.0/8",))
    text = render(SAMPLE, settings)
    assert "set_real_ip_from 10.0.0.0/8;" in text
    assert "        10.0.0.0/8 1;" in text


def test_printing_unvalidated_syntax_is_refused() -> None:
    """The last line of defence: a value with nginx syntax never reaches the output."""
    for evil in ("a.test;", "a.test{", "a test", "a.test#", 'a"b'):
        with pytest.raises(ValueError, match="refusing"):
            render(RoutingTable((route(evil, "/", "172.17.0.2"),)))


def test_long_host_names_get_big_enough_hash_buckets() -> None:
    """A 253-character name must fit nginx's server_names hash bucket."""
    name = ".".join(["a" * 63] * 3 + ["b" * 61])
    layout = plan_layout(RoutingTable((route(name, "/", "172.17.0.2"),)))
    assert layout.hashes.bucket_size >= len(name) + 2 + 16
    assert layout.hashes.bucket_size % 64 == 0


TLS_SAMPLE = RoutingTable(
    (
        route("issued.test", "/", "172.17.0.2"),
        route("issued.test", "/api", "172.17.0.3"),
        route("waiting.test", "/", "172.17.0.4"),
        dataclasses.replace(route("plain.test", "/", "172.17.0.5"), tls="off"),
        dataclasses.replace(route("only.test", "/", "172.17.0.6"), https="only"),
        dataclasses.replace(
            route("strict.test", "/", "172.17.0.7"), https="redirect", hsts=Hsts(600, True, True)
        ),
    )
)
TLS_STATE = TlsState(
    CertFiles(Path("/var/lib/dockyard/certs/_fallback.pem"), "f" * 16),
    (("issued.test", CertFiles(Path("/var/lib/dockyard/certs/issued.test.pem"), "1" * 16)),),
)
ACME_SETTINGS = dataclasses.replace(SETTINGS, acme_email="ops@example.org")


def render_tls(table: RoutingTable = TLS_SAMPLE, state: TlsState = TLS_STATE) -> str:
    """Render with ACME on and the sample certificate state."""
    env = make_environment(None, builtin_templates())
    return render_config(table, ACME_SETTINGS, FACTS, env, state)


def test_tls_config_matches_snapshot() -> None:
    """HTTPS servers, redirects and HSTS for a mixed table are exactly the reviewed snapshot."""
    check_snapshot("tls.conf", render_tls())


def test_hosts_split_into_http_and_https_blocks_by_certificate() -> None:
    """Each certificate gets its own HTTPS block; only hosts serving HTTP get an HTTP block."""
    layout = plan_layout(TLS_SAMPLE, host_policies(TLS_SAMPLE, ACME_SETTINGS, TLS_STATE))
    http = {h for s in layout.servers if s.certificate is None for h in s.hosts}
    https = {
        h: s.certificate.path.name
        for s in layout.servers
        if s.certificate is not None
        for h in s.hosts
    }
    assert http == {"waiting.test", "plain.test"}
    assert layout.redirect_hosts == ("issued.test", "strict.test")
    assert https == {
        "issued.test": "issued.test.pem",
        "waiting.test": "_fallback.pem",
        "only.test": "_fallback.pem",
        "strict.test": "_fallback.pem",
    }


def test_a_new_certificate_changes_the_generation() -> None:
    """A renewed certificate (same path, new content) gives a new config, so nginx reloads."""
    renewed = dataclasses.replace(
        TLS_STATE,
        certificates=(
            (
                "issued.test",
                CertFiles(Path("/var/lib/dockyard/certs/issued.test.pem"), "2" * 16),
            ),
        ),
    )
    assert config_generation(render_tls()) != config_generation(render_tls(state=renewed))


def test_redirect_keeps_a_non_default_https_port() -> None:
    """With HTTPS on another port the redirect names it; GET gets 301, other methods 308."""
    text = render_tls()
    assert "return 301 https://$host$request_uri;" in text
    assert "return 308 https://$host$request_uri;" in text
    env = make_environment(None, builtin_templates())
    other = dataclasses.replace(ACME_SETTINGS, https_port=8443)
    text = render_config(TLS_SAMPLE, other, FACTS, env, TLS_STATE)
    assert "return 301 https://$host:8443$request_uri;" in text
    assert "listen 8443 ssl http2 default_server;" in text
