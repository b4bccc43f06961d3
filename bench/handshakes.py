#!/usr/bin/env python3
"""Benchmark: TLS full handshakes per second, ECDSA P-256 versus RSA-4096, on the same nginx.

One nginx (``/usr/sbin/nginx``, Debian's 1.22 with OpenSSL 3.0) runs in the foreground from a
temporary directory (own config, pid, error log and temp paths; nothing of the system nginx is
touched), ``worker_processes auto``, with two ``server`` blocks on two free loopback ports:

* ``ec256``: a self-signed ECDSA P-256 certificate (dockyard's default ACME key type);
* ``rsa4096``: a self-signed RSA-4096 certificate (the key size the seed pages suggest,
  certbot's ``--rsa-key-size 4096``).

Keys and certificates are made with ``cryptography``. Both servers use the Mozilla
"intermediate" TLS settings dockyard renders (TLS 1.2 + 1.3, the ECDHE AEAD cipher list,
``ssl_prefer_server_ciphers off``, ``ssl_session_cache shared:MozSSL:10m``,
``ssl_session_tickets off``, ``listen ... ssl http2``) and answer ``return 204``.

For each key type, TLS version (1.3 and 1.2) and number of concurrent clients, the client is
``openssl s_time -new``: a full handshake on a new TCP connection each time, no session
resumption, no HTTP request. It prints one character per connection, ``r`` for a resumed
one; the script fails if there is any. The client does not verify the chain (``s_time``'s
default) and loads no CA store; it still checks the server's handshake signature.

The rate is handshakes / wall time of the ``s_time`` processes. ``s_time`` stops at a
whole-second tick of ``time()``, so every run starts just after a tick and lasts
``--seconds`` (2 s at least). Alongside: CPU time of the nginx workers (utime + stime from
/proc/PID/stat) and of the ``s_time`` processes (``wait4`` rusage) per handshake. Client and
server share the machine's cores, so "handshakes per nginx CPU-second" is the figure that
carries over to a machine whose clients are elsewhere. Cases are interleaved within each
repeat; the median of the repeats is reported. One ``openssl s_client -brief`` per case
records what was negotiated, and ``openssl speed`` the raw single-core sign/verify rates.

Run from the repository root (nginx installed; root not needed but usual here):

    .venv/bin/python bench/handshakes.py --seconds 10 --repeats 3   # ~4.5 min
    .venv/bin/python bench/handshakes.py --smoke                    # ~2 s per case (CI)

Prints markdown tables and writes bench/results/handshakes.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import RESULTS_DIR, children_of, exit_on_sigterm, free_ports, machine, table
from common import write_json as write_result

from acme_store import keys

NGINX = "/usr/sbin/nginx"
KEY_TYPES: dict[str, str] = {"ec256": "ECDSA P-256", "rsa4096": "RSA-4096"}
PROTOCOLS: dict[str, str] = {"TLSv1.3": "-tls1_3", "TLSv1.2": "-tls1_2"}
# dockyard's TLS settings (Mozilla "intermediate"), included as shipped: the template is
# plain nginx syntax, so what is measured is what dockyard serves.
TLS_SETTINGS = Path(__file__).resolve().parent.parent / "templates" / "tls.j2"
# The client does not verify the chain (s_time's default), so skip loading CA stores too.
CLIENT_OPTIONS = ["-no-CApath", "-no-CAfile", "-no-CAstore"]
S_TIME_SUMMARY = re.compile(r"(\d+) connections in ([\d.]+)s;")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def generate_certificate(key_type: str, directory: Path) -> tuple[Path, Path]:
    """A new key of ``key_type`` and a self-signed certificate for it: (cert, key) paths.

    Made by the same code as dockyard's own keys and fallback certificate.
    """
    key_pem = keys.new_key(key_type)
    cert_pem = keys.self_signed(
        (f"{key_type}.bench.test",), key_pem, datetime.now(UTC), timedelta(days=1)
    )
    cert_path = directory / f"{key_type}.crt"
    key_path = directory / f"{key_type}.key"
    cert_path.write_text(cert_pem)
    key_path.write_text(key_pem)
    key_path.chmod(0o600)
    return cert_path, key_path


def nginx_config(workdir: Path, servers: dict[str, tuple[int, Path, Path]]) -> str:
    """The whole nginx.conf: one TLS ``server`` per key type (port, cert, key)."""
    temp = workdir / "temp"
    lines = [
        "daemon off;",
        "worker_processes auto;",
        f"pid {workdir / 'nginx.pid'};",
        f"error_log {workdir / 'error.log'} error;",
        "events { worker_connections 4096; }",
        "http {",
        f"    client_body_temp_path {temp}/client_body;",
        f"    proxy_temp_path {temp}/proxy;",
        f"    fastcgi_temp_path {temp}/fastcgi;",
        f"    uwsgi_temp_path {temp}/uwsgi;",
        f"    scgi_temp_path {temp}/scgi;",
        "    access_log off;",
        f"    include {TLS_SETTINGS};",
    ]
    for key_type, (port, cert, key) in servers.items():
        lines += [
            "    server {",
            f"        listen 127.0.0.1:{port} ssl http2;",
            f"        server_name {key_type}.bench.test;",
            f"        ssl_certificate {cert};",
            f"        ssl_certificate_key {key};",
            "        return 204;",
            "    }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _is_nginx(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "nginx"
    except OSError:
        return False


def _stop_nginx(process: subprocess.Popen[bytes], workers: Sequence[int]) -> None:
    """Stop the master by its PID (SIGTERM, then SIGKILL), then any worker left behind."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for pid in workers:
        if _is_nginx(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@contextlib.contextmanager
def running_nginx(workdir: Path, config: str, ports: Sequence[int]) -> Iterator[int]:
    """Run nginx in the foreground on ``config``; yield the master's PID; stop it on exit."""
    (workdir / "temp").mkdir(exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(config)
    error_log = workdir / "error.log"
    argv = [NGINX, "-p", f"{workdir}/", "-c", str(conf), "-e", str(error_log)]
    workers: list[int] = []
    # Own session: a Ctrl-C in the terminal reaches this script, whose finally stops nginx.
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        expected = os.cpu_count() or 1  # worker_processes auto
        deadline = time.monotonic() + 20
        while not (
            all(_listening(port) for port in ports) and len(children_of(process.pid)) >= expected
        ):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = error_log.read_text()[-2000:] if error_log.exists() else ""
                msg = f"nginx did not start (exit {process.poll()}):\n{tail}"
                raise RuntimeError(msg)
            time.sleep(0.05)
        workers = children_of(process.pid)
        yield process.pid
    finally:
        _stop_nginx(process, [*workers, *children_of(process.pid)])


def workers_cpu_seconds(master: int) -> float:
    """utime + stime of the master's children (the workers), in seconds."""
    total = 0
    for pid in children_of(master):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / CLOCK_TICKS


def negotiated(port: int, flag: str) -> dict[str, str]:
    """What one ``openssl s_client -brief`` handshake agreed on (protocol, cipher, group)."""
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", flag, "-brief"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    wanted = {
        "Protocol version": "protocol",
        "Ciphersuite": "cipher",
        "Signature type": "signature",
        "Hash used": "hash",
        "Server Temp Key": "key_exchange",
    }
    found: dict[str, str] = {}
    for line in (done.stdout + done.stderr).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in wanted:
            found[wanted[key.strip()]] = value.strip()
    if "protocol" not in found:
        msg = f"s_client could not connect to {port} {flag}:\n{done.stderr[-2000:]}"
        raise RuntimeError(msg)
    return found


def _after_second_tick() -> None:
    """Sleep until just after the wall clock's next whole second."""
    time.sleep(1.0 - time.time() % 1.0 + 0.002)


@dataclass
class Run:
    """One timed run of the clients against one server."""

    handshakes: int
    seconds: float
    server_cpu: float
    client_cpu: float

    def as_dict(self) -> dict[str, float]:
        """The run's raw figures and its per-handshake ones."""
        count = max(self.handshakes, 1)
        return {
            "handshakes": self.handshakes,
            "seconds": round(self.seconds, 4),
            "per_second": round(self.handshakes / self.seconds, 1),
            "server_cpu_seconds": round(self.server_cpu, 2),
            "client_cpu_seconds": round(self.client_cpu, 3),
            "server_cpu_ms_per_handshake": round(1000 * self.server_cpu / count, 4),
            "client_cpu_ms_per_handshake": round(1000 * self.client_cpu / count, 4),
        }


def timed_run(master: int, port: int, flag: str, *, seconds: int, clients: int, log: Path) -> Run:
    """``clients`` concurrent ``openssl s_time -new`` for ``seconds``; count and CPU time.

    ``s_time -time T`` stops at the first tick of ``time()`` after T whole seconds, so,
    started just after a tick, it runs for T + 1 s: T is ``seconds`` - 1 (at least 1).
    """
    argv = ["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-new", flag, *CLIENT_OPTIONS]
    argv += ["-time", str(max(seconds - 1, 1))]
    outputs = [log.with_name(f"{log.name}.{i}") for i in range(clients)]
    processes: list[subprocess.Popen[bytes]] = []
    client_cpu = 0.0
    try:
        _after_second_tick()
        cpu_before = workers_cpu_seconds(master)
        began = time.perf_counter()
        for path in outputs:
            with path.open("wb") as out:  # one character per connection: a file, not a pipe
                processes.append(
                    subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                    )
                )
        codes = []
        for process in processes:
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            codes.append(process.returncode)
            client_cpu += usage.ru_utime + usage.ru_stime
        elapsed = time.perf_counter() - began
        server_cpu = workers_cpu_seconds(master) - cpu_before
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                process.wait(timeout=10)
    handshakes = 0
    for code, path in zip(codes, outputs, strict=True):
        text = path.read_text(errors="replace")
        found = S_TIME_SUMMARY.search(text)
        if code != 0 or found is None:
            msg = f"s_time exit {code} against port {port} {flag}:\n{text[-2000:]}"
            raise RuntimeError(msg)
        handshakes += int(found.group(1))
        # After the header line, one character per connection: "r" for a resumed session.
        if "r" in text[text.find("\n") : found.start()]:
            msg = f"s_time resumed sessions on port {port} {flag}:\n{text[-2000:]}"
            raise RuntimeError(msg)
    return Run(handshakes, elapsed, server_cpu, client_cpu)


