#!/usr/bin/env python3
"""Benchmark: how soon a started container is served with a certificate clients trust.

Measures, against the real daemon (`python -m daemon run` on free loopback ports, its own
label prefix and state dir, ACME on) and a real CA (Debian's Pebble 2.4 with
pebble-challtestsrv, started by ``tests/integration/pebble.py`` with ``PEBBLE_VA_NOSLEEP=1``,
so it validates at once): seconds from the ``docker start`` call of a container labelled
``<prefix>.host: N.cert.test`` (tests/backend.py in the test image) to the first TLS
handshake on the proxy's HTTPS port, SNI = that host, whose certificate verifies against
Pebble's issuing root (Python ``ssl``, default context with ``cafile`` = the root fetched
from Pebble's management port, host name checked). Pebble validates HTTP-01 on the proxy's
HTTP port: both ports are chosen up front and given to the daemon as DOCKYARD_HTTP_PORT /
DOCKYARD_HTTPS_PORT, with DOCKYARD_ACME_EMAIL, DOCKYARD_ACME_DIRECTORY = Pebble's directory
and REQUESTS_CA_BUNDLE = the CA that signed Pebble's own listener.

Three pollers run during each start, each on a fresh connection every 20 ms: the verified
handshake above; HTTPS with any certificate (the self-signed fallback until the CA's
arrives): first completed handshake, which certificate it was, first 200; and plain HTTP:
first 200 (while a host has only the fallback, its HTTP port proxies; once it has a CA
certificate it redirects). The daemon's JSON log gives the breakdown for the host:
``certificate_ordered``, ``certificate_issued`` (with the order's own ``seconds``), the
first ``nginx_reloaded`` after it, and the first ``routes_applied`` (the route going live
with the fallback); the engine's ``start`` event is collected too.

``--runs`` containers (default 10) plus ``--warmup`` (default 1, not counted: it also
registers the ACME account) are started one at a time on one daemon and one Pebble,
``--gap`` seconds apart after each verified handshake (default: the daemon's reload
cooldown + 0.4 s, so every start is a lone start). Medians, p90 (nearest rank), min, max.

Run from the repository root, as root with dockerd, nginx and Debian's pebble available:

    .venv/bin/python bench/start_to_cert.py --runs 10
    .venv/bin/python bench/start_to_cert.py --smoke      # 2 runs (CI)

Prints markdown tables and writes bench/results/start_to_cert.json (or ``--out``). Every
container carries ``dockyard-bench=<run id>`` and is removed before the script exits; the
daemon, its nginx and both Pebble processes are stopped by PID, also on errors and SIGTERM.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from common import (
    RESULTS_DIR,
    Daemon,
    create_backends,
    docker_client,
    docker_events,
    ensure_image,
    exit_on_sigterm,
    first_entry,
    free_ports,
    machine,
    new_run_id,
    probe,
    remove_labelled,
    running_daemon,
    summary,
    table,
    write_json,
)
from cryptography import x509
from cryptography.x509.oid import NameOID

from daemon.certificates import FALLBACK_NAME
from daemon.settings import Settings
from tests.integration.pebble import Pebble
from tests.integration.support import https_request

POLL = 0.02
CONNECT_TIMEOUT = 1.0
EMAIL = "bench@dockyard.test"

# (key in a record's "seconds", label) in the order things happen.
STAGES = [
    ("start_returned", "`docker start` call returned"),
    ("docker_event", "engine `start` event"),
    ("route_applied", "route live with the fallback (`routes_applied`)"),
    ("http_200", "first HTTP 200 (plain HTTP)"),
    ("https_any", "first HTTPS handshake, any certificate"),
    ("https_any_200", "first HTTPS 200, any certificate"),
    ("ordered", "`certificate_ordered`"),
    ("issued", "`certificate_issued`"),
    ("cert_reload_began", "reload with the certificate began (SIGHUP)"),
    ("cert_reloaded", "`nginx_reloaded` after `certificate_issued`"),
    ("verified", "**first handshake verified against Pebble's root**"),
]
# (label, from key, to key): the parts of start → verified, which add up to it; the last
# row is not part of the sum (when the daemon's own check saw the new generation answer).
PARTS = [
    ("start call → engine `start` event", "t_call", "docker_event"),
    ("engine event → `certificate_ordered` (pass, worker wake-up, account look-up)",
     "docker_event", "ordered"),
    ("`certificate_ordered` → `certificate_issued` (the ACME order)", "ordered", "issued"),
    ("`certificate_issued` → SIGHUP (wake-up, cooldown if any, pass, `nginx -t`)",
     "issued", "cert_reload_began"),
    ("SIGHUP → first verified handshake", "cert_reload_began", "verified"),
    ("(SIGHUP → `nginx_reloaded`, the daemon's own check)", "cert_reload_began",
     "cert_reloaded"),
]  # fmt: skip


def spread(values: Iterable[float]) -> dict[str, float]:
    """n, min, median, p90 (nearest rank) and max, rounded to ms."""
    return summary(values, 90, 3)


def tls_certificate(port: int, host: str, context: ssl.SSLContext) -> bytes | None:
    """DER of the certificate a completed handshake presented, None when there was none."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            return tls.getpeercert(binary_form=True)
    except OSError:  # refused, rejected handshake, failed verification (ssl.SSLError)
        return None


