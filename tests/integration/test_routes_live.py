"""The core pipeline for real: Docker events → routing → nginx, observed over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from websockets.sync.client import connect

from tests.integration.support import RunProxy, StartBackend, free_ports

# A health check that passes as soon as the backend answers, polled often so tests are quick.
HEALTHY = {
    "test": [
        "CMD",
        "/usr/bin/python3",
        "-c",
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/', timeout=1)",
    ],
    "interval": 200_000_000,
    "timeout": 2_000_000_000,
    "retries": 1,
}
UNHEALTHY = {**HEALTHY, "test": ["CMD", "/usr/bin/python3", "-c", "raise SystemExit(1)"]}


def test_route_appears_on_start_and_goes_on_stop(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """A labelled container is served by host name after start, and 404 after stop."""
    proxy = run_proxy()
    backend = start_backend({"host": "app.test"})
    response = proxy.wait_status("app.test", "/hello?x=1", 200, timeout=5)
    assert response.json()["name"] == backend.name
    assert response.json()["path"] == "/hello?x=1"
    proxy.wait_log("routes_applied", total=1)

    backend.stop(timeout=1)
    proxy.wait_status("app.test", "/", 404, timeout=5)


def test_replicas_share_the_traffic(run_proxy: RunProxy, start_backend: StartBackend) -> None:
    """Two containers with the same host both receive requests."""
    proxy = run_proxy()
    first = start_backend({"host": "replicas.test"})
    second = start_backend({"host": "replicas.test"})
    deadline = time.monotonic() + 10
    seen: set[str] = set()
    while seen != {first.name, second.name} and time.monotonic() < deadline:
        response = proxy.get("replicas.test")
        if response.status == 200:
            seen.add(response.json()["name"])
    assert seen == {first.name, second.name}


def test_path_prefix_with_strip(run_proxy: RunProxy, start_backend: StartBackend) -> None:
    """``path.strip`` serves ``/jellyfin/web/`` as ``/web/`` and redirects the bare prefix."""
    proxy = run_proxy()
    root = start_backend({"host": "media.test"})
    jellyfin = start_backend({"host": "media.test", "path": "/jellyfin", "path.strip": "true"})
    keep = start_backend({"host": "media.test", "path": "/api"})
    # `/` answers every path, so a 200 alone would not show that the other routes are live.
    proxy.wait_log("routes_applied", total=3)

    response = proxy.wait_status("media.test", "/jellyfin/web/index.html?v=2", 200)
    assert response.json()["name"] == jellyfin.name
    assert response.json()["path"] == "/web/index.html?v=2"

    redirect = proxy.get("media.test", "/jellyfin?x=1")
    assert redirect.status == 301
    assert redirect.headers["Location"] == "/jellyfin/?x=1"

    api = proxy.wait_status("media.test", "/api/v1", 200)
    assert api.json() == {**api.json(), "name": keep.name, "path": "/api/v1"}
    assert proxy.get("media.test", "/other").json()["name"] == root.name
    assert proxy.get("media.test", "/jellyfinx").json()["name"] == root.name


def test_websocket_echo_through_the_proxy(run_proxy: RunProxy, start_backend: StartBackend) -> None:
    """A WebSocket upgrade passes through nginx and messages echo both ways."""
    proxy = run_proxy()
    start_backend({"host": "ws.test", "websocket": "true"})
    proxy.wait_status("ws.test", "/", 200)
    sock = socket.create_connection(("127.0.0.1", proxy.http_port), timeout=5)
    with connect(f"ws://ws.test:{proxy.http_port}/socket", sock=sock, open_timeout=5) as ws:
        for message in ("hello", "x" * 70_000):
            ws.send(message)
            assert ws.recv(timeout=5) == message


def test_websocket_upgrade_passes_on_plain_routes(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """Upgrades work without the websocket label (it only changes timeouts and buffering)."""
    proxy = run_proxy()
    start_backend({"host": "plain.test"})
    proxy.wait_status("plain.test", "/", 200)
    sock = socket.create_connection(("127.0.0.1", proxy.http_port), timeout=5)
    with connect(f"ws://plain.test:{proxy.http_port}/", sock=sock, open_timeout=5) as ws:
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"


def test_forwarded_headers_are_set_and_spoofing_is_ignored(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """The backend sees the proxy's X-Forwarded-*, never a client's forged values."""
    proxy = run_proxy()
    start_backend({"host": "hdr.test"})
    proxy.wait_status("hdr.test", "/", 200)
    forged = {
        "X-Forwarded-For": "6.6.6.6",
        "X-Real-IP": "6.6.6.6",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.test",
        "Proxy": "http://evil.test",
    }
    headers = proxy.get("hdr.test", "/", headers=forged).json()["headers"]
    assert headers["host"] == "hdr.test"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "hdr.test"
    assert headers["x-forwarded-port"] == str(proxy.http_port)
    assert "proxy" not in headers


def test_trusted_proxy_forwarded_for_is_kept(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """From a configured trusted proxy, the client chain and real IP are believed."""
    proxy = run_proxy(DOCKYARD_TRUSTED_PROXIES="127.0.0.1")
    start_backend({"host": "trust.test"})
    proxy.wait_status("trust.test", "/", 200)
    sent = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    headers = proxy.get("trust.test", "/", headers=sent).json()["headers"]
    assert headers["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
    assert headers["x-real-ip"] == "203.0.113.9"
    assert headers["x-forwarded-proto"] == "https"


def test_unknown_hosts_and_bare_ips_get_404(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """Requests for hosts nobody serves, or for the bare IP, answer 404, not another site."""
    proxy = run_proxy()
    start_backend({"host": "known.test"})
    proxy.wait_status("known.test", "/", 200)
    assert proxy.get("unknown.test").status == 404
    assert proxy.get("127.0.0.1").status == 404
    server = proxy.get("unknown.test").headers.get("Server", "")
    assert server == "nginx", "server_tokens off hides the version"


def test_unhealthy_containers_get_no_traffic(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """An unhealthy replica gets no requests; a host whose replicas are all unhealthy is 503."""
    proxy = run_proxy()
    healthy = start_backend({"host": "mixed.test"}, healthcheck=HEALTHY)
    start_backend({"host": "mixed.test"}, healthcheck=UNHEALTHY)
    start_backend({"host": "sick.test"}, healthcheck=UNHEALTHY)
    proxy.wait_status("mixed.test", "/", 200)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proxy.get("sick.test").status != 503:
        time.sleep(0.05)
    assert proxy.get("sick.test").status == 503
    time.sleep(1.0)  # the unhealthy one has been judged by now (retries=1, 0.2 s interval)
    names = {proxy.get("mixed.test").json()["name"] for _ in range(20)}
    assert names == {healthy.name}


def test_starting_container_waits_for_health(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """A container is routed only once Docker reports it healthy."""
    proxy = run_proxy()
    slow = {**HEALTHY, "start_period": 0, "interval": 1_500_000_000}
    backend = start_backend({"host": "slow.test"}, healthcheck=slow, wait_ready=False)
    assert proxy.wait_status("slow.test", "/", 503, timeout=5).status == 503
    response = proxy.wait_status("slow.test", "/", 200, timeout=10)
    assert response.json()["name"] == backend.name


def test_invalid_labels_are_isolated_and_logged(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """Containers with bad labels are skipped with one log line; a good neighbour is served."""
    proxy = run_proxy()
    evil_values = {
        "host": "evil.test;} server { listen 1",
        "port": "80; return 200",
        "path": "/a{b}",
        "websocket": "true\n",
        "network": "net$x",
        "path.strip": "#yes",
    }
    bad = [start_backend({"host": "bad.test", key: value}) for key, value in evil_values.items()]
    good = start_backend({"host": "good.test"})
    assert proxy.wait_status("good.test", "/", 200).json()["name"] == good.name
    for container, (key, value) in zip(bad, evil_values.items(), strict=True):
        line = proxy.wait_log("label_invalid", container=container.name)
        assert line["label"] == f"{proxy.env['DOCKYARD_LABEL_PREFIX']}.{key}"
        assert line["value"] == value
        assert line["reason"]
    assert proxy.get("bad.test").status == 404
    config = (proxy.state_dir / "nginx" / "nginx.conf").read_text()
    assert "evil" not in config
    assert "80; return" not in config
    time.sleep(0.5)
    start_backend({"host": "another.test"})  # more passes must not repeat the complaints
    proxy.wait_status("another.test", "/", 200)
    repeated = [e for e in proxy.logs() if e["event"] == "label_invalid"]
    assert len(repeated) == len(evil_values)


def test_nginx_rejection_drops_only_the_culprit(
    run_proxy: RunProxy, start_backend: StartBackend, tmp_path: Path
) -> None:
    """When nginx refuses a config, the container behind it is dropped and the rest served."""
    templates = tmp_path / "templates"
    templates.mkdir()
    builtin = Path(__file__).resolve().parents[2] / "templates" / "location_body.j2"
    # A template bug that only some containers trigger: an unknown directive for one host.
    (templates / "location_body.j2").write_text(
        builtin.read_text()
        + "{% if location.path == '/broken' %}\n            no_such_directive on;\n{% endif %}\n"
    )
    proxy = run_proxy(DOCKYARD_TEMPLATES=str(templates))
    good = start_backend({"host": "fine.test"})
    broken = start_backend({"host": "fine.test", "path": "/broken"})
    assert proxy.wait_status("fine.test", "/", 200).json()["name"] == good.name
    line = proxy.wait_log("container_rejected", container=broken.name)
    assert "no_such_directive" in line["error"]
    assert proxy.get("fine.test", "/broken").json()["name"] == good.name


def _malloc_tunables(pid: int) -> list[str]:
    """The GLIBC_TUNABLES a process was started with."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    values = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"GLIBC_TUNABLES=")]
    return values[0].split(":") if values else []


