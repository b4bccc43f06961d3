#!/usr/bin/env python3
"""Benchmark: how soon a started container is served through the proxy.

Measures, against the real daemon (`python -m daemon run` on free loopback ports, default
settings, its own label prefix) and real containers (tests/backend.py in the test image):

1. Sequential: ``--runs`` containers (default 20, plus one warm-up run not counted), started
   one at a time with the docker SDK, ``--gap`` seconds apart (default: the daemon's reload
   cooldown + 0.4 s, so every start is a lone start; a start inside the cooldown waits).
   For each: seconds from the ``docker start`` call to the first HTTP 200 through the proxy
   (Host header, fresh connection, polled every 5 ms), and the floor, the first 200 straight
   from the container's IP, both polled during the same start. The daemon's JSON log
   (``routes_applied`` with ``reload_seconds``) and the engine's ``start`` event give the
   breakdown: start call, event, pass (debounce + snapshot + render + nginx -t), reload,
   first 200. After the runs, snapshot / render / ``nginx -t`` are timed alone on the same
   state to split the pass.
2. Burst: ``--burst`` pre-created containers (default 50) started at once from a thread pool
   calling the SDK's ``start``; time until every host answers 200 through the proxy, the
   number of nginx reloads (``nginx_reloaded`` log events) and the floor (all start calls
   returned; all backends answering on their IPs). Repeated ``--burst-repeats`` times
   (default 3), each with a fresh daemon; then once more with docker alone (no daemon, no
   polling) for the engine's own floor.
3. Load: ``--background-runs`` starts (default 5) as in 1, with ``--background`` other
   routed containers running (default 400, each only ``sleep infinity``), because every
   reconcile pass reads (inspects) every routed container.

Run from the repository root, as root with dockerd and nginx available:

    .venv/bin/python bench/start_to_200.py --runs 20 --burst 50 --plots docs/img
    .venv/bin/python bench/start_to_200.py --smoke        # 2 runs, burst of 3 (CI)

Prints markdown tables and writes bench/results/start_to_200.json (or ``--out``) and, with
``--plots DIR``, start_to_200.png: the sequential starts next to the direct floor and the
peers' documented minimums (estimates, not runs; skipped without matplotlib). Every
container carries ``dockyard-bench=<run id>`` and is removed before the script exits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import plots
from common import (
    RESULTS_DIR,
    Daemon,
    command_line,
    container_ip,
    create_backends,
    docker_client,
    docker_events,
    ensure_image,
    exit_on_sigterm,
    first_entry,
    machine,
    new_run_id,
    probe,
    remove_labelled,
    running_daemon,
    start_sleepers,
    summary,
    table,
    time_nginx_t,
    verdict,
    write_json,
)

from daemon.rendering import make_environment, render_config
from daemon.routing import build_routes
from daemon.running import builtin_templates, detect_facts
from daemon.settings import Settings
from daemon.sources import DockerSource

POLL = 0.005
# Between sweeps over all hosts in the burst: the poller must not starve dockerd of CPU.
SWEEP_PAUSE = 0.02
TARGET_MEDIAN = 0.3
TARGET_BURST_SECONDS = 3.0
TARGET_BURST_RELOADS = 3
# The peers' documented defaults, for the plot's estimated bars (they are not run here).
TRAEFIK_V1_THROTTLE = 2.0  # providersThrottleDuration
# The issue quotes docker-gen's wait as 100-500 ms (-wait 100ms:500ms); nginx-proxy's own
# app/Procfile sets no -wait, so this is the shorter end of what users configure.
DOCKER_GEN_WAIT = 0.1


def one_start(client: Any, daemon: Daemon, container_id: str, host: str) -> dict[str, Any]:
    """Start one container; time the first 200 through the proxy and directly."""
    seen: dict[str, float] = {}
    stop = threading.Event()

    def poll_proxy() -> None:
        deadline = time.time() + 15
        while not stop.is_set() and time.time() < deadline:
            status = probe("127.0.0.1", daemon.port, host, timeout=2.0)
            now = time.time()
            if status not in (None, 404):
                seen.setdefault("proxy_routed", now)
            if status == 200:
                seen["proxy_200"] = now
                return
            time.sleep(POLL)

    poller = threading.Thread(target=poll_proxy, name="poll-proxy", daemon=True)
    poller.start()
    t_call = time.time()
    client.api.start(container_id)
    seen["start_returned"] = time.time()
    address = container_ip(client, container_id)
    seen["ip_known"] = time.time()
    deadline = time.time() + 10
    while address is not None and time.time() < deadline:
        if probe(address, 8080, host, timeout=1.0) == 200:
            seen["direct_200"] = time.time()
            break
        time.sleep(POLL)
    poller.join(timeout=16)
    stop.set()
    return {"t_call": t_call, "container_id": container_id, "host": host, "abs": seen}


def _median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return round(statistics.median(times), 4)


def pass_components(daemon: Daemon, repeats: int = 5) -> dict[str, Any]:
    """Time the parts of one reconcile pass alone, on the daemon's current state."""
    settings = Settings(
        http_port=daemon.port,
        https_port=daemon.proxy.https_port,
        state_dir=daemon.proxy.state_dir,
        label_prefix=daemon.run_id,
    )
    source = DockerSource(settings)
    snap = source.snapshot()
    facts = detect_facts(settings)
    env = make_environment(None, builtin_templates())

    def render() -> str:
        table = build_routes(snap.containers, snap.context).table
        return render_config(table, settings, facts, env)

    live = daemon.proxy.state_dir / "nginx" / "nginx.conf"
    nginx_t, _ = time_nginx_t(live, live.parent, repeats, timeout=60)
    return {
        "containers": len(snap.containers),
        "snapshot_seconds": _median_seconds(source.snapshot, repeats),
        "render_seconds": _median_seconds(render, repeats),
        "nginx_t_seconds": round(statistics.median(nginx_t), 4),
    }


