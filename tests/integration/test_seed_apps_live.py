"""The seed pages' hand-written nginx setups, expressed as labels and checked through the proxy.

Jellyfin on a subpath with security headers, JupyterHub behind HTTPS with a second site, and
JATOS with long-lived WebSockets and a LAN-only GUI: one daemon and four containers shared by
the module. The daemon trusts 127.0.0.1 as a front proxy, so a test can speak for a LAN client.
"""

from __future__ import annotations

import socket
import ssl
import urllib.parse
from dataclasses import dataclass

import pytest
from docker.models.containers import Container  # type: ignore[import-untyped, unused-ignore]
from websockets.sync.client import connect

from tests.integration.support import Proxy, RunProxy, StartBackend, https_request

# The Content-Security-Policy of the Jellyfin page, exactly.
JELLYFIN_CSP = (
    "default-src https: data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline' https://www.gstatic.com/cv/js/sender/v1/cast_sender.js; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; frame-ancestors 'self'"
)
# The Traefik variant of the page: STSSeconds, STSIncludeSubdomains, STSPreload.
JELLYFIN_HSTS = "max-age=315360000; includeSubDomains; preload"
LAN_CLIENT = {"X-Forwarded-For": "192.168.1.20"}
WAN_CLIENT = {"X-Forwarded-For": "203.0.113.7"}


@dataclass(frozen=True)
class Apps:
    """The module's daemon and the app containers behind it."""

    proxy: Proxy
    jellyfin: Container
    hub: Container
    nohub: Container
    jatos: Container


@pytest.fixture(scope="module")
def apps(run_module_proxy: RunProxy, start_module_backend: StartBackend) -> Apps:
    """The three seed apps (JupyterHub with its neighbour site) behind one daemon."""
    proxy = run_module_proxy(DOCKYARD_TRUSTED_PROXIES="127.0.0.1")
    jellyfin = start_module_backend(
        {
            "host": "media.test",
            "path": "/jellyfin",
            "path.strip": "true",
            "buffering": "false",
            "frame": "sameorigin",
            "xss_filter": "true",
            "nosniff": "true",
            "csp": JELLYFIN_CSP,
            "hsts": JELLYFIN_HSTS,
        }
    )
    hub = start_module_backend(
        {"host": "hub.test", "https": "redirect", "hsts": "max-age=15768000"}
    )
    nohub = start_module_backend({"host": "nohub.test", "https": "redirect"})
    jatos = start_module_backend(
        {
            "host": "jatos.test",
            "websocket": "true",
            "max_body_size": "500m",
            "route.gui.path": "/jatos",
            "route.gui.allow": "192.168.1.0/24",
        }
    )
    proxy.wait_status("jatos.test", "/", 200)
    problems = [e for e in proxy.logs() if e["event"] in ("label_invalid", "container_rejected")]
    assert not problems, problems
    return Apps(proxy, jellyfin, hub, nohub, jatos)


