#!/usr/bin/env python3
"""Benchmark: the data plane: one fast backend, direct and through dockyard, Caddy and HAProxy.

The backend is an nginx (the host's ``/usr/sbin/nginx``) in a container of the test image
(the host's /usr bind-mounted, as bench/common.create_backend does), ``worker_processes 1``,
answering every request with a 64-byte ``return 200`` (no disk, no upstream): whatever sits
in front of it is what is measured. It is reached four ways:

* ``direct``: the container's bridge address, port 8080;
* ``dockyard``: the real daemon (``python -m daemon run``, bench/common.running_daemon) with
  ``DOCKYARD_WORKER_PROCESSES=1`` and ``DOCKYARD_ACCESS_LOG=off``, routing the container by
  its labels (``<prefix>.host``), so the config is the one dockyard renders;
* ``caddy``: Debian's Caddy 2 (``caddy run --adapter caddyfile``), ``reverse_proxy`` to the
  container's address, admin endpoint off, ``GOMAXPROCS=1``;
* ``haproxy``: Debian's HAProxy 2.6, ``mode http``, ``nbthread 1``, ``http-reuse safe``.

None of the three proxies logs requests (dockyard's default access log is switched off for
this, as Caddy and HAProxy log none by default). All three keep idle connections to the
backend.

CPU placement (2-core machine; ``--no-pin`` turns it off), ``--placement``:

* ``shared`` (default): the backend container (``cpuset``) and the proxy with its workers
  (``taskset``) share CPU 0; the load generators (wrk, h2load, the TLS client) run on CPU 1.
  Each proxy and the backend compete for one core, as a proxy in front of a busy backend on
  the same host would, and the client never steals from them.
* ``proxy-alone``: the proxy has CPU 0 to itself; the backend shares CPU 1 with the client.
  ``direct`` is then the client and the backend on one core, and a proxy reaches 1.0x
  direct when it is never the bottleneck.

Before every wrk case the script waits (up to 70 s) until fewer than 2,000 of this host's
TCP sockets towards the backend are in TIME_WAIT, so one case's closed backend connections
do not slow the next one's ``connect()`` (they share the ports towards the backend with
``direct``, whose new-connection case fell to a few hundred requests/s after such a case); it
records the count it started at, the TCP connections opened during the case (``ActiveOpens``
in /proc/net/snmp: the client's plus the proxy's to the backend) and the CPU time the proxy
and the backend spent per request.

HTTP/1.1 cases, with ``wrk -t1 -c C -d D --latency`` and ``Host: dp.bench.test``:
``keep-alive`` and ``new connection`` (``Connection: close`` on every request, so every
request is a new TCP connection to the proxy; the proxies still reuse their backend
connections). Targets are interleaved within each repeat; medians of the repeats.
Requests/s, p50 and p99 (wrk's latency distribution) are reported, and their ratio to
``direct``.

TLS cases, dockyard and Caddy, with the same self-signed certificates (made by
bench/handshakes.generate_certificate, i.e. dockyard's own key code) for
``ec256.bench.test`` (ECDSA P-256) and ``rsa4096.bench.test`` (RSA-4096): dockyard gets them
through ``DOCKYARD_CERTS_DIR``, Caddy through ``tls <cert> <key>``.

* handshakes/s: ``--tls-clients`` Python client processes (``ssl``, TLS 1.3, SNI, no
  verification, no ALPN), each in a loop: new TCP connection, handshake, one
  ``GET / HTTP/1.1`` with ``Connection: close``, read to the end. ``full``: never a session
  offered; ``resumed``: the previous connection's session offered (dockyard: nginx's shared
  session cache, tickets off; Caddy: Go's session tickets), and only resumed ones counted.
  The server's CPU time (nginx workers, or the caddy process) per handshake is reported too:
  the client is Python and on one core, so for cheap handshakes it is the limit, and "server
  CPU per handshake" is the figure that carries over.
* HTTP/2: ``h2load -t1 -c 64 -m 10 -n 64000 -N10s`` to ``https://ec256.bench.test/`` (requests/s,
  ECDSA certificate): 1000 requests per connection, because nginx ends an HTTP/2 connection
  after ``keepalive_requests`` (1000, nginx's default, kept by dockyard) and h2load does not
  reconnect.

Run from the repository root, as root, with Docker, nginx, wrk, caddy, haproxy and h2load:

    .venv/bin/python bench/data_plane.py --plots docs/img        # ~10 min (3 x 10 s runs)
    .venv/bin/python bench/data_plane.py --seconds 6 --repeats 2 --plots docs/img  # ~5 min
    .venv/bin/python bench/data_plane.py --smoke                 # ~25 s (CI)

Prints markdown tables, writes bench/results/data_plane.json (or ``--out``) and, with
``--plots DIR``, PNG charts (skipped with a message when matplotlib is not installed).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plots
from common import (
    BENCH_LABEL,
    RESULTS_DIR,
    children_of,
    command_line,
    container_ip,
    docker_client,
    ensure_image,
    exit_on_sigterm,
    free_ports,
    machine,
    new_run_id,
    remove_labelled,
    running_daemon,
    table,
    wait_until,
    write_json,
)
from handshakes import generate_certificate

NGINX = "/usr/sbin/nginx"
BACKEND_PORT = 8080
HOST = "dp.bench.test"
KEY_TYPES = {"ec256": "ECDSA P-256", "rsa4096": "RSA-4096"}
BODY = "dockyard data-plane benchmark: a 64-byte static body from nginx\n"
assert len(BODY) == 64
TARGETS = ("direct", "dockyard", "caddy", "haproxy")
MODES: dict[str, list[str]] = {"keep-alive": [], "new connection": ["-H", "Connection: close"]}
TIME_WAIT_CALM = 2000
TIME_WAIT_WAIT_SECONDS = 70.0


@dataclass(frozen=True)
class Placement:
    """Which CPUs the backend, the proxy and the load generators run on (empty: anywhere)."""

    name: str
    backend: frozenset[int] = frozenset()
    proxy: frozenset[int] = frozenset()
    client: frozenset[int] = frozenset()

    @staticmethod
    def cpus(cpus: frozenset[int]) -> str:
        """``cpus`` as taskset and cpuset want them."""
        return ",".join(map(str, sorted(cpus)))

    def describe(self) -> str:
        """One line for the plots' notes."""
        if not self.client:
            return "no pinning"
        return (
            f"backend on CPU {self.cpus(self.backend)}, proxy on CPU {self.cpus(self.proxy)}, "
            f"client on CPU {self.cpus(self.client)}"
        )