def default_gap() -> float:
    """Pause between sequential starts: longer than the daemon's reload cooldown, so each
    start is a lone start after a quiet spell (a start inside the cooldown waits for it)."""
    return round(Settings().reload_interval + 0.4, 3)


def measure_sequential(
    client: Any,
    image: str,
    runs: int,
    *,
    warmup: int = 1,
    background: int = 0,
    gap: float = 0.0,
) -> dict[str, Any]:
    """``runs`` + ``warmup`` containers started one after the other, one daemon.

    ``background`` sleeping containers with routes are started first, so every pass has to
    read that many more containers. ``gap``: seconds between one start's first 200 and the
    next start (plus room for a pass over the background containers).
    """
    run_id = new_run_id()
    hosts = [f"s{i}.{run_id}.bench.test" for i in range(runs + warmup)]
    # A pass reads every routed container: leave room for it (and a redundant one) per run.
    gap = gap + 0.003 * background
    try:
        start_sleepers(client, image, run_id, background)
        ids = create_backends(client, image, run_id, hosts)
        with running_daemon(run_id) as daemon, docker_events(client, run_id) as events:
            time.sleep(0.5 + 2 * gap)
            records = []
            for container_id, host in zip(ids, hosts, strict=True):
                records.append(one_start(client, daemon, container_id, host))
                time.sleep(gap)  # let the pass finish so runs do not overlap
            components = pass_components(daemon)
            logs = daemon.logs()
        return {
            "run_id": run_id,
            "background": background,
            "gap_seconds": gap,
            "records": _enrich(records, logs, events, background)[warmup:],
            "components": components,
        }
    finally:
        remove_labelled(client, run_id)


def _enrich(
    records: list[dict[str, Any]],
    logs: list[dict[str, Any]],
    events: list[dict[str, Any]],
    background: int = 0,
) -> list[dict[str, Any]]:
    """Add daemon log and engine event times, as seconds after each start call."""
    for index, rec in enumerate(records):
        t_call = rec["t_call"]
        t_next = records[index + 1]["t_call"] if index + 1 < len(records) else float("inf")
        times = dict(rec["abs"])
        for action, key in (("start", "docker_event"), ("connect", "network_connect")):
            event = next(
                (
                    e
                    for e in events
                    if e.get("Action") == action and e.get("id") == rec["container_id"]
                ),
                None,
            )
            if event is not None:
                times[key] = event["t"]
        applied = first_entry(logs, "routes_applied", t_call, total=background + index + 1)
        if applied is not None:
            times["routes_applied"] = applied["t"]
            times["reload_began"] = applied["t"] - float(applied["reload_seconds"])
            rec["reload_seconds"] = applied["reload_seconds"]
        rec["reloads"] = sum(
            1 for e in logs if e.get("event") == "nginx_reloaded" and t_call <= e["t"] < t_next
        )
        rec["seconds"] = {key: round(value - t_call, 4) for key, value in times.items()}
        del rec["abs"]
    return records


