#!/usr/bin/env python3
"""Benchmark: what HTTPS adds to the config at many hosts (no Docker, no CA needed).

For ``--routes`` N one-path hosts (as in bench/scale.py), renders the daemon's config with
its own code and templates in three certificate states and times ``nginx -t`` (median of
``--repeats``) with its peak RSS:

* ``http``: no certificate state (HTTP only, what bench/scale.py measures);
* ``fallback``: every host on the shared self-signed fallback (the default without ACME,
  and every ACME host until its certificate arrives);
* ``issued:K``: K hosts with their own CA-issued certificate file (one HTTPS ``server``
  block each), the rest on the fallback; one EC P-256 certificate per host, written to a
  temp dir, so nginx parses K certificate files as it would in production.

Run from the repository root (as root, nginx installed):

    .venv/bin/python bench/tls_scale.py --routes 10000 --issued 1000 10000
    .venv/bin/python bench/tls_scale.py --smoke       # 50 routes, 10 issued

Prints a markdown table and writes bench/results/tls_scale.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import RESULTS_DIR, machine, table, time_nginx_t, write_json

from acme_store import keys
from daemon.rendering import Paths, RenderFacts, make_environment, render_config
from daemon.routing import Backend, Route, RoutingTable
from daemon.running import builtin_templates
from daemon.settings import Settings
from daemon.tls import CertFiles, TlsState


def routes(count: int) -> RoutingTable:
    """``count`` one-path hosts, each with its own backend address."""
    return RoutingTable(
        tuple(
            Route(
                f"h{i}.bench.test",
                "/",
                backends=(Backend(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 8080),),
                containers=(f"c{i}",),
            )
            for i in range(1, count + 1)
        )
    )


def certificate_files(directory: Path, hosts: Sequence[str]) -> dict[str, CertFiles]:
    """One certificate + key file per host (EC P-256, self-signed: nginx parses it the same)."""
    now = datetime.now(UTC)
    files = {}
    for host in hosts:
        key = keys.new_key("ec256")
        content = keys.self_signed((host,), key, now, timedelta(days=90)) + key
        path = directory / f"{host}.pem"
        path.write_text(content)
        files[host] = CertFiles(path, f"{len(files):016x}")
    return files


def measure(state: str, text: str, prefix: Path, repeats: int) -> dict[str, Any]:
    """nginx -t on ``text``: median seconds and peak RSS."""
    config = prefix / "nginx.conf"
    config.write_text(text)
    seconds, peaks = time_nginx_t(config, prefix, repeats, timeout=300)
    return {
        "state": state,
        "config_mb": round(len(text) / 1e6, 2),
        "nginx_t_seconds": round(statistics.median(seconds), 3),
        "nginx_t_peak_mb": round(max(peaks), 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, measure, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--routes", type=int, default=10000)
    parser.add_argument("--issued", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="50 routes, 10 issued, 1 repeat")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "tls_scale.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.routes, args.issued, args.repeats = 50, [10], 1
    table_ = routes(args.routes)
    hosts = [route.host for route in table_.routes]
    with tempfile.TemporaryDirectory(prefix="dyb-tls-") as tmp:
        work = Path(tmp)
        (work / "nginx" / "tmp").mkdir(parents=True)
        settings = Settings(
            state_dir=work, http_port=18080, https_port=18443, acme_email="ops@bench.test"
        )
        facts = RenderFacts(Paths.under(work))
        env = make_environment(None, builtin_templates())
        began = time.monotonic()
        made = certificate_files(work, ["_fallback", *hosts[: max(args.issued)]])
        print(f"made {len(made)} certificates in {time.monotonic() - began:.1f} s")
        fallback = made.pop("_fallback")
        states: list[tuple[str, TlsState | None]] = [
            ("http", None),
            ("fallback", TlsState(fallback)),
        ]
        for count in args.issued:
            issued = tuple((host, made[host]) for host in hosts[:count])
            states.append((f"issued:{count}", TlsState(fallback, issued)))
        rows = []
        for name, state in states:
            began = time.monotonic()
            text = render_config(table_, settings, facts, env, state)
            render_seconds = time.monotonic() - began
            row = measure(name, text, work / "nginx", args.repeats)
            row["render_seconds"] = round(render_seconds, 3)
            rows.append(row)
            print(f"{name}: {row}")
    print()
    print(
        table(
            ["state", "config MB", "render s", "nginx -t s", "nginx -t peak MB"],
            [
                (
                    r["state"],
                    r["config_mb"],
                    r["render_seconds"],
                    r["nginx_t_seconds"],
                    r["nginx_t_peak_mb"],
                )
                for r in rows
            ],
        )
    )
    write_json(
        args.out,
        {
            "benchmark": "tls_scale",
            "args": vars(args) | {"out": str(args.out)},
            "routes": args.routes,
            "results": rows,
            "machine": machine(),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
