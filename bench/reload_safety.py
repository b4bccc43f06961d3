#!/usr/bin/env python3
"""Benchmark: what nginx reloads do to traffic that is already flowing through the proxy.

Two parts, each against the real daemon (`python -m daemon run` on free loopback ports, its
own label prefix) and real containers (tests/backend.py in the test image):

1. ``load`` (issue 7, item 4): ``--stable`` routed backends (default 2) are served by one
   ``wrk`` each (keep-alive, ``--connections`` per wrk, default 8; ``--latency``) from 2 s
   before to 2 s after the churn: ``--churn`` other labelled containers (default 100,
   pre-created) are started and stopped in waves of ``--wave`` (default 10): start a wave
   (all at once), wait ``--pause`` s (default 1.5), stop it, wait again. Every start and stop
   is a route change, so nginx reloads all the time (default 1 s reload cooldown). Counted:
   wrk's requests, non-2xx/3xx answers and socket errors (connect, read, write, timeout)
   for the stable routes, and the ``nginx_reloaded`` events of the daemon log in that
   window. Target: zero failed requests. The daemon runs with ``DOCKYARD_ACCESS_LOG=off``
   (wrk's hundreds of thousands of requests would otherwise be logged into the daemon log).
2. ``websockets`` (item 5): ``--sockets`` WebSocket connections (default 200, asyncio
   ``websockets`` client) are opened through the proxy to one echo backend (label
   ``websocket: true``), then ``--reloads`` reloads (default 50) are caused one at a time
   by rewriting a route file in the state dir's ``routes.d`` (a real route change: another
   upstream address) and waiting for the ``nginx_reloaded`` log event. After every reload
   each connection must echo a message; after the last one, all must still echo. nginx's
   processes are sampled every ``--sample`` s (default 0.25) throughout: workers by state
   (``nginx: worker process`` vs ``... is shutting down``), and Rss / Pss / private memory
   (``/proc/PID/smaps_rollup``) of each. After the reloads the sockets are closed and the
   time until the old workers are gone is measured. Then, with a fresh daemon and
   ``DOCKYARD_WORKER_SHUTDOWN_TIMEOUT=--cut-timeout`` (default 5s), what that timeout does
   to held WebSockets: the connections are opened, one reload, and the script records when
   they are closed by the proxy (what any finite worker_shutdown_timeout does to a
   connection that lives longer).

Run from the repository root, as root with dockerd, nginx and wrk available:

    .venv/bin/python bench/reload_safety.py                 # both parts, full size
    .venv/bin/python bench/reload_safety.py --smoke         # 2 waves of 3, 20 sockets, 3 reloads

Prints markdown tables, writes bench/results/reload_safety.json (or ``--out``) and, when
matplotlib is importable, docs/img/reload_safety_workers.png (``--plot``). Every container
carries ``dockyard-bench=<run id>`` and is removed before the script exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import (
    BENCH_LABEL,
    REPO_ROOT,
    RESULTS_DIR,
    Daemon,
    children_of,
    create_backends,
    docker_client,
    ensure_image,
    exit_on_sigterm,
    machine,
    new_run_id,
    probe,
    remove_labelled,
    running_daemon,
    summary,
    table,
    wait_until,
    write_json,
)
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.support import BACKEND_SCRIPT

PLOT = REPO_ROOT / "docs" / "img" / "reload_safety_workers.png"
SHUTTING_DOWN = "is shutting down"


# --------------------------------------------------------------------------------- wrk


def parse_wrk(text: str) -> dict[str, Any]:
    """Requests, errors and latency percentiles from wrk's report."""
    result: dict[str, Any] = {"requests": 0, "non_2xx_3xx": 0}
    result["socket_errors"] = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    if m := re.search(r"(\d+) requests in ([\d.]+)(\w+)", text):
        result["requests"] = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        result["non_2xx_3xx"] = int(m.group(1))
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        keys = ("connect", "read", "write", "timeout")
        result["socket_errors"] = dict(zip(keys, map(int, m.groups()), strict=True))
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        result["requests_per_second"] = float(m.group(1))
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
        latency[f"p{pct}_ms"] = round(float(value) * scale, 3)
    result["latency"] = latency
    result["failed"] = result["non_2xx_3xx"] + sum(result["socket_errors"].values())
    return result