def measure_burst(client: Any, image: str, count: int) -> dict[str, Any]:
    """``count`` pre-created containers started at once; one fresh daemon."""
    run_id = new_run_id()
    hosts = [f"b{i}.{run_id}.bench.test" for i in range(count)]
    try:
        ids = create_backends(client, image, run_id, hosts)
        with running_daemon(run_id) as daemon, docker_events(client, run_id) as events:
            time.sleep(0.5)
            result = _burst(client, daemon, ids, hosts)
            time.sleep(1.5)  # a trailing pass (if any) shows up in the log
            result["components"] = pass_components(daemon)
            logs = daemon.logs()
        t0 = result["t0"]
        window = [e for e in logs if e.get("t", 0.0) >= t0]
        result["reloads"] = sum(1 for e in window if e.get("event") == "nginx_reloaded")
        result["passes"] = [
            {
                "at": round(e["t"] - t0, 3),
                "reload_began": round(e["t"] - float(e["reload_seconds"]) - t0, 3),
                "reload_seconds": e["reload_seconds"],
                "total": e["total"],
                "added": e["added"],
            }
            for e in window
            if e.get("event") == "routes_applied"
        ]
        starts = sorted(
            e["t"] - t0 for e in events if e.get("Type") == "container" and e["Action"] == "start"
        )
        result["docker_events"] = {
            "first_start": round(starts[0], 3) if starts else None,
            "last_start": round(starts[-1], 3) if starts else None,
        }
        result["run_id"] = run_id
        return result
    finally:
        remove_labelled(client, run_id)


def docker_only_floor(client: Any, image: str, count: int) -> dict[str, Any]:
    """``count`` containers started at once with no daemon and no polling: docker alone."""
    run_id = new_run_id()
    hosts = [f"f{i}.{run_id}.bench.test" for i in range(count)]
    try:
        ids = create_backends(client, image, run_id, hosts)
        time.sleep(0.5)
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=count) as pool:
            for future in [pool.submit(client.api.start, cid) for cid in ids]:
                future.result(timeout=120)
        all_returned = time.time() - t0
        addresses = [container_ip(client, cid) for cid in ids]
        pending = {i for i, address in enumerate(addresses) if address is not None}
        deadline = time.time() + 60
        while pending and time.time() < deadline:
            for i in sorted(pending):
                address = addresses[i]
                if address is not None and probe(address, 8080, hosts[i], timeout=0.5) == 200:
                    pending.discard(i)
            time.sleep(SWEEP_PAUSE)
        return {
            "containers": count,
            "all_start_calls_returned": round(all_returned, 3),
            "all_direct_200": None if pending else round(time.time() - t0, 3),
        }
    finally:
        remove_labelled(client, run_id)


def _burst(client: Any, daemon: Daemon, ids: list[str], hosts: list[str]) -> dict[str, Any]:
    count = len(ids)
    returned: dict[int, float] = {}
    addresses: dict[int, str | None] = {}
    direct: dict[int, float] = {}
    routed: dict[int, float] = {}
    served: dict[int, float] = {}

    def start_one(index: int) -> None:
        client.api.start(ids[index])
        returned[index] = time.time()
        addresses[index] = container_ip(client, ids[index])

    t0 = time.time()
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(start_one, i) for i in range(count)]
        deadline = t0 + 60
        while (len(served) < count or len(direct) < count) and time.time() < deadline:
            for i in range(count):
                address = addresses.get(i)
                if (
                    i not in direct
                    and address is not None
                    and probe(address, 8080, hosts[i], timeout=0.5) == 200
                ):
                    direct[i] = time.time()
                if i not in served:
                    status = probe("127.0.0.1", daemon.port, hosts[i], timeout=1.0)
                    if status not in (None, 404):
                        routed.setdefault(i, time.time())
                    if status == 200:
                        served[i] = time.time()
            time.sleep(SWEEP_PAUSE)
        for future in futures:
            future.result(timeout=60)

    def last(times: dict[int, float]) -> float | None:
        return round(max(times.values()) - t0, 3) if len(times) == count else None

    return {
        "t0": t0,
        "containers": count,
        "all_start_calls_returned": last(returned),
        "all_direct_200": last(direct),
        "all_proxy_routed": last(routed),
        "all_proxy_200": last(served),
        "proxy_200_missing": count - len(served),
    }


