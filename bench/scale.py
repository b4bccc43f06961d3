#!/usr/bin/env python3
"""Benchmark: the config pipeline and nginx at 1,000 and 10,000 routes (no Docker needed).

For each ``--routes`` count N, in a fresh child process (so memory figures are per size):

* synthetic ``ContainerInfo`` objects, one per route: distinct host ``hN.bench.test``, distinct
  IPv4 address, one exposed port, path ``/``;
* render: ``build_routes`` + ``render_config`` (the daemon's own code and templates), median
  of 3 and the first (cold) run, plus the rendered size;
* validate: ``NginxProcess.test`` (write the candidate + ``nginx -t``), and ``nginx -t`` alone
  with its own peak RSS (``wait4`` rusage);
* start, then reload: a real nginx master started by ``NginxProcess`` on the N-route config,
  then 5 reloads to configs with one route more / less (``NginxProcess.apply``: SIGHUP until
  the new generation answers on the control socket; also until the old workers are gone,
  which is when no client can reach the old config any more);
* nginx memory once old workers are gone, after the start and after each reload: Pss and Rss
  summed over master + workers (/proc/PID/smaps_rollup); the figure reported is the one after
  the last reload (the state a long-running proxy is in);
* daemon memory: RSS of the Python process that built and rendered (before/after/peak);
* for comparison, ``nginx -t`` time and peak RSS of two layouts generated here for the same N
  hosts: a naive one (one ``upstream`` and one ``server`` block per host) and a sketch without
  ``upstream`` blocks (one ``map $host`` yielding ``address:port``), which shows what the
  upstream blocks cost; the sketch is also started and reloaded by ``NginxProcess``.

Target at 10,000 routes: render + validate + reload <= 2 s and nginx <= 200 MB.

Run from the repository root (as root, nginx installed):

    .venv/bin/python bench/scale.py --routes 1000 10000 --plots docs/img
    .venv/bin/python bench/scale.py --smoke          # 50 routes (CI)

Prints a markdown table and writes bench/results/scale.json (or ``--out``) and, with
``--plots DIR``, scale_pipeline.png (skipped with a message when matplotlib is not installed).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import plots
import structlog
from common import (
    RESULTS_DIR,
    children_of,
    command_line,
    exit_on_sigterm,
    free_ports,
    machine,
    peak_rss_mb,
    process_tree_memory,
    rss_mb,
    summary,
    table,
    time_nginx_t,
    verdict,
    wait_until,
    write_json,
)

from daemon.nginx import NginxProcess
from daemon.rendering import RenderFacts, make_environment, plan_layout, render_config
from daemon.routing import Attachment, ContainerInfo, RoutingContext, build_routes
from daemon.running import builtin_templates, detect_facts
from daemon.settings import Settings

PREFIX = "bench"
TARGET_SECONDS = 2.0
TARGET_NGINX_MB = 200.0
REPEATS = 3
RELOADS = 5


def synthetic(count: int, offset: int = 0) -> list[ContainerInfo]:
    """``count`` running containers, each with its own host name and IPv4 address."""
    base = int(ipaddress.IPv4Address("10.0.0.2"))
    containers = []
    for i in range(offset, offset + count):
        containers.append(
            ContainerInfo(
                id=f"{i:064x}",
                name=f"bench-{i}",
                labels=((f"{PREFIX}.host", f"h{i}.bench.test"),),
                attachments=(Attachment("bridge", str(ipaddress.IPv4Address(base + i))),),
                exposed_ports=(8080,),
            )
        )
    return containers


def _preamble(settings: Settings, facts: RenderFacts, count: int) -> list[str]:
    """Global settings shared by the comparison layouts (as close to dockyard's as matters)."""
    paths = facts.paths
    hashes = plan_layout(build_routes(synthetic(count), RoutingContext(PREFIX)).table).hashes
    return [
        "daemon off;",
        "worker_processes auto;",
        f"pid {paths.pid};",
        "error_log stderr warn;",
        "events { worker_connections 4096; }",
        "http {",
        f"    client_body_temp_path {paths.temp}/client_body;",
        f"    proxy_temp_path {paths.temp}/proxy;",
        f"    fastcgi_temp_path {paths.temp}/fastcgi;",
        f"    uwsgi_temp_path {paths.temp}/uwsgi;",
        f"    scgi_temp_path {paths.temp}/scgi;",
        f"    server_names_hash_max_size {hashes.max_size};",
        f"    server_names_hash_bucket_size {hashes.bucket_size};",
        f"    map_hash_max_size {hashes.max_size};",
        f"    map_hash_bucket_size {hashes.bucket_size};",
        "    access_log off;",
        "    proxy_http_version 1.1;",
        "    proxy_set_header Host $http_host;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    server {",
        f"        listen {settings.http_port} default_server;",
        "        return 404;",
        "    }",
    ]


def _listen(settings: Settings, facts: RenderFacts) -> list[str]:
    lines = [f"        listen {settings.http_port};"]
    if facts.listen_ipv6:
        lines.append(f"        listen [::]:{settings.http_port};")
    return lines


def _acme(facts: RenderFacts) -> list[str]:
    return [
        "        location ^~ /.well-known/acme-challenge/ {",
        f"            alias {facts.paths.acme_challenge}/;",
        "        }",
    ]


def naive_config(count: int, settings: Settings, facts: RenderFacts) -> str:
    """One upstream and one server block per host: the layout dockyard avoids."""
    lines = _preamble(settings, facts, count)
    for i, container in enumerate(synthetic(count)):
        address = container.attachments[0].address
        lines += [
            f"    upstream u{i} {{ server {address}:8080; keepalive 32; }}",
            "    server {",
            *_listen(settings, facts),
            f"        server_name h{i}.bench.test;",
            *_acme(facts),
            f"        location / {{ proxy_pass http://u{i}; }}",
            "    }",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def address_map_config(
    count: int, settings: Settings, facts: RenderFacts, generation: str = "sketch"
) -> str:
    """Like dockyard's layout, but the map yields ``address:port``: no ``upstream`` blocks.

    Not what dockyard renders: a sketch, measured to show what the upstream blocks cost.
    (It gives up upstream keepalive for single-backend routes.) It has dockyard's
    generation line and control socket, so ``NginxProcess`` can start and reload it.
    """
    lines = [f"# generation {generation}", *_preamble(settings, facts, count)]
    lines.append("    map $host $bench_backend {")
    lines.append("        hostnames;")
    for i, container in enumerate(synthetic(count)):
        lines.append(f"        h{i}.bench.test {container.attachments[0].address}:8080;")
    lines += ["    }", "    server {", *_listen(settings, facts)]
    lines += [f"        server_name h{i}.bench.test;" for i in range(count)]
    lines += [*_acme(facts), "        location / { proxy_pass http://$bench_backend; }", "    }"]
    lines += [
        "    server {",
        f"        listen unix:{facts.paths.control_socket};",
        f'        location = /dockyard/generation {{ return 200 "{generation}"; }}',
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def compare_layouts(
    count: int, settings: Settings, facts: RenderFacts, workdir: Path
) -> dict[str, dict[str, float]]:
    """``nginx -t`` time and peak memory of the comparison layouts for the same hosts."""
    results: dict[str, dict[str, float]] = {}
    for name, make in (("naive", naive_config), ("address_map", address_map_config)):
        paths = type(facts.paths).under(workdir / name)
        for directory in (paths.config.parent, paths.temp, paths.acme_challenge):
            directory.mkdir(parents=True, exist_ok=True)
        text = make(count, settings, RenderFacts(paths, facts.listen_ipv6))
        paths.config.write_text(text)
        measured = nginx_t(paths.config, paths.config.parent)
        measured["bytes"] = float(len(text.encode()))
        results[name] = measured
    return results


def nginx_t(config: Path, prefix: Path) -> dict[str, float]:
    """``nginx -t`` alone: seconds and peak RSS of that process (median of ``REPEATS``)."""
    seconds, peaks = time_nginx_t(config, prefix, REPEATS, timeout=300)
    return {
        "seconds": round(statistics.median(seconds), 4),
        "peak_rss_mb": round(max(peaks), 1),
    }


def _all_gone(pids: Sequence[int]) -> bool:
    return not any(Path(f"/proc/{pid}").exists() for pid in pids)


def _settled_memory(nginx: NginxProcess) -> dict[str, float]:
    """nginx master + workers memory, after the workers of older generations have gone."""
    master = nginx.pid
    assert master is not None
    workers = os.cpu_count() or 1  # worker_processes auto: one per online CPU
    wait_until(lambda: len(children_of(master)) <= workers, timeout=30, interval=0.05)
    return process_tree_memory(master)


def reload_series(nginx: NginxProcess, texts: Sequence[str]) -> dict[str, Any]:
    """Test and apply each text in turn on a running nginx; time and memory of each step."""
    validates, reloads, old_gone, memory = [], [], [], []
    for text in texts:
        began = time.perf_counter()
        nginx.test(text)
        validates.append(time.perf_counter() - began)
        master = nginx.pid
        assert master is not None
        old_workers = children_of(master)
        began = time.perf_counter()
        reloads.append(nginx.apply(text))
        # The daemon's figure ends when one new worker answers; clients can still land on
        # old workers until the master tells them to quit (after its 100 ms sleep).
        wait_until(partial(_all_gone, old_workers), timeout=30, interval=0.002)
        old_gone.append(time.perf_counter() - began)
        memory.append(_settled_memory(nginx))
    return {
        "validate": validates,
        "reload": summary(reloads),
        "reload_until_old_workers_gone": summary(old_gone),
        "memory_by_reload": memory,
    }


def measure_sketch(
    count: int, settings: Settings, facts: RenderFacts, workdir: Path
) -> dict[str, Any]:
    """Start and reload nginx on the address-map sketch: what dropping upstream blocks buys."""
    paths = type(facts.paths).under(workdir / "sketch")
    sketch_facts = RenderFacts(paths, facts.listen_ipv6)
    nginx = NginxProcess(settings, paths)
    nginx.prepare()
    texts = [
        address_map_config(count + i % 2, settings, sketch_facts, f"sketch{i}")
        for i in range(RELOADS + 1)
    ]
    try:
        nginx.test(texts[0])
        start_seconds = nginx.apply(texts[0])
        after_start = _settled_memory(nginx)
        series = reload_series(nginx, texts[1:])
    finally:
        nginx.stop()
    return {
        "nginx_start_seconds": round(start_seconds, 4),
        "validate_seconds": round(statistics.median(series["validate"]), 4),
        "reload": series["reload"],
        "reload_until_old_workers_gone": series["reload_until_old_workers_gone"],
        "nginx_memory_after_start": after_start,
        "nginx_memory": series["memory_by_reload"][-1],
    }


def measure(count: int, workdir: Path) -> dict[str, Any]:
    """Everything for one route count; runs in its own process."""
    http_port, https_port = free_ports(2)
    settings = Settings(
        http_port=http_port,
        https_port=https_port,
        state_dir=workdir / "state",
        label_prefix=PREFIX,
        access_log=False,
    )
    facts = detect_facts(settings)
    env = make_environment(None, builtin_templates())
    ctx = RoutingContext(label_prefix=PREFIX)
    containers = synthetic(count)
    rss_before = rss_mb()

    def render(items: Sequence[ContainerInfo]) -> tuple[str, float]:
        began = time.perf_counter()
        result = build_routes(items, ctx)
        text = render_config(result.table, settings, facts, env)
        return text, time.perf_counter() - began

    text, cold = render(containers)
    render_times = [render(containers)[1] for _ in range(REPEATS)]
    rss_after = rss_mb()
    rendered = {
        "cold_seconds": round(cold, 4),
        "seconds": round(statistics.median(render_times), 4),
        "bytes": len(text.encode()),
        "lines": text.count("\n"),
    }
    daemon_memory = {
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": round(rss_after, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "growth_mb": round(rss_after - rss_before, 1),
    }

    nginx = NginxProcess(settings, facts.paths)
    nginx.prepare()
    try:
        began = time.perf_counter()
        nginx.test(text)
        validate = time.perf_counter() - began
        alone = nginx_t(nginx_candidate(facts), facts.paths.config.parent)
        start_seconds = nginx.apply(text)
        memory_start = _settled_memory(nginx)

        extra = synthetic(1, offset=count)
        variants = []
        renders = []
        for i in range(RELOADS):
            new_text, took = render([*containers, *extra] if i % 2 == 0 else containers)
            variants.append(new_text)
            renders.append(took)
        series = reload_series(nginx, variants)
    finally:
        nginx.stop()

    layouts = compare_layouts(count, settings, facts, workdir)

    sketch = measure_sketch(count, settings, facts, workdir)
    validate_seconds = statistics.median([validate, *series["validate"]])
    reload_seconds = series["reload"]["median"]
    total = rendered["seconds"] + validate_seconds + reload_seconds
    return {
        "routes": count,
        "render": rendered,
        "render_change_seconds": round(statistics.median(renders), 4),
        "validate": {
            "seconds": round(validate_seconds, 4),
            "nginx_t_alone": alone,
        },
        "nginx_start_seconds": round(start_seconds, 4),
        "reload": series["reload"],
        "reload_until_old_workers_gone": series["reload_until_old_workers_gone"],
        "render_validate_reload_seconds": round(total, 4),
        "nginx_memory_after_start": memory_start,
        "nginx_memory": series["memory_by_reload"][-1],
        "nginx_memory_by_reload": series["memory_by_reload"],
        "daemon_memory": daemon_memory,
        "naive_layout_nginx_t": layouts["naive"],
        "address_map_layout_nginx_t": layouts["address_map"],
        "address_map_layout_running": sketch,
    }


def nginx_candidate(facts: RenderFacts) -> Path:
    """Where ``NginxProcess.test`` wrote the candidate it just tested."""
    return facts.paths.config.with_name("nginx.conf.candidate")


def run_child(count: int, timeout: float) -> dict[str, Any]:
    """Measure one size in a fresh interpreter (memory figures are per size)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"dyb-scale-{count}-", dir="/tmp"))
    out = workdir / "result.json"
    try:
        subprocess.run(
            [sys.executable, __file__, "--child", str(count), "--out", str(out)],
            check=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        data: dict[str, Any] = json.loads(out.read_text())
        return data
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Print the tables; return the verdicts."""
    print("## Config pipeline and nginx by route count\n")
    rows = []
    for r in results:
        rows.append(
            (
                f"{r['routes']:,}",
                r["render"]["seconds"],
                r["validate"]["seconds"],
                r["validate"]["nginx_t_alone"]["seconds"],
                r["reload"]["median"],
                r["reload_until_old_workers_gone"]["median"],
                r["render_validate_reload_seconds"],
                r["nginx_memory"]["pss_mb"],
                r["nginx_memory"]["rss_mb"],
                r["validate"]["nginx_t_alone"]["peak_rss_mb"],
                r["daemon_memory"]["rss_after_mb"],
                f"{r['render']['bytes'] / 1e6:.2f}",
            )
        )
    print(
        table(
            [
                "routes",
                "render s",
                "validate s",
                "nginx -t s",
                "reload s",
                "old workers gone s",
                "render+validate+reload s",
                "nginx Pss MB",
                "nginx Rss MB",
                "nginx -t peak MB",
                "daemon RSS MB",
                "config MB",
            ],
            rows,
        )
    )
    print("\n## nginx -t by layout (seconds / peak MB of the nginx -t process)\n")
    print(
        table(
            [
                "routes",
                "dockyard (map + upstream per backend set)",
                "naive (upstream + server per host)",
                "map to address, no upstream blocks",
            ],
            [
                (
                    f"{r['routes']:,}",
                    _t_cell(r["validate"]["nginx_t_alone"]),
                    _t_cell(r["naive_layout_nginx_t"]),
                    _t_cell(r["address_map_layout_nginx_t"]),
                )
                for r in results
            ],
        )
    )
    print("\n## The sketch without upstream blocks, run by NginxProcess (not dockyard's output)\n")
    print(
        table(
            [
                "routes",
                "validate s",
                "reload s",
                "old workers gone s",
                "nginx Pss MB after start",
                "after reloads",
            ],
            [
                (
                    f"{r['routes']:,}",
                    r["address_map_layout_running"]["validate_seconds"],
                    r["address_map_layout_running"]["reload"]["median"],
                    r["address_map_layout_running"]["reload_until_old_workers_gone"]["median"],
                    r["address_map_layout_running"]["nginx_memory_after_start"]["pss_mb"],
                    r["address_map_layout_running"]["nginx_memory"]["pss_mb"],
                )
                for r in results
            ],
        )
    )
    print("\n## nginx memory (Pss MB, master + workers) after start and after each reload\n")
    print(
        table(
            ["routes", "after start", "after reloads 1..n"],
            [
                (
                    f"{r['routes']:,}",
                    r["nginx_memory_after_start"]["pss_mb"],
                    ", ".join(str(m["pss_mb"]) for m in r["nginx_memory_by_reload"]),
                )
                for r in results
            ],
        )
    )
    largest = max(results, key=lambda r: r["routes"])
    seconds = largest["render_validate_reload_seconds"]
    memory = largest["nginx_memory"]["pss_mb"]
    verdicts = {
        "routes": largest["routes"],
        "render_validate_reload": {
            "target": TARGET_SECONDS,
            "value": seconds,
            "verdict": verdict(seconds, TARGET_SECONDS),
        },
        "nginx_memory_pss": {
            "target": TARGET_NGINX_MB,
            "value": memory,
            "verdict": verdict(memory, TARGET_NGINX_MB),
        },
    }
    print(
        f"\nat {largest['routes']:,} routes: render + validate + reload {seconds} s "
        f"(target <= {TARGET_SECONDS} s: {verdicts['render_validate_reload']['verdict']}); "
        f"nginx Pss {memory} MB (target <= {TARGET_NGINX_MB} MB: "
        f"{verdicts['nginx_memory_pss']['verdict']})"
    )
    return verdicts


def _t_cell(measured: dict[str, float]) -> str:
    return f"{measured['seconds']} s / {measured['peak_rss_mb']} MB"


def draw(result: dict[str, Any], directory: Path, note: str) -> list[str]:
    """scale_pipeline.png: per route count, dockyard's render + validate + reload next to
    nginx's reload alone, against the 2 s target; its path (none without matplotlib)."""
    if not plots.available():
        print(
            "\nmatplotlib is not installed: no PNG plots (pip install matplotlib)",
            file=sys.stderr,
        )
        return []
    reload_label = "nginx reload: SIGHUP until a new worker answers"
    bars: list[tuple[str, list[plots.Segment]]] = []
    for r in result["results"]:
        if bars:
            bars.append(("", []))  # a gap between route counts
        routes = f"{r['routes']:,} routes"
        bars.append(
            (
                f"{routes}: dockyard\nrender + validate + reload",
                [
                    plots.Segment("render (build_routes + render_config)", r["render"]["seconds"]),
                    plots.Segment(
                        "validate (candidate write + nginx -t)", r["validate"]["seconds"]
                    ),
                    # The same label as the bar below: it is the same measurement, nginx's share.
                    plots.Segment(reload_label, r["reload"]["median"]),
                ],
            )
        )
        bars.append(
            (
                f"{routes}: nginx alone\nreload of the same config",
                [plots.Segment(reload_label, r["reload"]["median"])],
            )
        )
        gone = r.get("reload_until_old_workers_gone")
        if gone:
            bars.append(
                (
                    f"{routes}: nginx alone\nreload until old workers gone",
                    [
                        plots.Segment(
                            "nginx reload: SIGHUP until old workers exited", gone["median"]
                        )
                    ],
                )
            )
    path = directory / "scale_pipeline.png"
    if not plots.stacked_bars(
        path,
        "Config pipeline at scale: dockyard vs nginx's own reload (medians)",
        bars,
        "seconds",
        note=note,
        reference=TARGET_SECONDS,
        reference_label=f"target at 10,000 routes: {TARGET_SECONDS:g} s",
        digits=3,
    ):
        return []
    print(f"plot written to {path}")
    return [str(path)]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every size in its own process, then report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--routes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--smoke", action="store_true", help="tiny run: 50 routes")
    parser.add_argument("--plots", type=Path, help="directory for the PNG chart (e.g. docs/img)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "scale.json")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    exit_on_sigterm()
    # The daemon's modules log through structlog; keep their info lines off the tables.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    if args.child is not None:
        workdir = args.out.parent
        args.out.write_text(json.dumps(measure(args.child, workdir)))
        return 0
    sizes = [50] if args.smoke else args.routes
    if not all(1 <= n <= 100_000 for n in sizes):
        parser.error("--routes from 1 to 100000")
    began = time.time()
    host = machine()  # before the runs: its load_average says how busy the machine was
    results = []
    for count in sizes:
        print(f"measuring {count} routes ...", file=sys.stderr, flush=True)
        results.append(run_child(count, timeout=600))
    verdicts = report(results)
    command = command_line("scale.py", argv)
    result: dict[str, Any] = {
        "benchmark": "scale",
        "args": {"routes": sizes, "smoke": args.smoke},
        "command": command,
        "machine": host,
        "started_at": began,
        "duration_seconds": round(time.time() - began, 1),
        "targets": verdicts,
        "results": results,
    }
    result["plots"] = draw(result, args.plots, plots.note(host, command)) if args.plots else []
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