PLACEMENTS = {
    "shared": Placement("shared", frozenset({0}), frozenset({0}), frozenset({1})),
    "proxy-alone": Placement("proxy-alone", frozenset({1}), frozenset({0}), frozenset({1})),
}
NO_PINNING = Placement("none")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TARGET_RATIO = 0.9
H2_REQUESTS_PER_CONNECTION = 1000
TARGET_P99_OVERHEAD_MS = 1.0


# ---------------------------------------------------------------------------------------------
# The backend and the three proxies


def backend_config() -> str:
    """nginx.conf of the backend: one worker, one 64-byte answer, nothing on disk."""
    return f"""daemon off;
user nobody nobody;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {{
        listen {BACKEND_PORT} default_server;
        location / {{
            default_type text/plain;
            return 200 "{BODY.rstrip()}\\n";
        }}
    }}
}}
"""


def start_backend(client: Any, image: str, run_id: str, workdir: Path, place: Placement) -> str:
    """Create and start the backend container, routed by dockyard's labels; return its id."""
    conf = workdir / "backend.conf"
    conf.write_text(backend_config())
    api = client.api
    host_config = api.create_host_config(
        binds={
            "/usr": {"bind": "/usr", "mode": "ro"},
            str(conf): {"bind": "/srv/nginx.conf", "mode": "ro"},
        },
        cpuset_cpus=Placement.cpus(place.backend) or None,
    )
    hosts = ",".join([HOST, *(f"{k}.bench.test" for k in KEY_TYPES)])
    created = api.create_container(
        image,
        [NGINX, "-c", "/srv/nginx.conf", "-p", "/tmp/", "-e", "stderr"],
        name=f"{run_id}-backend",
        labels={f"{run_id}.host": hosts, BENCH_LABEL: run_id},
        ports=[BACKEND_PORT],
        host_config=host_config,
    )
    container_id = str(created["Id"])
    api.start(container_id)
    return container_id


def get(port: int, host: str = HOST, address: str = "127.0.0.1") -> int | None:
    """Status of one GET / with this Host header on a new connection, None on errors."""
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    try:
        with socket.create_connection((address, port), timeout=1.0) as sock:
            sock.sendall(request)
            head = sock.recv(64)
    except OSError:
        return None
    found = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(found.group(1)) if found else None


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, by PID."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def running(
    argv: Sequence[str], log: Path, ready: Callable[[], bool], env: dict[str, str] | None = None
) -> Iterator[int]:
    """Run ``argv`` (own session, output to ``log``) until ``ready``; yield its PID; stop it."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        wait_until(lambda: process.poll() is not None or ready(), timeout=30, interval=0.05)
        if process.poll() is not None or not ready():
            tail = log.read_text(errors="replace")[-2000:]
            msg = f"{argv[0]} not ready (exit {process.poll()}):\n{tail}"
            raise RuntimeError(msg)
        yield process.pid
    finally:
        _stop(process)


def caddyfile(backend: str, http_port: int, https_port: int, certs: dict[str, Path]) -> str:
    """A Caddyfile: HTTP on ``http_port``, the two TLS hosts on ``https_port``."""
    blocks = [
        "{\n\tadmin off\n\tauto_https off\n}\n",
        f"http://:{http_port} {{\n\tbind 127.0.0.1\n\treverse_proxy {backend}\n}}\n",
    ]
    for key_type in KEY_TYPES:
        cert, key = certs[f"{key_type}.crt"], certs[f"{key_type}.key"]
        blocks.append(
            f"https://{key_type}.bench.test:{https_port} {{\n\tbind 127.0.0.1\n"
            f"\ttls {cert} {key}\n\treverse_proxy {backend}\n}}\n"
        )
    return "\n".join(blocks)


def haproxy_config(backend: str, port: int) -> str:
    """A minimal HAProxy config: one thread, HTTP mode, idle backend connections reused."""
    return f"""global
    nbthread 1
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
    http-reuse safe