def report(
    sequential: dict[str, Any], bursts: list[dict[str, Any]], floor: dict[str, Any]
) -> dict[str, Any]:
    """Print the markdown tables; return the summary that goes into the JSON file."""
    records = sequential["records"]
    keys = [
        ("network_connect", "engine network `connect` event"),
        ("start_returned", "`docker start` call returned"),
        ("docker_event", "engine `start` event"),
        ("direct_200", "first 200 from the container IP (floor)"),
        ("reload_began", "daemon began the nginx reload"),
        ("routes_applied", "new config answering (`routes_applied`)"),
        ("proxy_routed", "proxy stops answering 404"),
        ("proxy_200", "**first 200 through the proxy**"),
    ]
    stats = {
        key: summary(r["seconds"][key] for r in records if key in r["seconds"]) for key, _ in keys
    }
    parts = {
        "event_to_reload": summary(
            r["seconds"]["reload_began"] - r["seconds"]["docker_event"]
            for r in records
            if {"reload_began", "docker_event"} <= r["seconds"].keys()
        ),
        "reload": summary(float(r["reload_seconds"]) for r in records if "reload_seconds" in r),
        "proxy_minus_direct": summary(
            r["seconds"]["proxy_200"] - r["seconds"]["direct_200"]
            for r in records
            if {"proxy_200", "direct_200"} <= r["seconds"].keys()
        ),
    }
    print(f"## docker start -> first 200 ({len(records)} containers, one at a time)\n")
    rows = [
        (label, stats[key]["median"], stats[key]["p95"], stats[key]["min"], stats[key]["max"])
        for key, label in keys
    ]
    print(table(["seconds after the start call", "median", "p95", "min", "max"], rows))
    print()
    print(
        table(
            ["part", "median", "p95"],
            [
                (
                    "engine event -> reload began (debounce + pass)",
                    parts["event_to_reload"]["median"],
                    parts["event_to_reload"]["p95"],
                ),
                ("nginx reload (SIGHUP -> new generation)", *_mp(parts["reload"])),
                ("proxy 200 minus direct 200", *_mp(parts["proxy_minus_direct"])),
            ],
        )
    )
    comp = sequential["components"]
    print(
        f"\npass parts timed alone ({comp['containers']} containers): snapshot "
        f"{comp['snapshot_seconds']} s, render {comp['render_seconds']} s, "
        f"nginx -t {comp['nginx_t_seconds']} s; reloads per start: "
        f"{sorted({r['reloads'] for r in records})}"
    )
    median = stats["proxy_200"]["median"]
    print(f"\ntarget median <= {TARGET_MEDIAN} s: {median} s -> {verdict(median, TARGET_MEDIAN)}")

    print(f"\n## {bursts[0]['containers'] if bursts else 0} containers started at once\n")
    burst_keys = [
        "all_start_calls_returned",
        "all_direct_200",
        "all_proxy_routed",
        "all_proxy_200",
        "reloads",
    ]
    print(
        table(
            ["repeat", *burst_keys, "passes (at s: total routes)"],
            [
                (
                    i + 1,
                    *(b[k] for k in burst_keys),
                    ", ".join(f"{p['at']}: {p['total']}" for p in b["passes"]),
                )
                for i, b in enumerate(bursts)
            ],
        )
    )
    print(
        f"\ndocker alone (no daemon, no polling): all {floor['containers']} start calls "
        f"returned after {floor['all_start_calls_returned']} s, all answering on their IPs "
        f"after {floor['all_direct_200']} s"
    )
    live = [b["all_proxy_200"] for b in bursts if b["all_proxy_200"] is not None]
    reloads = [b["reloads"] for b in bursts]
    burst_summary = {
        "all_proxy_200": summary(live),
        "all_start_calls_returned": summary(
            b["all_start_calls_returned"]
            for b in bursts
            if b["all_start_calls_returned"] is not None
        ),
        "all_direct_200": summary(
            b["all_direct_200"] for b in bursts if b["all_direct_200"] is not None
        ),
        "reloads": summary(reloads),
        "all_live": len(live) == len(bursts),
        "docker_only_floor": floor,
    }
    worst_live = max(live) if len(live) == len(bursts) else float("inf")
    worst_reloads = max(reloads, default=0)
    print(
        f"\ntarget all live <= {TARGET_BURST_SECONDS} s: worst {worst_live} s -> "
        f"{verdict(worst_live, TARGET_BURST_SECONDS)}; target reloads <= "
        f"{TARGET_BURST_RELOADS}: worst {worst_reloads} -> "
        f"{verdict(worst_reloads, TARGET_BURST_RELOADS)}"
    )
    return {
        "sequential": {"seconds": stats, "parts": parts, "components": comp},
        "burst": burst_summary,
        "targets": {
            "median_start_to_200": {
                "target": TARGET_MEDIAN,
                "value": median,
                "verdict": verdict(median, TARGET_MEDIAN),
            },
            "burst_all_live": {
                "target": TARGET_BURST_SECONDS,
                "value": worst_live,
                "verdict": verdict(worst_live, TARGET_BURST_SECONDS),
            },
            "burst_reloads": {
                "target": TARGET_BURST_RELOADS,
                "value": worst_reloads,
                "verdict": verdict(worst_reloads, TARGET_BURST_RELOADS),
            },
        },
    }


