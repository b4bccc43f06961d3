#!/usr/bin/env python3
"""Benchmark: the daemon's memory and CPU at idle with 0, 100 and 1,000 routes.

For each ``--routes`` count N, a fresh daemon (`python -m daemon run` on free loopback ports,
default settings, its own label prefix) is given N routes and left alone:

* routes from containers when N <= ``--containers-up-to`` (default 100): N labelled
  containers that only ``sleep infinity`` (one host each, like start_to_200's background
  containers), started before the daemon, so its first pass sees them all;
* above that, from one route file in the state dir's ``routes.d`` with N routes (one host and
  one distinct ``127.0.0.1:port`` server each), because 1,000 containers take minutes to
  start on a 2-vCPU machine. Both are real route sources; a pass reads both.

Once ``routes_applied`` reports N routes, the script waits ``--settle`` s (default 5), then
reads the daemon process's utime + stime (/proc/PID/stat, all threads) and RSS over an idle
window of ``--window`` s (default 60): CPU seconds and percent of one core, RSS at the end
and its peak (VmHWM, which includes the passes that built the routes). nginx's memory
(Pss and Rss over master + workers) is recorded for context.

Run from the repository root, as root with dockerd and nginx available:

    .venv/bin/python bench/footprint.py --routes 0 100 1000 --plots docs/img
    .venv/bin/python bench/footprint.py --smoke         # 0 and 5 routes, 3 s windows (CI)

Prints a markdown table and writes bench/results/footprint.json (or ``--out``) and, with
``--plots DIR``, footprint.png (skipped with a message when matplotlib is not installed).
Every container carries ``dockyard-bench=<run id>`` and is removed before the script exits.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plots
from common import (
    RESULTS_DIR,
    Daemon,
    command_line,
    docker_client,
    ensure_image,
    exit_on_sigterm,
    machine,
    new_run_id,
    peak_rss_mb,
    process_tree_memory,
    remove_labelled,
    rss_mb,
    running_daemon,
    start_sleepers,
    table,
    wait_until,
    write_json,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def threads(pid: int) -> int:
    """Number of threads of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def write_route_file(daemon: Daemon, run_id: str, count: int) -> None:
    """One route file with ``count`` routes (host and server distinct for each)."""
    routes = daemon.proxy.state_dir / "routes.d"
    routes.mkdir(parents=True, exist_ok=True)
    lines = ["routes:"]
    for i in range(count):
        lines += [
            f"  r{i}:",
            f"    host: r{i}.{run_id}.bench.test",
            f'    servers: ["http://127.0.0.1:{20000 + i}"]',
        ]
    temp = routes / ".footprint.yaml.tmp"
    temp.write_text("\n".join(lines) + "\n")
    temp.replace(routes / "footprint.yaml")


def routes_total(daemon: Daemon) -> int | None:
    """``total`` of the last ``routes_applied`` log event, None before the first."""
    totals = [e.get("total") for e in daemon.logs() if e.get("event") == "routes_applied"]
    return int(totals[-1]) if totals and totals[-1] is not None else None


def measure(
    client: Any, image: str, count: int, *, containers_up_to: int, settle: float, window: float
) -> dict[str, Any]:
    """One daemon with ``count`` routes, idle for ``window`` s."""
    run_id = new_run_id()
    source = "containers" if count <= containers_up_to else "route file"
    try:
        if source == "containers" and count:
            print(f"starting {count} sleeping containers ...", file=sys.stderr, flush=True)
            start_sleepers(client, image, run_id, count, tag="fp")
        with running_daemon(run_id) as daemon:
            if source == "route file" and count:
                write_route_file(daemon, run_id, count)
            began = time.monotonic()
            if not wait_until(lambda: routes_total(daemon) == count, 120, interval=0.2):
                msg = f"routes_applied never reported {count} routes (last {routes_total(daemon)})"
                raise RuntimeError(msg)
            applied_after = time.monotonic() - began
            time.sleep(settle)
            pid = daemon.proxy.process.pid
            rss_before = rss_mb(pid)
            cpu_before, t_before = cpu_seconds(pid), time.monotonic()
            time.sleep(window)
            cpu_after, t_after = cpu_seconds(pid), time.monotonic()
            elapsed = t_after - t_before
            cpu = cpu_after - cpu_before
            master = daemon.nginx_pid()
            passes = sum(1 for e in daemon.logs() if e.get("event") == "routes_applied")
            result = {
                "routes": count,
                "source": source,
                "applied_after_seconds": round(applied_after, 2),
                "window_seconds": round(elapsed, 1),
                "cpu_seconds": round(cpu, 3),
                "cpu_percent": round(100 * cpu / elapsed, 3),
                "rss_mb_before": round(rss_before, 1),
                "rss_mb": round(rss_mb(pid), 1),
                "peak_rss_mb": round(peak_rss_mb(pid), 1),
                "threads": threads(pid),
                "passes_applied": passes,
                "nginx": process_tree_memory(master) if master else None,
            }
    finally:
        remove_labelled(client, run_id)
    return result