frontend bench
    bind 127.0.0.1:{port}
    default_backend backend

backend backend
    server backend {backend}
"""


def pin_to(pids: Sequence[int], cpus: frozenset[int]) -> None:
    """Set the CPU affinity of these processes (all their threads)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            subprocess.run(
                ["taskset", "-a", "-p", "-c", ",".join(map(str, sorted(cpus))), str(pid)],
                capture_output=True,
                check=True,
            )


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of these processes (all threads), in seconds."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


# ---------------------------------------------------------------------------------------------
# Load generators

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_WRK_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/s, requests, errors and latency percentiles (ms) from wrk's output."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if rate is None or total is None:
        msg = f"unexpected wrk output:\n{text[-2000:]}"
        raise RuntimeError(msg)
    result = {"requests_per_second": float(rate.group(1)), "requests": float(total.group(1))}
    for percentile, value, unit in _WRK_PERCENTILE.findall(text):
        result[f"p{percentile}_ms"] = float(value) * _UNITS[unit]
    errors = 0
    if socket_errors := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        errors += sum(int(n) for n in socket_errors.groups())
    if non_2xx := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors += int(non_2xx.group(1))
    result["errors"] = float(errors)
    return result


def client_prefix(place: Placement) -> list[str]:
    """``taskset`` to the client CPU, when pinning."""
    return ["taskset", "-c", Placement.cpus(place.client)] if place.client else []