def report_loaded(
    sequential: dict[str, Any], loaded: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Print how start -> 200 grows with the number of containers a pass has to read."""
    rows = []
    for series in (sequential, loaded):
        if series is None:
            continue
        records = series["records"]
        comp = series["components"]
        rows.append(
            {
                "routed_containers": comp["containers"],
                "starts": len(records),
                "proxy_200": summary(r["seconds"]["proxy_200"] for r in records),
                "event_to_reload": summary(
                    r["seconds"]["reload_began"] - r["seconds"]["docker_event"]
                    for r in records
                    if {"reload_began", "docker_event"} <= r["seconds"].keys()
                ),
                "snapshot_seconds": comp["snapshot_seconds"],
                "nginx_t_seconds": comp["nginx_t_seconds"],
            }
        )
    print("\n## start -> 200 by number of routed containers (a pass reads all of them)\n")
    print(
        table(
            [
                "routed containers",
                "starts",
                "proxy 200 median",
                "p95",
                "event -> reload began median",
                "snapshot alone",
                "nginx -t alone",
            ],
            [
                (
                    r["routed_containers"],
                    r["starts"],
                    r["proxy_200"]["median"],
                    r["proxy_200"]["p95"],
                    r["event_to_reload"]["median"],
                    r["snapshot_seconds"],
                    r["nginx_t_seconds"],
                )
                for r in rows
            ],
        )
    )
    return rows


def _mp(stats: dict[str, float]) -> tuple[float, float]:
    return stats["median"], stats["p95"]


def _sighup_to_proxy_200(records: Sequence[dict[str, Any]]) -> float | None:
    """Median seconds from the daemon's SIGHUP to the first 200 through the proxy: an nginx
    reload as clients see it (longer than the daemon's ``reload_seconds``)."""
    spans = [
        r["seconds"]["proxy_200"] - r["seconds"]["reload_began"]
        for r in records
        if {"proxy_200", "reload_began"} <= r["seconds"].keys()
    ]
    return round(statistics.median(spans), 4) if spans else None


def draw(result: dict[str, Any], directory: Path, note: str) -> list[str]:
    """start_to_200.png: dockyard's start -> 200 (median, p95), the direct floor, and the
    peers' documented minimums on this run's floors; its path (none without matplotlib)."""
    if not plots.available():
        print(
            "\nmatplotlib is not installed: no PNG plots (pip install matplotlib)",
            file=sys.stderr,
        )
        return []
    seconds = result["summary"]["sequential"]["seconds"]
    runs = seconds["proxy_200"]["n"]
    measured = "dockyard, measured"
    bars: list[tuple[str, list[plots.Segment]]] = [
        (
            f"dockyard: docker start → first 200\nthrough the proxy, median of {runs}",
            [plots.Segment(measured, seconds["proxy_200"]["median"])],
        ),
        ("dockyard: same, p95", [plots.Segment(measured, seconds["proxy_200"]["p95"])]),
    ]
    direct = seconds.get("direct_200", {}).get("n")
    if direct:
        bars.append(
            (
                "backend answering directly on its IP\n(floor without a proxy), median",
                [
                    plots.Segment(
                        "backend directly (floor), measured", seconds["direct_200"]["median"]
                    )
                ],
            )
        )
    # The peers' bars start from this run's engine start event (what every proxy waits for)
    # and add their documented delay; without the event they are the delay alone.
    event = seconds["docker_event"]["median"] if seconds.get("docker_event", {}).get("n") else None
    start = [plots.Segment("engine start event, measured here", event)] if event else []
    reload = _sighup_to_proxy_200(result["sequential"]["records"])
    wait = "documented or quoted delay, not run"
    bars += [
        ("", []),
        (
            "nginx-proxy (docker-gen -wait 100ms:500ms)\n(estimate, not run)",
            [
                *start,
                plots.Segment(wait, DOCKER_GEN_WAIT, estimated=True),
                *(
                    [plots.Segment("nginx reload as clients see it, measured here", reload)]
                    if reload
                    else []
                ),
            ],
        ),
        (
            "Traefik v1 (providersThrottleDuration 2 s)\n(documented default, not run)",
            [*start, plots.Segment(wait, TRAEFIK_V1_THROTTLE, estimated=True)],
        ),
    ]
    how = (
        "estimates: nginx-proxy = "
        + ("engine start event + " if event else "")
        + f"{DOCKER_GEN_WAIT:g} s wait"
        + (" + nginx reload (SIGHUP → first 200 through the proxy)" if reload else "")
        + ", without docker-gen's template generation; Traefik v1 = "
        + ("engine start event + " if event else "")
        + f"{TRAEFIK_V1_THROTTLE:g} s"
        + ("" if event else " (no start event recorded)")
        + "; medians of this run"
    )
    path = directory / "start_to_200.png"
    if not plots.stacked_bars(
        path,
        "docker start → first 200 through the proxy, one start at a time",
        bars,
        "seconds after the docker start call",
        note=f"{note}\n{how}",
        reference=TARGET_MEDIAN,
        reference_label=f"target (dockyard median): {TARGET_MEDIAN:g} s",
        digits=3,
    ):
        return []
    print(f"plot written to {path}")
    return [str(path)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run both measurements, write the results, plot them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20, help="sequential starts (20)")
    parser.add_argument("--burst", type=int, default=50, help="containers started at once (50)")
    parser.add_argument("--burst-repeats", type=int, default=3, help="burst repetitions (3)")
    parser.add_argument(
        "--background", type=int, default=400, help="other routed containers, 2nd series (400)"
    )
    parser.add_argument(
        "--background-runs", type=int, default=5, help="starts in that series (5); 0: skip"
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=default_gap(),
        help="seconds between sequential starts (default: the daemon's reload cooldown + 0.4)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run: 2 starts, burst of 3")
    parser.add_argument("--plots", type=Path, help="directory for the PNG chart (e.g. docs/img)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "start_to_200.json")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.burst, args.burst_repeats = 2, 3, 1
        args.background, args.background_runs = 3, 1
    if not (1 <= args.runs <= 500 and 1 <= args.burst <= 500 and 1 <= args.burst_repeats <= 20):
        parser.error("--runs and --burst from 1 to 500, --burst-repeats from 1 to 20")
    if not (0 <= args.background <= 2000 and 0 <= args.background_runs <= 100):
        parser.error("--background from 0 to 2000, --background-runs from 0 to 100")
    if not 0 <= args.gap <= 60:
        parser.error("--gap from 0 to 60 seconds")

    exit_on_sigterm()
    client = docker_client(pool=max(64, args.burst + 8))
    try:
        image = ensure_image(client)
        began = time.time()
        host = machine()  # before the runs: its load_average says how busy the machine was
        sequential = measure_sequential(client, image, args.runs, gap=args.gap)
        loaded = None
        if args.background_runs:
            loaded = measure_sequential(
                client, image, args.background_runs, background=args.background, gap=args.gap
            )
        bursts = [measure_burst(client, image, args.burst) for _ in range(args.burst_repeats)]
        floor = docker_only_floor(client, image, args.burst)
        summary_data = report(sequential, bursts, floor)
        summary_data["loaded"] = report_loaded(sequential, loaded)
        command = command_line("start_to_200.py", argv)
        result: dict[str, Any] = {
            "benchmark": "start_to_200",
            "args": {
                "runs": args.runs,
                "burst": args.burst,
                "burst_repeats": args.burst_repeats,
                "smoke": args.smoke,
                "background": args.background,
                "background_runs": args.background_runs,
                "gap": args.gap,
                "daemon_reload_interval": Settings().reload_interval,
            },
            "command": command,
            "machine": host,
            "started_at": began,
            "duration_seconds": round(time.time() - began, 1),
            "summary": summary_data,
            "sequential": sequential,
            "loaded": loaded,
            "bursts": bursts,
            "docker_only_floor": floor,
        }
        result["plots"] = draw(result, args.plots, plots.note(host, command)) if args.plots else []
        write_json(args.out, result)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