def report(results: Sequence[dict[str, Any]]) -> None:
    """Print the table."""
    print("\n## Daemon at idle, by number of routes\n")
    print(
        table(
            [
                "routes",
                "from",
                "idle window s",
                "daemon CPU s",
                "daemon CPU % of a core",
                "daemon RSS MB",
                "daemon peak RSS MB",
                "threads",
                "nginx Pss MB",
                "nginx Rss MB",
            ],
            [
                (
                    f"{r['routes']:,}",
                    r["source"],
                    r["window_seconds"],
                    r["cpu_seconds"],
                    r["cpu_percent"],
                    r["rss_mb"],
                    r["peak_rss_mb"],
                    r["threads"],
                    r["nginx"]["pss_mb"] if r["nginx"] else "?",
                    r["nginx"]["rss_mb"] if r["nginx"] else "?",
                )
                for r in results
            ],
        )
    )


def draw(result: dict[str, Any], directory: Path, note: str) -> list[str]:
    """footprint.png: daemon RSS and nginx Pss per route count; its path (none without
    matplotlib)."""
    if not plots.available():
        print(
            "\nmatplotlib is not installed: no PNG plots (pip install matplotlib)",
            file=sys.stderr,
        )
        return []
    results = result["results"]
    path = directory / "footprint.png"
    # The route source is in the label: containers and a route file are different inputs.
    groups = [f"{r['routes']:,} routes\n(from {r['source']})" for r in results]
    series = {
        "daemon RSS": [r["rss_mb"] for r in results],
        "nginx Pss (master + workers)": [
            r["nginx"]["pss_mb"] if r["nginx"] else None for r in results
        ],
    }
    window = result["args"]["window"]
    title = f"Memory at idle by number of routes ({window:g} s idle window)"
    if not plots.bar_chart(path, title, groups, series, "MB", note=note):
        return []
    print(f"plot written to {path}")
    return [str(path)]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every size with its own daemon, then report and plot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--routes", type=int, nargs="+", default=[0, 100, 1000])
    parser.add_argument(
        "--containers-up-to",
        type=int,
        default=100,
        help="route counts up to this come from sleeping containers, larger from a file",
    )
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before the window")
    parser.add_argument("--window", type=float, default=60.0, help="idle window in seconds")
    parser.add_argument("--smoke", action="store_true", help="tiny run: 0 and 5 routes, 3 s")
    parser.add_argument("--plots", type=Path, help="directory for the PNG chart (e.g. docs/img)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "footprint.json")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.smoke:
        args.routes, args.settle, args.window = [0, 5], 1.0, 3.0
    if not all(0 <= n <= 100_000 for n in args.routes):
        parser.error("--routes from 0 to 100000")
    began = time.time()
    host = machine()
    client = docker_client()
    image = ensure_image(client)
    results = []
    for count in args.routes:
        print(f"measuring {count} routes ...", file=sys.stderr, flush=True)
        results.append(
            measure(
                client,
                image,
                count,
                containers_up_to=args.containers_up_to,
                settle=args.settle,
                window=args.window,
            )
        )
    report(results)
    command = command_line("footprint.py", argv)
    result: dict[str, Any] = {
        "benchmark": "footprint",
        "args": {
            "routes": args.routes,
            "containers_up_to": args.containers_up_to,
            "settle": args.settle,
            "window": args.window,
            "smoke": args.smoke,
        },
        "command": command,
        "machine": host,
        "started_at": began,
        "duration_seconds": round(time.time() - began, 1),
        "results": results,
    }
    result["plots"] = draw(result, args.plots, plots.note(host, command)) if args.plots else []
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