def run_wrk(
    url: str, connections: int, seconds: int, extra: Sequence[str], place: Placement
) -> Any:
    """One wrk run; its parsed figures."""
    argv = [*client_prefix(place), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["-H", f"Host: {HOST}", *extra, url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        msg = f"wrk exit {done.returncode}: {done.stderr[-2000:]}"
        raise RuntimeError(msg)
    return parse_wrk(done.stdout)


def parse_h2load(text: str) -> dict[str, float]:
    """Requests/s, succeeded and failed requests from h2load's output."""
    rate = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", text)
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        text,
    )
    if rate is None or counts is None:
        msg = f"unexpected h2load output:\n{text[-2000:]}"
        raise RuntimeError(msg)
    protocol = re.search(r"Application protocol: (\S+)", text)
    return {
        "requests_per_second": float(rate.group(1)),
        "succeeded": float(counts.group(4)),
        # "failed" already counts the errored and timed-out requests.
        "errors": float(counts.group(5)),
        "h2": float(bool(protocol and protocol.group(1) == "h2")),
    }


def run_h2load(port: int, connections: int, streams: int, place: Placement) -> Any:
    """One h2load run (HTTP/2 over TLS, ECDSA host) against 127.0.0.1:``port``.

    ``H2_REQUESTS_PER_CONNECTION`` requests on each connection: nginx closes an HTTP/2
    connection after ``keepalive_requests`` (1000, its default, which dockyard keeps) and
    h2load does not reconnect, so a longer run would measure idle clients.
    """
    # -N: a connection idle for 10 s is closed and its requests count as failed, so a
    # stalled server shows up as errors instead of holding the run until the timeout.
    argv = [*client_prefix(place), "h2load", "-t1", f"-c{connections}", f"-m{streams}", "-N10s"]
    argv += [f"-n{connections * H2_REQUESTS_PER_CONNECTION}", f"--connect-to=127.0.0.1:{port}"]
    argv.append(f"https://ec256.bench.test:{port}/")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        msg = f"h2load exit {done.returncode}: {done.stdout[-1000:]} {done.stderr[-1000:]}"
        raise RuntimeError(msg)
    return parse_h2load(done.stdout)


def _tls_client(job: tuple[int, str, float, bool, list[int]]) -> tuple[int, int, int]:
    """One client process: HTTPS connections in a loop; (completed, resumed, errors)."""
    port, host, seconds, resume, cpus = job
    if cpus:
        os.sched_setaffinity(0, cpus)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    session: ssl.SSLSession | None = None
    completed = resumed = errors = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                # As browsers, wrk and h2load do: without it, the request written right after
                # the client's Finished waits for the server's delayed ACK (40 ms) when the
                # server has nothing to send then (Go sends its tickets before Finished).
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with context.wrap_socket(raw, server_hostname=host, session=session) as tls:
                    tls.sendall(request)
                    data = b""
                    while chunk := tls.recv(65536):
                        data += chunk
                    reused, new_session = tls.session_reused, tls.session
                if not data.startswith(b"HTTP/1.1 200"):
                    errors += 1
                    continue
                if reused:
                    resumed += 1
                if resume:
                    session = new_session
                completed += 1
        except (OSError, ssl.SSLError):
            errors += 1
    return completed, resumed, errors


def run_tls(
    pool: Any,
    port: int,
    *,
    key_type: str,
    resume: bool,
    seconds: int,
    clients: int,
    server: Sequence[int],
    place: Placement,
) -> dict[str, float]:
    """``clients`` client processes of ``pool`` for ``seconds``: handshakes/s, server CPU."""
    cpus = sorted(place.client)
    jobs = [(port, f"{key_type}.bench.test", float(seconds), resume, cpus)] * clients
    cpu_before = cpu_seconds(server)
    began = time.perf_counter()
    results = pool.map(_tls_client, jobs, chunksize=1)
    elapsed = time.perf_counter() - began
    server_cpu = cpu_seconds(server) - cpu_before
    completed = sum(r[0] for r in results)
    resumed = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    counted = resumed if resume else completed - resumed
    return {
        "handshakes": counted,
        "connections": completed,
        "not_resumed" if resume else "resumed": (completed - resumed) if resume else resumed,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "per_second": round(counted / elapsed, 1),
        "server_cpu_ms_per_handshake": round(1000 * server_cpu / max(completed, 1), 4),
    }


# ---------------------------------------------------------------------------------------------
# Measuring


def median(values: Sequence[float], digits: int = 3) -> float:
    """The median, rounded."""
    return round(statistics.median(values), digits)


def time_wait_sockets(address: str) -> int:
    """This host's TCP sockets in TIME_WAIT towards ``address``.

    Only these matter: they hold local ports towards the backend, which ``connect()`` must
    skip (loopback ones, towards the proxies, are reused: ``tcp_tw_reuse`` = 2).
    """
    done = subprocess.run(
        ["ss", "-Htan", "state", "time-wait", "dst", address],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.count("\n")


def tcp_active_opens() -> int:
    """TCP connections this host has opened so far (``Tcp: ActiveOpens``)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    tcp = [fields for fields in lines if fields and fields[0] == "Tcp:"]
    return int(tcp[1][tcp[0].index("ActiveOpens")])


def calm_time_wait(address: str) -> int:
    """Wait until few sockets towards ``address`` are in TIME_WAIT; the count then."""
    wait_until(lambda: time_wait_sockets(address) < TIME_WAIT_CALM, TIME_WAIT_WAIT_SECONDS, 1.0)
    return time_wait_sockets(address)


def wrk_case(
    url: str,
    *,
    count: int,
    seconds: int,
    extra: Sequence[str],
    place: Placement,
    proxy: Callable[[], list[int]],
    backend: Callable[[], list[int]],
    backend_address: str,
) -> dict[str, float]:
    """One wrk run, with what it cost: CPU per request, TCP connections opened."""
    time_wait = calm_time_wait(backend_address)
    proxy_pids, backend_pids = proxy(), backend()
    cpu_proxy, cpu_backend = cpu_seconds(proxy_pids), cpu_seconds(backend_pids)
    opens = tcp_active_opens()
    result: dict[str, float] = run_wrk(url, count, seconds, extra, place)
    requests = max(result["requests"], 1.0)
    proxy_cpu, backend_cpu = (
        cpu_seconds(proxy_pids) - cpu_proxy,
        cpu_seconds(backend_pids) - cpu_backend,
    )
    result |= {
        "time_wait_at_start": float(time_wait),
        "tcp_opens_per_1k_requests": round(1000 * (tcp_active_opens() - opens) / requests, 2),
        "proxy_cpu_us_per_request": round(1e6 * proxy_cpu / requests, 2),
        "backend_cpu_us_per_request": round(1e6 * backend_cpu / requests, 2),
    }
    return result


def http_cases(
    urls: dict[str, str],
    pids: dict[str, Callable[[], list[int]]],
    backend: Callable[[], list[int]],
    *,
    backend_address: str,
    connections: Sequence[int],
    seconds: int,
    repeats: int,
    place: Placement,
) -> list[dict[str, Any]]:
    """wrk against every target, mode and connection count; medians over the repeats.

    ``pids`` gives each target's proxy processes (none for ``direct``), ``backend`` the
    backend's, so their CPU time per request is measured alongside.
    """
    runs: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    for repeat in range(repeats):
        for count in connections:
            for mode, extra in MODES.items():
                for target, url in urls.items():
                    print(
                        f"repeat {repeat + 1}/{repeats}: {target} {mode} -c{count} {seconds} s",
                        file=sys.stderr,
                        flush=True,
                    )
                    result = wrk_case(
                        url,
                        count=count,
                        seconds=seconds,
                        extra=extra,
                        place=place,
                        proxy=pids[target],
                        backend=backend,
                        backend_address=backend_address,
                    )
                    runs.setdefault((target, mode, count), []).append(result)
    results: list[dict[str, Any]] = []
    for (target, mode, count), case_runs in runs.items():
        results.append(
            {
                "target": target,
                "mode": mode,
                "connections": count,
                "requests_per_second": median([r["requests_per_second"] for r in case_runs], 1),
                "p50_ms": median([r.get("p50_ms", float("nan")) for r in case_runs]),
                "p99_ms": median([r.get("p99_ms", float("nan")) for r in case_runs]),
                "errors": sum(r["errors"] for r in case_runs),
                "requests": sum(r["requests"] for r in case_runs),
                **{
                    key: median([r[key] for r in case_runs], 2)
                    for key in (
                        "proxy_cpu_us_per_request",
                        "backend_cpu_us_per_request",
                        "tcp_opens_per_1k_requests",
                    )
                },
                "runs": case_runs,
            }
        )
    direct = {(r["mode"], r["connections"]): r for r in results if r["target"] == "direct"}
    for r in results:
        base = direct[r["mode"], r["connections"]]
        r["vs_direct"] = {
            "requests_per_second": round(r["requests_per_second"] / base["requests_per_second"], 3),
            "p50": round(r["p50_ms"] / base["p50_ms"], 2) if base["p50_ms"] else None,
            "p99": round(r["p99_ms"] / base["p99_ms"], 2) if base["p99_ms"] else None,
            "p99_overhead_ms": round(r["p99_ms"] - base["p99_ms"], 3),
        }
    return results


def tls_cases(
    servers: dict[str, tuple[int, Callable[[], list[int]]]],
    *,
    seconds: int,
    repeats: int,
    clients: int,
    h2: tuple[int, int],
    place: Placement,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Handshakes (full, resumed; both key types) and h2load for each TLS server."""
    hs_runs: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    h2_runs: dict[str, list[dict[str, float]]] = {}
    h2_connections, h2_streams = h2
    # Spawned, not forked: a fork of this multi-threaded process (docker client, daemon log
    # readers) can leave a child waiting forever on a lock held by another thread.
    pool = multiprocessing.get_context("spawn").Pool(clients)
    pool.map(abs, range(clients), chunksize=1)  # started and idle before the first case
    for repeat in range(repeats):
        for name, (port, pids) in servers.items():
            for key_type in KEY_TYPES:
                for kind in ("full", "resumed"):
                    print(
                        f"repeat {repeat + 1}/{repeats}: {name} {key_type} {kind} handshakes",
                        file=sys.stderr,
                        flush=True,
                    )
                    result = run_tls(
                        pool,
                        port,
                        key_type=key_type,
                        resume=kind == "resumed",
                        seconds=seconds,
                        clients=clients,
                        server=pids(),
                        place=place,
                    )
                    hs_runs.setdefault((name, key_type, kind), []).append(result)
            print(f"repeat {repeat + 1}/{repeats}: {name} h2load", file=sys.stderr, flush=True)
            h2_runs.setdefault(name, []).append(run_h2load(port, h2_connections, h2_streams, place))
    pool.close()
    pool.join()
    handshakes = []
    for (name, key_type, kind), runs in hs_runs.items():
        cpu = median([r["server_cpu_ms_per_handshake"] for r in runs], 4)
        handshakes.append(
            {
                "server": name,
                "key_type": key_type,
                "kind": kind,
                "handshakes_per_second": median([r["per_second"] for r in runs], 1),
                "server_cpu_ms_per_handshake": cpu,
                "handshakes_per_server_cpu_second": round(1000 / cpu, 1) if cpu else None,
                "errors": sum(r["errors"] for r in runs),
                "runs": runs,
            }
        )
    http2 = [
        {
            "server": name,
            "connections": h2_connections,
            "streams": h2_streams,
            "requests_per_second": median([r["requests_per_second"] for r in runs], 1),
            "succeeded": sum(r["succeeded"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "h2": all(r["h2"] for r in runs),
            "runs": runs,
        }
        for name, runs in h2_runs.items()
    ]
    return handshakes, http2


def _serves_certificate(port: int, host: str, cert: Path) -> bool:
    """Whether ``port`` answers 200 for ``host`` over TLS with exactly this certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    want = ssl.PEM_cert_to_DER_cert(cert.read_text())
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            return tls.getpeercert(binary_form=True) == want and tls.recv(12) == b"HTTP/1.1 200"
    except (OSError, ssl.SSLError):
        return False


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start the backend and the proxies, run every case, stop everything."""
    place: Placement = args.place
    client = docker_client()
    image = ensure_image(client)
    run_id = new_run_id()
    certs_dir = workdir / "certs"
    certs_dir.mkdir()
    certs: dict[str, Path] = {}
    for key_type in KEY_TYPES:
        cert, key = generate_certificate(key_type, certs_dir)
        certs[cert.name], certs[key.name] = cert, key
    configs: dict[str, str] = {}
    try:
        backend_id = start_backend(client, image, run_id, workdir, place)
        ip = container_ip(client, backend_id)
        if ip is None or not wait_until(lambda: get(BACKEND_PORT, address=ip) == 200, 30):
            logs = client.api.logs(backend_id).decode(errors="replace")[-2000:]
            msg = f"backend not answering at {ip}:{BACKEND_PORT}:\n{logs}"
            raise RuntimeError(msg)
        backend = f"{ip}:{BACKEND_PORT}"
        caddy_http, caddy_https, haproxy_port = free_ports(3)
        configs["backend"] = backend_config()
        configs["caddy"] = caddyfile(backend, caddy_http, caddy_https, certs)
        configs["haproxy"] = haproxy_config(backend, haproxy_port)
        (workdir / "Caddyfile").write_text(configs["caddy"])
        (workdir / "haproxy.cfg").write_text(configs["haproxy"])
        server_prefix = ["taskset", "-c", Placement.cpus(place.proxy)] if place.proxy else []
        caddy_env = dict(os.environ)
        caddy_env |= {
            "GOMAXPROCS": "1",
            "HOME": str(workdir),
            "XDG_DATA_HOME": str(workdir / "data"),
            "XDG_CONFIG_HOME": str(workdir / "config"),
        }
        with (
            running_daemon(
                run_id,
                DOCKYARD_WORKER_PROCESSES="1",
                DOCKYARD_ACCESS_LOG="off",
                DOCKYARD_CERTS_DIR=str(certs_dir),
            ) as daemon,
            running(
                [
                    *server_prefix,
                    *("caddy", "run", "--config", str(workdir / "Caddyfile")),
                    *("--adapter", "caddyfile"),
                ],
                workdir / "caddy.log",
                lambda: get(caddy_http) == 200,
                env=caddy_env,
            ) as caddy_pid,
            running(
                [*server_prefix, "haproxy", "-db", "-f", str(workdir / "haproxy.cfg")],
                workdir / "haproxy.log",
                lambda: get(haproxy_port) == 200,
            ) as haproxy_pid,
        ):
            proxy = daemon.proxy
            ready = wait_until(
                lambda: (
                    get(daemon.port) == 200
                    and all(
                        _serves_certificate(proxy.https_port, f"{k}.bench.test", certs[f"{k}.crt"])
                        for k in KEY_TYPES
                    )
                ),
                timeout=30,
                interval=0.1,
            )
            if not ready:
                msg = f"dockyard does not serve the backend:\n{proxy.log_tail()}"
                raise RuntimeError(msg)
            for key_type in KEY_TYPES:
                host, cert = f"{key_type}.bench.test", certs[f"{key_type}.crt"]
                if not _serves_certificate(caddy_https, host, cert):
                    msg = f"caddy does not serve {host} with the given certificate"
                    raise RuntimeError(msg)
            master = daemon.nginx_pid()
            assert master is not None
            if place.proxy:
                pin_to([master, *children_of(master)], place.proxy)
            backend_pid = int(client.api.inspect_container(backend_id)["State"]["Pid"])
            rendered = proxy.state_dir / "nginx" / "nginx.conf"
            configs["dockyard"] = rendered.read_text() if rendered.exists() else ""
            urls = {
                "direct": f"http://{backend}/",
                "dockyard": f"http://127.0.0.1:{daemon.port}/",
                "caddy": f"http://127.0.0.1:{caddy_http}/",
                "haproxy": f"http://127.0.0.1:{haproxy_port}/",
            }
            http = http_cases(
                urls,
                {
                    "direct": list,
                    "dockyard": lambda: children_of(master),
                    "caddy": lambda: [caddy_pid],
                    "haproxy": lambda: [haproxy_pid],
                },
                lambda: [backend_pid, *children_of(backend_pid)],
                backend_address=ip,
                connections=args.connections,
                seconds=args.seconds,
                repeats=args.repeats,
                place=place,
            )
            handshakes, http2 = (
                ([], [])
                if not args.tls
                else tls_cases(
                    {
                        "dockyard": (proxy.https_port, lambda: children_of(master)),
                        "caddy": (caddy_https, lambda: [caddy_pid]),
                    },
                    seconds=args.tls_seconds,
                    repeats=args.repeats,
                    clients=args.tls_clients,
                    h2=(args.h2_connections, args.h2_streams),
                    place=place,
                )
            )
    finally:
        remove_labelled(client, run_id)
    return {"http": http, "handshakes": handshakes, "http2": http2, "configs": configs}


# ---------------------------------------------------------------------------------------------
# Reporting


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def targets(http: Sequence[dict[str, Any]], keepalive_connections: int) -> dict[str, Any]:
    """The issue's targets, from the keep-alive case with ``keepalive_connections``."""
    case = {
        r["target"]: r
        for r in http
        if r["mode"] == "keep-alive" and r["connections"] == keepalive_connections
    }
    dockyard, caddy = case["dockyard"], case["caddy"]
    ratio = dockyard["vs_direct"]["requests_per_second"]
    overhead = dockyard["vs_direct"]["p99_overhead_ms"]
    return {
        "connections": keepalive_connections,
        "requests_vs_direct": {
            "value": ratio,
            "target": TARGET_RATIO,
            "met": ratio >= TARGET_RATIO,
        },
        "requests_vs_caddy": {
            "value": round(dockyard["requests_per_second"] / caddy["requests_per_second"], 3),
            "target": 1.0,
            "met": dockyard["requests_per_second"] >= caddy["requests_per_second"],
        },
        "p99_overhead_ms": {
            "value": overhead,
            "target": TARGET_P99_OVERHEAD_MS,
            "met": overhead <= TARGET_P99_OVERHEAD_MS,
        },
    }


def report(result: dict[str, Any], goals: dict[str, Any]) -> None:
    """Print the markdown tables."""
    print("## HTTP/1.1 through each proxy (wrk, median of the repeats)\n")
    print(
        table(
            [
                "mode",
                "conns",
                "target",
                "requests/s",
                "vs direct",
                "p50 ms",
                "vs direct",
                "p99 ms",
                "vs direct",
                "p99 overhead ms",
                "proxy CPU us/req",
                "backend CPU us/req",
                "TCP opens/1k req",
                "errors",
            ],
            [
                (
                    r["mode"],
                    r["connections"],
                    r["target"],
                    f"{r['requests_per_second']:,.0f}",
                    _ratio(r["vs_direct"]["requests_per_second"]),
                    r["p50_ms"],
                    _ratio(r["vs_direct"]["p50"]),
                    r["p99_ms"],
                    _ratio(r["vs_direct"]["p99"]),
                    r["vs_direct"]["p99_overhead_ms"],
                    r["proxy_cpu_us_per_request"] if r["target"] != "direct" else "-",
                    r["backend_cpu_us_per_request"],
                    r["tcp_opens_per_1k_requests"],
                    int(r["errors"]),
                )
                for r in sorted(
                    result["http"],
                    key=lambda r: (r["mode"], r["connections"], TARGETS.index(r["target"])),
                )
            ],
        )
    )
    print(f"\n## Targets (dockyard, keep-alive, {goals['connections']} connections)\n")
    print(
        table(
            ["target", "measured", "goal", "verdict"],
            [
                (
                    "requests/s vs direct",
                    f"{goals['requests_vs_direct']['value']:.2f}x",
                    f">= {TARGET_RATIO}x",
                    "met" if goals["requests_vs_direct"]["met"] else "missed",
                ),
                (
                    "requests/s vs Caddy",
                    f"{goals['requests_vs_caddy']['value']:.2f}x",
                    ">= 1.00x",
                    "met" if goals["requests_vs_caddy"]["met"] else "missed",
                ),
                (
                    "p99 overhead",
                    f"{goals['p99_overhead_ms']['value']:.3f} ms",
                    f"<= {TARGET_P99_OVERHEAD_MS} ms",
                    "met" if goals["p99_overhead_ms"]["met"] else "missed",
                ),
            ],
        )
    )
    print("\n## TLS 1.3 handshakes (new connection, one request each), median of the repeats\n")
    print(
        table(
            [
                "server",
                "key",
                "handshakes",
                "per second",
                "server CPU ms/connection",
                "connections per server CPU-second",
                "errors",
            ],
            [
                (
                    r["server"],
                    r["key_type"],
                    r["kind"],
                    f"{r['handshakes_per_second']:,.0f}",
                    r["server_cpu_ms_per_handshake"],
                    r["handshakes_per_server_cpu_second"],
                    int(r["errors"]),
                )
                for r in result["handshakes"]
            ],
        )
    )
    print("\n## HTTPS with HTTP/2 (h2load, ECDSA host), median of the repeats\n")
    print(
        table(
            ["server", "connections", "streams each", "requests/s", "h2", "errors"],
            [
                (
                    r["server"],
                    r["connections"],
                    r["streams"],
                    f"{r['requests_per_second']:,.0f}",
                    r["h2"],
                    int(r["errors"]),
                )
                for r in result["http2"]
            ],
        )
    )


def draw(result: dict[str, Any], directory: Path, note: str, suffix: str = "") -> list[str]:
    """The PNG charts; their paths (none when matplotlib is missing).

    ``suffix`` goes into the HTTP/1.1 charts' names (another placement's run beside them).
    """
    if not plots.available():
        print(
            "\nmatplotlib is not installed: no PNG plots (pip install matplotlib)",
            file=sys.stderr,
        )
        return []
    written = []
    http = result["http"]
    groups = sorted({(r["mode"], r["connections"]) for r in http}, key=lambda g: (g[0], g[1]))
    labels = [f"{mode}, {count} conns" for mode, count in groups]
    by = {(r["target"], r["mode"], r["connections"]): r for r in http}
    for name, key, ylabel, title in (
        (f"data_plane_rps{suffix}.png", "requests_per_second", "requests/s", "HTTP/1.1 requests/s"),
        (f"data_plane_p99{suffix}.png", "p99_ms", "p99 latency, ms", "HTTP/1.1 p99 latency"),
    ):
        path = directory / name
        series = {t: [by[t, m, c][key] for m, c in groups] for t in TARGETS}
        if plots.bar_chart(path, title, labels, series, ylabel, note=note):
            written.append(str(path))
    if not result["handshakes"]:
        for item in written:
            print(f"plot written to {item}")
        return written
    hs = {(r["server"], r["key_type"], r["kind"]): r for r in result["handshakes"]}
    hs_groups = [(k, kind) for k in KEY_TYPES for kind in ("full", "resumed")]
    for name, key, ylabel, title in (
        (
            "tls_handshakes.png",
            "handshakes_per_second",
            "handshakes/s",
            "TLS 1.3 handshakes/s (Python client, one request each)",
        ),
        (
            "tls_handshakes_cpu.png",
            "handshakes_per_server_cpu_second",
            "handshakes per server CPU-second",
            "TLS 1.3 handshakes per server CPU-second",
        ),
    ):
        path = directory / name
        servers = sorted({r["server"] for r in result["handshakes"]})
        series = {s: [hs[s, k, kind][key] for k, kind in hs_groups] for s in servers}
        labels_hs = [f"{k} {kind}" for k, kind in hs_groups]
        if plots.bar_chart(path, title, labels_hs, series, ylabel, note=note):
            written.append(str(path))
    path = directory / "http2_rps.png"
    h2 = result["http2"]
    if plots.bar_chart(
        path,
        "HTTPS + HTTP/2 requests/s (h2load, ECDSA P-256)",
        [f"{h2[0]['connections']} conns x {h2[0]['streams']} streams"] if h2 else [],
        {r["server"]: [r["requests_per_second"]] for r in h2},
        "requests/s",
        note=note,
    ):
        written.append(str(path))
    for item in written:
        print(f"plot written to {item}")
    return written


def versions() -> dict[str, str]:
    """Versions of the load generators and proxies."""

    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        lines = (done.stdout + done.stderr).strip().splitlines()
        return lines[0] if lines else "?"

    return {
        "wrk": first_line(["wrk", "-v"]),
        "caddy": first_line(["caddy", "version"]),
        "haproxy": first_line(["haproxy", "-v"]),
        "h2load": first_line(["h2load", "--version"]),
        "openssl": first_line(["openssl", "version"]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, measure, print, save, plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[64, 8],
        help="wrk connections; the first is the one the targets are judged on (default 64 8)",
    )
    parser.add_argument("--tls-seconds", type=int, default=5, help="per TLS run (default 5)")
    parser.add_argument(
        "--tls-clients", type=int, default=2, help="handshake client processes (default 2)"
    )
    parser.add_argument(
        "--h2-connections",
        type=int,
        default=64,
        help=f"h2load connections, {H2_REQUESTS_PER_CONNECTION} requests each (default 64)",
    )
    parser.add_argument("--h2-streams", type=int, default=10)
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="no CPU placement (taskset, cpuset)"
    )
    parser.add_argument(
        "--placement",
        choices=sorted(PLACEMENTS),
        default="shared",
        help="shared: backend and proxy on CPU 0; proxy-alone: proxy alone on CPU 0, "
        "backend with the client on CPU 1 (default shared)",
    )
    parser.add_argument(
        "--no-tls", dest="tls", action="store_false", help="HTTP/1.1 cases only (no TLS, no h2)"
    )
    parser.add_argument("--plots", type=Path, help="directory for PNG charts (e.g. docs/img)")
    parser.add_argument("--smoke", action="store_true", help="1 s runs, 1 repeat (CI)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "data_plane.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats, args.connections, args.tls_seconds = 1, 1, [8], 1
        args.tls_clients, args.h2_connections = 1, 4
    args.place = PLACEMENTS[args.placement]
    used = args.place.backend | args.place.proxy | args.place.client
    if not args.pin or (os.cpu_count() or 1) < 2 or not used <= os.sched_getaffinity(0):
        args.place = NO_PINNING
    missing = [tool for tool in ("wrk", "caddy", "haproxy", "h2load") if not shutil.which(tool)]
    if missing or not Path(NGINX).exists():
        parser.error(f"missing: {', '.join(missing) or NGINX}")
    exit_on_sigterm()
    began = time.time()
    host = machine()  # before the runs: its load_average says how busy the machine was
    workdir = Path(tempfile.mkdtemp(prefix="dyb-data-plane-", dir="/tmp"))
    try:
        result = measure(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    goals = targets(result["http"], args.connections[0])
    report(result, goals)
    command = command_line("data_plane.py", argv)
    note = (
        f"{host['cpu']}, {host['cores']} cores, load {host['load_average']}; "
        f"{args.place.describe()}; {command}"
    )
    suffix = (
        "" if args.place.name in {"shared", "none"} else "_" + args.place.name.replace("-", "_")
    )
    written = draw(result, args.plots, note, suffix) if args.plots else []
    write_json(
        args.out,
        {
            "benchmark": "data_plane",
            "args": {
                key: (str(value) if isinstance(value, Path) else value)
                for key, value in vars(args).items()
                if key != "place"
            },
            "command": command,
            "machine": host | versions(),
            "placement": {
                "name": args.place.name,
                "backend_cpus": sorted(args.place.backend),
                "proxy_cpus": sorted(args.place.proxy),
                "client_cpus": sorted(args.place.client),
                "workers": 1,
            },
            "started_at": began,
            "duration_seconds": round(time.time() - began, 1),
            "targets": goals,
            "plots": written,
            **result,
        },
    )
    return 0


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[1])
    sys.exit(main())