def assert_websocket_echoes(
    sock: socket.socket,
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """Open a WebSocket over ``sock`` (TLS with ``context``), see one message come back."""
    hostname = urllib.parse.urlsplit(url).hostname if context else None
    with connect(
        url,
        sock=sock,
        ssl=context,
        server_hostname=hostname,
        additional_headers=headers,
        open_timeout=5,
    ) as ws:
        ws.send("hello through dockyard")
        assert ws.recv(timeout=5) == "hello through dockyard"


def test_jellyfin_subpath_is_stripped(apps: Apps) -> None:
    """/jellyfin/web/ reaches Jellyfin as /web/; the bare /jellyfin redirects to /jellyfin/."""
    response = apps.proxy.wait_status("media.test", "/jellyfin/web/index.html?v=1", 200)
    seen = response.json()
    assert (seen["name"], seen["path"]) == (apps.jellyfin.name, "/web/index.html?v=1")
    assert seen["headers"]["x-forwarded-host"] == "media.test"
    assert seen["headers"]["x-real-ip"] == "127.0.0.1"
    bare = apps.proxy.get("media.test", "/jellyfin")
    assert (bare.status, bare.headers["Location"]) == (301, "/jellyfin/")
    assert apps.proxy.get("media.test", "/").status == 404


def test_jellyfin_security_headers_are_the_seed_pages(apps: Apps) -> None:
    """The page's security headers and CSP arrive exactly once; HTTPS adds its HSTS."""
    expected = {
        "X-Frame-Options": "SAMEORIGIN",
        "X-XSS-Protection": "1; mode=block",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": JELLYFIN_CSP,
        "Strict-Transport-Security": None,
    }
    plain = apps.proxy.get("media.test", "/jellyfin/").headers
    secure = https_request(apps.proxy.https_port, "media.test", "/jellyfin/").response.headers
    expected_secure = {**expected, "Strict-Transport-Security": JELLYFIN_HSTS}
    for headers, wanted in ((plain, expected), (secure, expected_secure)):
        assert {name: headers.get_all(name) for name in wanted} == {
            name: [value] if value else None for name, value in wanted.items()
        }


def test_jellyfin_streams_unbuffered_and_upgrades(apps: Apps) -> None:
    """buffering false turns proxy buffering off; the /socket WebSocket passes on the subpath."""
    location = apps.proxy.location_config("media.test", "/jellyfin/")
    assert "proxy_buffering off;" in location
    assert "proxy_request_buffering off;" in location
    sock = socket.create_connection(("127.0.0.1", apps.proxy.http_port), timeout=5)
    assert_websocket_echoes(sock, f"ws://media.test:{apps.proxy.http_port}/jellyfin/socket")


def test_jupyterhub_http_redirects_to_https(apps: Apps) -> None:
    """https redirect: HTTP answers 301 (GET) and 308 (POST) to the same URL on HTTPS."""
    port = apps.proxy.https_port
    moved = apps.proxy.get("hub.test", "/hub/login?next=%2F")
    assert moved.status == 301
    assert moved.headers["Location"] == f"https://hub.test:{port}/hub/login?next=%2F"
    posted = apps.proxy.get("hub.test", "/hub/api/users", method="POST", body=b"{}")
    assert (posted.status, posted.headers["Location"]) == (
        308,
        f"https://hub.test:{port}/hub/api/users",
    )


def test_jupyterhub_and_a_second_site_share_the_https_port(apps: Apps) -> None:
    """On one HTTPS port, hub.test reaches JupyterHub (with HSTS) and nohub.test the other site."""
    hub = https_request(apps.proxy.https_port, "hub.test", "/hub/").response
    assert hub.json()["name"] == apps.hub.name
    assert hub.json()["headers"]["x-forwarded-proto"] == "https"
    assert hub.headers["Strict-Transport-Security"] == "max-age=15768000"
    other = https_request(apps.proxy.https_port, "nohub.test", "/").response
    assert other.json()["name"] == apps.nohub.name
    assert "Strict-Transport-Security" not in other.headers


def test_jupyterhub_websockets_on_any_path_over_https(apps: Apps) -> None:
    """A WebSocket upgrade on an arbitrary JupyterHub path works over HTTPS (wss)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the self-signed fallback certificate
    port = apps.proxy.https_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    url = f"wss://hub.test:{port}/user/alice/api/kernels/k1/channels?session_id=s1"
    assert_websocket_echoes(sock, url, context=context)


def test_jatos_websockets_keep_seven_days(apps: Apps) -> None:
    """websocket true: 7-day read/send timeouts on every JATOS location, and an echo passes."""
    for location in ("/", "/jatos/"):
        text = apps.proxy.location_config("jatos.test", location)
        assert "proxy_read_timeout 7d;" in text
        assert "proxy_send_timeout 7d;" in text
        assert "proxy_buffering off;" in text
    sock = socket.create_connection(("127.0.0.1", apps.proxy.http_port), timeout=5)
    url = f"ws://jatos.test:{apps.proxy.http_port}/publix/abc-123/group/join"
    assert_websocket_echoes(sock, url)


def test_jatos_gui_is_lan_only(apps: Apps) -> None:
    """/jatos answers 403 outside 192.168.1.0/24 and serves a LAN client (via a trusted proxy)."""
    for path in ("/jatos", "/jatos/login"):
        assert apps.proxy.get("jatos.test", path).status == 403
        assert apps.proxy.get("jatos.test", path, headers=WAN_CLIENT).status == 403
        assert apps.proxy.get("jatos.test", path, headers=LAN_CLIENT).status == 200
    assert apps.proxy.get("jatos.test", "/publix/run", headers=WAN_CLIENT).status == 200
    sock = socket.create_connection(("127.0.0.1", apps.proxy.http_port), timeout=5)
    url = f"ws://jatos.test:{apps.proxy.http_port}/jatos/testWebSocket"
    assert_websocket_echoes(sock, url, headers=LAN_CLIENT)


def test_jatos_accepts_uploads_over_nginx_default_limit(apps: Apps) -> None:
    """max_body_size 500m: a 2 MB upload (over nginx's 1 MB default) reaches JATOS."""
    body = b"x" * 2_000_000
    response = apps.proxy.get("jatos.test", "/publix/upload", method="POST", body=body)
    assert (response.status, response.json()["body_length"]) == (200, len(body))
    assert "client_max_body_size 500m;" in apps.proxy.location_config("jatos.test", "/")