def start_wrk(port: int, host: str, connections: int) -> subprocess.Popen[str]:
    """wrk on one keep-alive route, running until SIGINT (it then prints its report)."""
    return subprocess.Popen(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            "-d3600s",
            "--latency",
            "--timeout",
            "5s",
            "-H",
            f"Host: {host}",
            f"http://127.0.0.1:{port}/",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop_wrk(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """SIGINT wrk, read its report."""
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    parsed = parse_wrk(out)
    parsed["report"] = out
    return parsed


# ---------------------------------------------------------------------- part 1: load


def reload_times(daemon: Daemon, since: float, until: float) -> list[float]:
    """Epoch seconds of the ``nginx_reloaded`` log events in [since, until]."""
    return [
        e["t"]
        for e in daemon.logs()
        if e.get("event") == "nginx_reloaded" and since <= e.get("t", 0.0) <= until
    ]


def measure_load(
    client: Any, image: str, *, stable: int, connections: int, churn: int, wave: int, pause: float
) -> dict[str, Any]:
    """wrk on the stable routes while ``churn`` containers start and stop in waves."""
    run_id = new_run_id()
    stable_hosts = [f"stable{i}.{run_id}.bench.test" for i in range(stable)]
    churn_hosts = [f"churn{i}.{run_id}.bench.test" for i in range(churn)]
    try:
        with running_daemon(run_id, DOCKYARD_ACCESS_LOG="off") as daemon:
            print(f"creating {stable} + {churn} containers ...", file=sys.stderr, flush=True)
            ids = create_backends(client, image, run_id, stable_hosts + churn_hosts)
            stable_ids, churn_ids = ids[:stable], ids[stable:]
            for container_id in stable_ids:
                client.api.start(container_id)
            for host in stable_hosts:
                if not wait_until(lambda h=host: probe("127.0.0.1", daemon.port, h) == 200, 30):
                    msg = f"stable route {host} never answered 200"
                    raise RuntimeError(msg)
            time.sleep(1.5)  # past the reload cooldown of the stable routes' pass

            wrks = [start_wrk(daemon.port, host, connections) for host in stable_hosts]
            began = time.time()
            time.sleep(2)
            churn_began = time.time()
            waves = [churn_ids[i : i + wave] for i in range(0, len(churn_ids), wave)]
            with ThreadPoolExecutor(max_workers=max(1, wave)) as pool:
                for ids in waves:
                    list(pool.map(client.api.start, ids, timeout=120))
                    time.sleep(pause)
                    list(pool.map(lambda c: client.api.stop(c, timeout=5), ids, timeout=120))
                    time.sleep(pause)
            churn_ended = time.time()
            time.sleep(2)
            results = [stop_wrk(proc) for proc in wrks]
            ended = time.time()
            reloads = reload_times(daemon, began, ended)
            still_up = [probe("127.0.0.1", daemon.port, h) for h in stable_hosts]
    finally:
        remove_labelled(client, run_id)
    requests = sum(r["requests"] for r in results)
    failed = sum(r["failed"] for r in results)
    return {
        "stable_routes": stable,
        "connections_per_route": connections,
        "churn_containers": churn,
        "wave": wave,
        "pause_seconds": pause,
        "churn_seconds": round(churn_ended - churn_began, 2),
        "wrk_seconds": round(ended - began, 2),
        "reloads": len(reloads),
        "requests": requests,
        "failed": failed,
        "stable_status_after": still_up,
        "wrk": [{k: v for k, v in r.items() if k != "report"} for r in results],
        "wrk_reports": [r["report"] for r in results],
    }


# ---------------------------------------------------------------- part 2: websockets


def _smaps(pid: int) -> dict[str, float]:
    """Rss, Pss and private (Private_Clean + Private_Dirty) memory of a process, in MB."""
    values = {"rss_mb": 0.0, "pss_mb": 0.0, "private_mb": 0.0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            kb = rest.split()[0] if rest.split() else "0"
            if key == "Rss":
                values["rss_mb"] += int(kb) / 1024
            elif key == "Pss":
                values["pss_mb"] += int(kb) / 1024
            elif key in ("Private_Clean", "Private_Dirty"):
                values["private_mb"] += int(kb) / 1024
    return values


def nginx_sample(master: int | None) -> dict[str, Any]:
    """Workers by state, and memory of master, current and old workers."""
    sample: dict[str, Any] = {"t": time.time(), "workers": 0, "old_workers": 0}
    sample |= {"pss_mb": 0.0, "rss_mb": 0.0, "old_pss_mb": 0.0, "old_private_mb": 0.0}
    sample["old_each"] = []
    if master is None:
        return sample
    for pid in [master, *children_of(master)]:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        mem = _smaps(pid)
        sample["pss_mb"] += mem["pss_mb"]
        sample["rss_mb"] += mem["rss_mb"]
        if pid == master or "worker" not in title:
            continue
        if SHUTTING_DOWN in title:
            sample["old_workers"] += 1
            sample["old_pss_mb"] += mem["pss_mb"]
            sample["old_private_mb"] += mem["private_mb"]
            sample["old_each"].append({k: round(v, 2) for k, v in mem.items()})
        else:
            sample["workers"] += 1
    for key in ("pss_mb", "rss_mb", "old_pss_mb", "old_private_mb"):
        sample[key] = round(sample[key], 2)
    return sample


class Sampler:
    """nginx samples every ``interval`` s in a background thread."""

    def __init__(self, daemon: Daemon, interval: float) -> None:
        self.daemon, self.interval = daemon, interval
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nginx-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(nginx_sample(self.daemon.nginx_pid()))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def open_sockets(port: int, host: str, count: int) -> list[ClientConnection]:
    """``count`` WebSocket connections through the proxy (20 handshakes at a time)."""
    gate = asyncio.Semaphore(20)

    async def one() -> ClientConnection:
        async with gate:
            return await connect(
                f"ws://{host}/socket",
                host="127.0.0.1",
                port=port,
                open_timeout=15,
                ping_interval=None,
                close_timeout=2,
            )

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def echo_all(sockets: Sequence[ClientConnection], tag: str) -> list[int]:
    """Send one message on every socket; return the indexes that did not echo it."""

    async def one(index: int, ws: ClientConnection) -> bool:
        message = f"{tag}-{index}"
        try:
            await ws.send(message)
            return await asyncio.wait_for(ws.recv(), timeout=10) == message
        except Exception:  # any failure is a failed echo, counted
            return False

    ok = await asyncio.gather(*(one(i, ws) for i, ws in enumerate(sockets)))
    return [i for i, good in enumerate(ok) if not good]


def write_route_file(daemon: Daemon, run_id: str, index: int) -> None:
    """A route file whose server changes every time: a real route change, hence a reload."""
    routes = daemon.proxy.state_dir / "routes.d"
    routes.mkdir(parents=True, exist_ok=True)
    text = (
        "routes:\n"
        "  churn:\n"
        f"    host: churn.{run_id}.bench.test\n"
        f'    servers: ["http://127.0.0.1:{10000 + index}"]\n'
    )
    temp = routes / ".churn.yaml.tmp"
    temp.write_text(text)
    temp.replace(routes / "churn.yaml")


def reloaded_count(daemon: Daemon) -> int:
    """``nginx_reloaded`` events so far."""
    return sum(1 for e in daemon.logs() if e.get("event") == "nginx_reloaded")


def cause_reload(daemon: Daemon, run_id: str, index: int, timeout: float = 15) -> float:
    """Rewrite the route file and wait for the next reload; return its epoch time."""
    before = reloaded_count(daemon)
    write_route_file(daemon, run_id, index)
    if not wait_until(lambda: reloaded_count(daemon) > before, timeout, interval=0.05):
        msg = f"no reload within {timeout} s of route file change {index}"
        raise RuntimeError(msg)
    return time.time()


def start_echo_backend(client: Any, image: str, run_id: str, daemon: Daemon) -> str:
    """One WebSocket echo container (``websocket: true``), live through the proxy."""
    host = f"ws.{run_id}.bench.test"
    api = client.api
    created = api.create_container(
        image,
        ["/usr/bin/python3", "/srv/backend.py", "8080"],
        name=f"{run_id}-ws",
        labels={f"{run_id}.host": host, f"{run_id}.websocket": "true", BENCH_LABEL: run_id},
        ports=[8080],
        host_config=api.create_host_config(
            binds={
                "/usr": {"bind": "/usr", "mode": "ro"},
                str(BACKEND_SCRIPT): {"bind": "/srv/backend.py", "mode": "ro"},
            }
        ),
    )
    api.start(created["Id"])
    if not wait_until(lambda: probe("127.0.0.1", daemon.port, host) == 200, 30):
        msg = "WebSocket backend never answered 200 through the proxy"
        raise RuntimeError(msg)
    return host


async def _websockets(
    daemon: Daemon, run_id: str, host: str, *, sockets: int, reloads: int, sampler: Sampler
) -> dict[str, Any]:
    conns = await open_sockets(daemon.port, host, sockets)
    opened = time.time()
    first_failures = await echo_all(conns, "before")
    per_reload: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    for index in range(reloads):
        at = await loop.run_in_executor(None, cause_reload, daemon, run_id, index)
        failed = await echo_all(conns, f"r{index}")
        per_reload.append({"reload": index + 1, "t": at, "failed_echoes": len(failed)})
    await asyncio.sleep(2)
    final_failures = await echo_all(conns, "after")
    peak_old = max((s["old_workers"] for s in sampler.samples), default=0)
    closing = time.time()
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    gone = await loop.run_in_executor(
        None,
        wait_until,
        lambda: nginx_sample(daemon.nginx_pid())["old_workers"] == 0,
        30.0,
    )
    return {
        "sockets": sockets,
        "reloads": reloads,
        "opened_at": opened,
        "echo_failures_before": len(first_failures),
        "echo_failures_after_each_reload": [r["failed_echoes"] for r in per_reload],
        "echo_failures_after_all": len(final_failures),
        "all_echo_after": not final_failures,
        "reload_seconds": round(per_reload[-1]["t"] - opened, 2) if per_reload else 0.0,
        "peak_old_workers": peak_old,
        "old_workers_gone_after_close_seconds": (round(time.time() - closing, 2) if gone else None),
    }


def measure_websockets(
    client: Any, image: str, *, sockets: int, reloads: int, interval_ms: int, sample: float
) -> dict[str, Any]:
    """Hold ``sockets`` WebSockets through ``reloads`` reloads; sample nginx meanwhile."""
    run_id = new_run_id()
    try:
        with running_daemon(run_id, DOCKYARD_RELOAD_INTERVAL_MS=str(interval_ms)) as daemon:
            host = start_echo_backend(client, image, run_id, daemon)
            time.sleep(1.5)
            with Sampler(daemon, sample) as sampler:
                result = asyncio.run(
                    _websockets(
                        daemon, run_id, host, sockets=sockets, reloads=reloads, sampler=sampler
                    )
                )
                time.sleep(1)
            samples = sampler.samples
    finally:
        remove_labelled(client, run_id)
    old_each = [w for s in samples for w in s["old_each"]]
    t0 = samples[0]["t"] if samples else 0.0
    result["reload_interval_ms"] = interval_ms
    result["worker_shutdown_timeout"] = "default (1h)"
    result["old_worker_memory_mb"] = {
        "private": summary((w["private_mb"] for w in old_each), 95, 2),
        "pss": summary((w["pss_mb"] for w in old_each), 95, 2),
        "rss": summary((w["rss_mb"] for w in old_each), 95, 2),
    }
    result["nginx_pss_mb"] = summary((s["pss_mb"] for s in samples), 95, 2)
    result["samples"] = [
        {k: (round(v - t0, 2) if k == "t" else v) for k, v in s.items() if k != "old_each"}
        for s in samples
    ]
    return result


async def _cut(daemon: Daemon, run_id: str, host: str, sockets: int, limit: float) -> list[float]:
    conns = await open_sockets(daemon.port, host, sockets)
    if await echo_all(conns, "before"):
        msg = "sockets did not echo before the reload"
        raise RuntimeError(msg)
    loop = asyncio.get_running_loop()
    reloaded = await loop.run_in_executor(None, cause_reload, daemon, run_id, 0)

    async def closed_after(ws: ClientConnection) -> float:
        try:
            await asyncio.wait_for(ws.wait_closed(), timeout=limit)
        except TimeoutError:
            return -1.0
        return time.time() - reloaded

    return list(await asyncio.gather(*(closed_after(ws) for ws in conns)))


def measure_cut(client: Any, image: str, sockets: int, timeout: str) -> dict[str, Any]:
    """With a short worker_shutdown_timeout: when held WebSockets get closed after a reload."""
    run_id = new_run_id()
    seconds = float(timeout.rstrip("s"))
    try:
        with running_daemon(run_id, DOCKYARD_WORKER_SHUTDOWN_TIMEOUT=timeout) as daemon:
            host = start_echo_backend(client, image, run_id, daemon)
            time.sleep(1.5)
            closed = asyncio.run(_cut(daemon, run_id, host, sockets, seconds + 10))
    finally:
        remove_labelled(client, run_id)
    cut = [c for c in closed if c >= 0]
    return {
        "worker_shutdown_timeout": timeout,
        "sockets": sockets,
        "closed_by_proxy": len(cut),
        "closed_after_reload_seconds": summary(cut, 95, 2),
    }


# --------------------------------------------------------------------------- report


def plot(ws: dict[str, Any], path: Path) -> str | None:
    """Workers and nginx memory over time; None when matplotlib is not importable."""
    try:
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return None
    samples = ws["samples"]
    t = [s["t"] for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(8, 5))
    top.plot(t, [s["workers"] for s in samples], label="current workers")
    top.plot(t, [s["old_workers"] for s in samples], label="old workers (shutting down)")
    top.set_ylabel("processes")
    top.legend()
    bottom.plot(t, [s["pss_mb"] for s in samples], label="nginx Pss, all processes")
    bottom.plot(t, [s["old_private_mb"] for s in samples], label="old workers' private memory")
    bottom.set_ylabel("MB")
    bottom.set_xlabel("seconds")
    bottom.legend()
    fig.suptitle(f"{ws['sockets']} WebSockets held through {ws['reloads']} reloads")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return str(path)


def report(
    load: dict[str, Any] | None, ws: dict[str, Any] | None, cut: dict[str, Any] | None
) -> dict[str, Any]:
    """Print the tables; return the targets."""
    targets: dict[str, Any] = {}
    if load:
        print(
            f"\n## wrk on {load['stable_routes']} stable routes while "
            f"{load['churn_containers']} containers start and stop\n"
        )
        rows = []
        for i, w in enumerate(load["wrk"]):
            e = w["socket_errors"]
            rows.append(
                (
                    f"stable{i}",
                    w["requests"],
                    w.get("requests_per_second", "?"),
                    w["non_2xx_3xx"],
                    f"{e['connect']}/{e['read']}/{e['write']}/{e['timeout']}",
                    w["latency"].get("p50_ms", "?"),
                    w["latency"].get("p99_ms", "?"),
                )
            )
        print(
            table(
                [
                    "route",
                    "requests",
                    "req/s",
                    "non-2xx/3xx",
                    "socket errors c/r/w/t",
                    "p50 ms",
                    "p99 ms",
                ],
                rows,
            )
        )
        print(
            f"\n{load['reloads']} nginx reloads in {load['wrk_seconds']} s of wrk "
            f"(churn {load['churn_seconds']} s); failed requests: {load['failed']} "
            f"(target 0: {'met' if load['failed'] == 0 else 'missed'})"
        )
        targets["failed_requests"] = {
            "target": 0,
            "value": load["failed"],
            "verdict": "met" if load["failed"] == 0 else "missed",
        }
    if ws:
        print(f"\n## {ws['sockets']} WebSockets held through {ws['reloads']} reloads\n")
        mem = ws["old_worker_memory_mb"]
        print(
            table(
                [
                    "sockets",
                    "reloads",
                    "echo failures after each reload (sum)",
                    "all echo after",
                    "peak old workers",
                    "old worker private MB (median/max)",
                    "old worker Pss MB (median/max)",
                    "nginx Pss MB (min/max)",
                    "old workers gone after close s",
                ],
                [
                    (
                        ws["sockets"],
                        ws["reloads"],
                        sum(ws["echo_failures_after_each_reload"]),
                        ws["all_echo_after"],
                        ws["peak_old_workers"],
                        f"{mem['private']['median']} / {mem['private']['max']}",
                        f"{mem['pss']['median']} / {mem['pss']['max']}",
                        f"{ws['nginx_pss_mb']['min']} / {ws['nginx_pss_mb']['max']}",
                        ws["old_workers_gone_after_close_seconds"],
                    )
                ],
            )
        )
        targets["websockets_echo_after_reloads"] = {
            "target": ws["sockets"],
            "value": ws["sockets"] - ws["echo_failures_after_all"],
            "verdict": "met" if ws["all_echo_after"] else "missed",
        }
    if cut:
        print(
            f"\n## worker_shutdown_timeout {cut['worker_shutdown_timeout']}: "
            "held WebSockets after one reload\n"
        )
        s = cut["closed_after_reload_seconds"]
        print(
            table(
                ["sockets", "closed by the proxy", "closed after reload s (min/median/max)"],
                [
                    (
                        cut["sockets"],
                        cut["closed_by_proxy"],
                        f"{s['min']} / {s['median']} / {s['max']}",
                    )
                ],
            )
        )
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    """Run the parts, report, write JSON (and the plot)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["load", "websockets", "cut"],
        default=["load", "websockets", "cut"],
    )
    parser.add_argument("--stable", type=int, default=2, help="stable routes under wrk (2)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections per route (8)")
    parser.add_argument("--churn", type=int, default=100, help="containers started+stopped (100)")
    parser.add_argument("--wave", type=int, default=10, help="containers per wave (10)")
    parser.add_argument("--pause", type=float, default=1.5, help="seconds after each wave step")
    parser.add_argument("--sockets", type=int, default=200, help="WebSockets held (200)")
    parser.add_argument("--reloads", type=int, default=50, help="reloads while held (50)")
    parser.add_argument("--reload-interval-ms", type=int, default=1000, help="daemon cooldown")
    parser.add_argument("--cut-timeout", default="5s", help="worker_shutdown_timeout, cut part")
    parser.add_argument("--sample", type=float, default=0.25, help="nginx sampling period s")
    parser.add_argument("--smoke", action="store_true", help="tiny run (CI)")
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "reload_safety.json")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.smoke:
        args.churn, args.wave, args.pause, args.connections = 6, 3, 1.2, 4
        args.sockets, args.reloads, args.reload_interval_ms = 20, 3, 200
        args.cut_timeout = "2s"
    began = time.time()
    host = machine()
    client = docker_client()
    image = ensure_image(client)
    load = ws = cut = None
    if "load" in args.parts:
        print("part 1: wrk under churn ...", file=sys.stderr, flush=True)
        load = measure_load(
            client,
            image,
            stable=args.stable,
            connections=args.connections,
            churn=args.churn,
            wave=args.wave,
            pause=args.pause,
        )
    if "websockets" in args.parts:
        print("part 2: WebSockets across reloads ...", file=sys.stderr, flush=True)
        ws = measure_websockets(
            client,
            image,
            sockets=args.sockets,
            reloads=args.reloads,
            interval_ms=args.reload_interval_ms,
            sample=args.sample,
        )
    if "cut" in args.parts:
        print("part 3: a short worker_shutdown_timeout ...", file=sys.stderr, flush=True)
        cut = measure_cut(client, image, min(args.sockets, 50), args.cut_timeout)
    targets = report(load, ws, cut)
    plotted = None
    if ws and not args.smoke:
        plotted = plot(ws, args.plot)
        print(
            f"\nplot written to {plotted}"
            if plotted
            else "\nmatplotlib is not importable in this Python: no plot written"
        )
    write_json(
        args.out,
        {
            "benchmark": "reload_safety",
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "machine": host,
            "started_at": began,
            "duration_seconds": round(time.time() - began, 1),
            "targets": targets,
            "load": load,
            "websockets": ws,
            "cut": cut,
            "plot": plotted,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