def openssl_speed(seconds: int) -> dict[str, dict[str, float]]:
    """Single-core sign and verify operations per second (``openssl speed -mr``)."""
    done = subprocess.run(
        ["openssl", "speed", "-seconds", str(seconds), "-mr", "ecdsap256", "rsa4096"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rates: dict[str, dict[str, float]] = {}
    for line in done.stdout.splitlines():
        fields = line.split(":")
        # +F2:index:bits:sign/s:verify/s for RSA, +F4:... for ECDSA
        if fields[0] in {"+F2", "+F4"} and len(fields) >= 5:
            name = "rsa4096" if fields[0] == "+F2" else "ec256"
            rates[name] = {
                "sign_per_second": round(float(fields[3])),
                "verify_per_second": round(float(fields[4])),
            }
    return rates


def _median(values: Sequence[float], digits: int) -> float:
    return round(statistics.median(values), digits)


def summarise(case: dict[str, Any], runs: Sequence[Run]) -> dict[str, Any]:
    """Medians over the repeats of one case."""
    raw = [run.as_dict() for run in runs]
    rates = [r["per_second"] for r in raw]
    server_ms = _median([r["server_cpu_ms_per_handshake"] for r in raw], 4)
    return {
        **case,
        "handshakes_per_second": _median(rates, 1),
        "handshakes_per_second_min": min(rates),
        "handshakes_per_second_max": max(rates),
        "server_cpu_ms_per_handshake": server_ms,
        "client_cpu_ms_per_handshake": _median([r["client_cpu_ms_per_handshake"] for r in raw], 4),
        "handshakes_per_server_cpu_second": round(1000 / server_ms, 1) if server_ms else None,
        "runs": raw,
    }


def measure(
    seconds: int, repeats: int, clients: Sequence[int], workdir: Path
) -> tuple[list[dict[str, Any]], str]:
    """Every case, interleaved within each repeat; return the summaries and the config."""
    ports = dict(zip(KEY_TYPES, free_ports(len(KEY_TYPES)), strict=True))
    servers = {
        key_type: (ports[key_type], *generate_certificate(key_type, workdir))
        for key_type in KEY_TYPES
    }
    config = nginx_config(workdir, servers)
    cases = [
        (key_type, protocol, count)
        for count in clients
        for protocol in PROTOCOLS
        for key_type in KEY_TYPES
    ]
    runs: dict[tuple[str, str, int], list[Run]] = {case: [] for case in cases}
    with running_nginx(workdir, config, list(ports.values())) as master:
        agreed = {
            (key_type, protocol): negotiated(ports[key_type], PROTOCOLS[protocol])
            for key_type in KEY_TYPES
            for protocol in PROTOCOLS
        }
        for repeat in range(repeats):
            for key_type, protocol, count in cases:
                print(
                    f"repeat {repeat + 1}/{repeats}: {key_type} {protocol} "
                    f"{count} client(s), {seconds} s ...",
                    file=sys.stderr,
                    flush=True,
                )
                runs[key_type, protocol, count].append(
                    timed_run(
                        master,
                        ports[key_type],
                        PROTOCOLS[protocol],
                        seconds=seconds,
                        clients=count,
                        log=workdir / "s_time.out",
                    )
                )
        errors = (workdir / "error.log").read_text(errors="replace").splitlines()
    results = [
        summarise(
            {
                "key_type": key_type,
                "key": KEY_TYPES[key_type],
                "protocol": protocol,
                "clients": count,
                "negotiated": agreed[key_type, protocol],
            },
            runs[key_type, protocol, count],
        )
        for key_type, protocol, count in cases
    ]
    if errors:
        print(f"nginx error log ({len(errors)} lines):", *errors[-5:], sep="\n", file=sys.stderr)
    return results, config


def host_details() -> dict[str, Any]:
    """``machine()`` plus the CPU model from /proc/cpuinfo, nginx -V and OpenSSL versions."""
    details: dict[str, Any] = dict(machine())
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                details["cpu_model_proc"] = line.split(":", 1)[1].strip()
                break
    nginx_v = subprocess.run([NGINX, "-V"], capture_output=True, text=True, check=False)
    details["nginx_V"] = (nginx_v.stdout + nginx_v.stderr).splitlines()[:2]
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False)
    details["openssl_cli"] = openssl.stdout.strip()
    return details


def report(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Print the tables; return the ECDSA/RSA ratios by protocol and client count."""
    print("## TLS full handshakes (openssl s_time -new), median of the repeats\n")
    print(
        table(
            [
                "key",
                "protocol",
                "clients",
                "handshakes/s",
                "min-max",
                "nginx CPU ms/handshake",
                "client CPU ms/handshake",
                "handshakes per nginx CPU-s",
                "negotiated",
            ],
            [
                (
                    r["key_type"],
                    r["protocol"],
                    r["clients"],
                    r["handshakes_per_second"],
                    f"{r['handshakes_per_second_min']}-{r['handshakes_per_second_max']}",
                    r["server_cpu_ms_per_handshake"],
                    r["client_cpu_ms_per_handshake"],
                    r["handshakes_per_server_cpu_second"],
                    f"{r['negotiated'].get('cipher', '?')}, "
                    f"{r['negotiated'].get('key_exchange', '?')}, "
                    f"{r['negotiated'].get('signature', '?')}",
                )
                for r in results
            ],
        )
    )
    by_case = {(r["key_type"], r["protocol"], r["clients"]): r for r in results}
    ratios: dict[str, Any] = {}
    rows = []
    for (key_type, protocol, count), ec_case in by_case.items():
        if key_type != "ec256":
            continue
        rsa_case = by_case[("rsa4096", protocol, count)]
        rate = ec_case["handshakes_per_second"] / max(rsa_case["handshakes_per_second"], 1e-9)
        cpu = rsa_case["server_cpu_ms_per_handshake"] / max(
            ec_case["server_cpu_ms_per_handshake"], 1e-9
        )
        ratios[f"{protocol}/{count}"] = {"rate": round(rate, 2), "server_cpu": round(cpu, 2)}
        rows.append((protocol, count, f"{rate:.2f}x", f"{cpu:.2f}x"))
    print("\n## ec256 against rsa4096\n")
    print(
        table(
            ["protocol", "clients", "ec256 / rsa4096 handshakes/s", "rsa4096 / ec256 nginx CPU"],
            rows,
        )
    )
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    """Generate keys, run nginx, time the handshakes, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=10, help="per run, at least 2 (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=[1, 2],
        help="concurrent s_time processes per case (default: 1 2)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="shortest runs (2 s), 1 repeat, 1 client"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "handshakes.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats, args.clients = 1, 1, [1]
    if args.seconds < 1 or args.repeats < 1 or not all(1 <= n <= 16 for n in args.clients):
        parser.error("--seconds and --repeats at least 1, --clients from 1 to 16")
    if not Path(NGINX).exists():
        parser.error(f"{NGINX} not found (Debian's nginx package)")
    exit_on_sigterm()
    began = time.time()
    host = host_details()  # before the runs: its load_average says how busy the machine was
    workdir = Path(tempfile.mkdtemp(prefix="dyb-handshakes-", dir="/tmp"))
    try:
        results, config = measure(args.seconds, args.repeats, args.clients, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    speed = {} if args.smoke else openssl_speed(2)
    ratios = report(results)
    if speed:
        print("\n## openssl speed, one core (operations/s)\n")
        print(
            table(
                ["key", "sign/s", "verify/s"],
                [(k, v["sign_per_second"], v["verify_per_second"]) for k, v in speed.items()],
            )
        )
    summary = {
        key_type: {
            f"{r['protocol']}/{r['clients']}": r["handshakes_per_second"]
            for r in results
            if r["key_type"] == key_type
        }
        for key_type in KEY_TYPES
    }
    write_result(
        args.out,
        {
            "benchmark": "handshakes",
            "args": {
                "seconds": args.seconds,
                "repeats": args.repeats,
                "clients": args.clients,
                "smoke": args.smoke,
            },
            "machine": host,
            "started_at": began,
            "duration_seconds": round(time.time() - began, 1),
            "nginx_config": config,
            "summary": {"handshakes_per_second": summary, "ec256_over_rsa4096": ratios},
            "openssl_speed": speed,
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