def test_nginx_killed_is_restarted(run_proxy: RunProxy, start_backend: StartBackend) -> None:
    """If nginx dies, the daemon restarts it and the routes come back.

    Both masters, the first and the restarted one, run with the mmap threshold that keeps
    nginx's memory flat across reloads.
    """
    proxy = run_proxy()
    start_backend({"host": "phoenix.test"})
    proxy.wait_status("phoenix.test", "/", 200)
    master = proxy.nginx_pid()
    assert master is not None
    assert "glibc.malloc.mmap_threshold=4096" in _malloc_tunables(master)
    seen = len(proxy.logs())
    os.kill(master, signal.SIGKILL)
    proxy.wait_log("nginx_exited", after=seen)
    # The killed master's workers may still answer until the daemon reaps them: wait for
    # the new master itself, not just a 200.
    proxy.wait_log("nginx_started", after=seen, timeout=10)
    proxy.wait_status("phoenix.test", "/", 200, timeout=10)
    restarted = proxy.nginx_pid()
    assert restarted not in (None, master)
    assert restarted is not None
    assert "glibc.malloc.mmap_threshold=4096" in _malloc_tunables(restarted)


def test_sigterm_exits_cleanly_without_leaving_nginx(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """SIGTERM: nginx quits, the daemon exits 0 within 10 s, no nginx process is left."""
    proxy = run_proxy()
    start_backend({"host": "bye.test"})
    proxy.wait_status("bye.test", "/", 200)
    master = proxy.nginx_pid()
    assert master is not None
    workers = _children(master)
    assert workers
    began = time.monotonic()
    assert proxy.stop(timeout=10) == 0
    assert time.monotonic() - began < 10
    for pid in [master, *workers]:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"nginx {pid} left"


def test_render_prints_the_config_for_running_containers(
    start_backend: StartBackend, label_prefix: str, tmp_path: Path
) -> None:
    """``dockyard render`` prints the config nginx would get, then exits 0."""
    backend = start_backend({"host": "render.test"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env |= {"DOCKYARD_LABEL_PREFIX": label_prefix, "DOCKYARD_STATE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "render"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "server_name render.test;" in result.stdout
    assert f"# {backend.name}" in result.stdout


def test_host_network_container_is_reached_through_the_gateway(
    run_proxy: RunProxy, start_backend: StartBackend
) -> None:
    """A ``network_mode: host`` container is proxied via the bridge gateway address."""
    proxy = run_proxy()
    (port,) = free_ports(1)
    backend = start_backend(
        {"host": "hostnet.test", "port": str(port)}, network_mode="host", port=port
    )
    response = proxy.wait_status("hostnet.test", "/", 200)
    assert response.json()["name"] == backend.name
    config = (proxy.state_dir / "nginx" / "nginx.conf").read_text()
    assert f"127.0.0.1:{port}" not in config


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[-1].split()[1] == str(pid):
                found.append(int(entry.name))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def test_serves_without_an_engine_and_logs_why(run_proxy: RunProxy, tmp_path: Path) -> None:
    """With no Docker engine at startup, nginx still serves (404s) and the reason is logged."""
    proxy = run_proxy(DOCKER_HOST=f"unix://{tmp_path}/no-such.sock")
    assert proxy.get("anything.test").status == 404
    line = proxy.wait_log("docker_unavailable")
    assert line["retry_in"] > 0
    proxy.wait_log("serving_empty_config")