def common_name(certificate: x509.Certificate) -> str:
    """Subject CN of a certificate ('' when it has none)."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def poll(until: Callable[[], bool], stop: threading.Event, deadline: float) -> None:
    """Call ``until`` every POLL seconds until it is true, ``stop`` is set or time is up."""
    while not stop.is_set() and time.time() < deadline:
        if until():
            return
        time.sleep(POLL)


def one_start(
    client: Any, daemon: Daemon, container_id: str, host: str, *, root: Path, timeout: float
) -> dict[str, Any]:
    """Start one container and poll until its trusted certificate is served (or timeout)."""
    https_port = daemon.proxy.https_port
    verify = ssl.create_default_context(cafile=str(root))
    seen: dict[str, float] = {}
    extra: dict[str, Any] = {}

    def verified() -> bool:
        if tls_certificate(https_port, host, verify) is None:
            return False
        seen["verified"] = time.time()
        return True

    def any_certificate() -> bool:
        try:
            answer = https_request(https_port, host, timeout=CONNECT_TIMEOUT)
        except (OSError, http.client.HTTPException):  # ssl.SSLError is an OSError
            return False
        if "https_any" not in seen:
            seen["https_any"] = time.time()
            name = common_name(answer.certificate)
            extra["first_certificate"] = "fallback" if name == FALLBACK_NAME else name
        if answer.response.status == 200:
            seen["https_any_200"] = time.time()
            return True
        return False

    def http_200() -> bool:
        if probe("127.0.0.1", daemon.port, host, timeout=CONNECT_TIMEOUT) == 200:
            seen["http_200"] = time.time()
            return True
        return False

    stop = threading.Event()
    deadline = time.time() + timeout
    pollers = [
        threading.Thread(target=poll, args=(check, stop, deadline), name=name, daemon=True)
        for name, check in (
            ("poll-verified", verified),
            ("poll-any", any_certificate),
            ("poll-http", http_200),
        )
    ]
    for thread in pollers:
        thread.start()
    t_call = time.time()
    try:
        client.api.start(container_id)
        seen["start_returned"] = time.time()
        for thread in pollers:
            thread.join(timeout=max(0.0, deadline - time.time()) + 2 * CONNECT_TIMEOUT)
    finally:
        stop.set()
    return {"t_call": t_call, "container_id": container_id, "host": host, "abs": seen, **extra}


def enrich(
    records: list[dict[str, Any]],
    logs: list[dict[str, Any]],
    events: list[dict[str, Any]],
    cooldown: float,
) -> list[dict[str, Any]]:
    """Add daemon log and engine event times; turn all times into seconds after the call.

    ``cooldown_end``: the route's reload plus the daemon's reload cooldown, before which
    the reload with the certificate cannot begin.
    """
    for rec in records:
        t_call = rec["t_call"]
        times: dict[str, float] = dict(rec.pop("abs"))
        started = next(
            (
                e
                for e in events
                if e.get("Action") == "start" and e.get("id") == rec["container_id"]
            ),
            None,
        )
        if started is not None:
            times["docker_event"] = started["t"]
        applied = first_entry(logs, "routes_applied", t_call)
        if applied is not None:
            times["route_applied"] = applied["t"]
            times["cooldown_end"] = applied["t"] + cooldown
        ordered = first_entry(logs, "certificate_ordered", t_call, host=rec["host"])
        if ordered is not None:
            times["ordered"] = ordered["t"]
        issued = first_entry(logs, "certificate_issued", t_call, host=rec["host"])
        if issued is not None:
            times["issued"] = issued["t"]
            rec["order_seconds"] = issued.get("seconds")
            reloaded = first_entry(logs, "nginx_reloaded", issued["t"])
            if reloaded is not None:
                times["cert_reloaded"] = reloaded["t"]
                times["cert_reload_began"] = reloaded["t"] - float(reloaded["seconds"])
        failed = first_entry(logs, "certificate_failed", t_call, host=rec["host"])
        if failed is not None:
            rec["certificate_failed"] = failed.get("error")
        rec["seconds"] = {key: round(value - t_call, 4) for key, value in times.items()}
    return records


def measure(
    client: Any, image: str, runs: int, *, warmup: int, gap: float, timeout: float
) -> dict[str, Any]:
    """``warmup`` + ``runs`` labelled containers started one at a time; one daemon, one CA."""
    run_id = new_run_id()
    hosts = [f"{i}.cert.test" for i in range(warmup + runs)]
    workdir = Path(tempfile.mkdtemp(prefix=f"{run_id}-pebble-", dir="/tmp"))
    http_port, https_port = free_ports(2)
    pebble = Pebble(workdir / "pebble", http_port)
    try:
        pebble.start()
        root = workdir / "pebble-root.pem"
        root.write_text(pebble.root_pem())
        ids = create_backends(client, image, run_id, hosts)
        env = {
            "DOCKYARD_HTTP_PORT": str(http_port),
            "DOCKYARD_HTTPS_PORT": str(https_port),
            "DOCKYARD_ACME_EMAIL": EMAIL,
            "DOCKYARD_ACME_DIRECTORY": pebble.directory,
            "REQUESTS_CA_BUNDLE": str(pebble.ca_bundle),
        }
        with running_daemon(run_id, **env) as daemon, docker_events(client, run_id) as events:
            time.sleep(0.5 + gap)
            records = []
            for container_id, host in zip(ids, hosts, strict=True):
                records.append(
                    one_start(client, daemon, container_id, host, root=root, timeout=timeout)
                )
                time.sleep(gap)
            logs = daemon.logs()
        enriched = enrich(records, logs, events, Settings().reload_interval)
        return {
            "run_id": run_id,
            "ports": {"http": http_port, "https": https_port},
            "pebble_directory": pebble.directory,
            "warmup": enriched[:warmup],
            "records": enriched[warmup:],
        }
    finally:
        try:
            remove_labelled(client, run_id)
        finally:
            pebble.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def report(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Print the tables; return the summary for the JSON file."""
    stats = {
        key: spread(r["seconds"][key] for r in records if key in r["seconds"]) for key, _ in STAGES
    }

    def part(a: str, b: str) -> dict[str, float]:
        def at(rec: dict[str, Any], key: str) -> float | None:
            return 0.0 if key == "t_call" else rec["seconds"].get(key)

        values = []
        for rec in records:
            start, end = at(rec, a), at(rec, b)
            if start is not None and end is not None:
                values.append(end - start)
        return spread(values)

    parts = {label: part(a, b) for label, a, b in PARTS}
    verified = sum(1 for r in records if "verified" in r["seconds"])
    print(f"## docker start -> trusted certificate ({len(records)} containers, one at a time)\n")
    print(
        table(
            ["seconds after the start call", "median", "p90", "min", "max", "n"],
            [
                (label, s["median"], s["p90"], s["min"], s["max"], s["n"])
                for (key, label) in STAGES
                for s in [stats[key]]
            ],
        )
    )
    print()
    print(
        table(
            ["part", "median", "p90", "min", "max"],
            [(label, p["median"], p["p90"], p["min"], p["max"]) for label, p in parts.items()],
        )
    )
    print()
    columns = [
        "http_200",
        "https_any",
        "ordered",
        "issued",
        "cooldown_end",
        "cert_reload_began",
        "verified",
    ]
    print(
        table(
            ["run", "host", "order (daemon's figure)", *columns, "first certificate"],
            [
                (
                    i + 1,
                    r["host"],
                    r.get("order_seconds"),
                    *(r["seconds"].get(c, "-") for c in columns),
                    r.get("first_certificate", "-"),
                )
                for i, r in enumerate(records)
            ],
        )
    )
    # acme sleeps 1 s before its first finalization poll, and 1 s more when the
    # authorization was still pending at its first poll: orders take about 1 s or 2 s.
    short = [r for r in records if float(r.get("order_seconds") or 0.0) < 1.5]
    long = [r for r in records if r not in short and r.get("order_seconds") is not None]
    by_order = {
        "one_poll_sleep": spread(
            r["seconds"]["verified"] for r in short if "verified" in r["seconds"]
        ),
        "two_poll_sleeps": spread(
            r["seconds"]["verified"] for r in long if "verified" in r["seconds"]
        ),
    }
    waits = [
        t["cooldown_end"] - t["issued"]
        for t in (r["seconds"] for r in records)
        if {"issued", "cooldown_end"} <= t.keys() and t["issued"] < t["cooldown_end"]
    ]
    print(f"\nverified: {verified} of {len(records)} runs\n")
    kinds = (
        ("one_poll_sleep", "about 1 s (one acme poll sleep)"),
        ("two_poll_sleeps", "about 2 s (two acme poll sleeps)"),
    )
    rows = [
        (label, *(by_order[key][k] for k in ("n", "median", "min", "max"))) for key, label in kinds
    ]
    print(table(["order", "runs", "start -> verified median", "min", "max"], rows))
    print(
        f"\ncertificate issued inside the reload cooldown after the route's reload: "
        f"{len(waits)} of {len(records)} runs, waiting {spread(waits)['median']} s (median) "
        f"for it to end"
    )
    return {
        "runs": len(records),
        "verified_runs": verified,
        "verified_by_order": by_order,
        "issued_inside_cooldown": len(waits),
        "cooldown_wait": spread(waits),
        "seconds": stats,
        "parts": parts,
        "order_seconds": spread(
            float(r["order_seconds"]) for r in records if r.get("order_seconds") is not None
        ),
        "first_certificates": sorted({str(r.get("first_certificate")) for r in records}),
    }


def default_gap() -> float:
    """Pause after each verified handshake: longer than the daemon's reload cooldown."""
    return round(Settings().reload_interval + 0.4, 3)


def pebble_version() -> str:
    """Debian's pebble package version."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "pebble"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, run the measurement, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="counted starts (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted first starts")
    parser.add_argument("--gap", type=float, default=None, help="seconds between starts")
    parser.add_argument("--timeout", type=float, default=30.0, help="per start, seconds")
    parser.add_argument("--smoke", action="store_true", help="2 runs (CI)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "start_to_cert.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs = 2
    gap = default_gap() if args.gap is None else args.gap
    exit_on_sigterm()

    about = machine()
    about["pebble"] = pebble_version()
    client = docker_client(pool=8)
    image = ensure_image(client)
    result = measure(client, image, args.runs, warmup=args.warmup, gap=gap, timeout=args.timeout)
    outcome = report(result["records"])
    write_json(
        args.out,
        {
            "benchmark": "start_to_cert",
            "args": {**vars(args), "out": str(args.out), "gap": gap},
            "machine": about,
            "summary": outcome,
            **result,
        },
    )
    return 0 if outcome["verified_runs"] == outcome["runs"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
