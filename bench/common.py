"""Shared helpers for the benchmark scripts in bench/ (not a script itself).

What is here: the daemon started as a subprocess on free loopback ports with a unique label
prefix and a temporary state dir (the same way tests/integration/conftest.py does it, reusing
its ``Proxy`` wrapper), its JSON log parsed with timestamps as epoch seconds, the local test
image ensured (same rootfs tar as the test fixture, tag ``dockyard-test-base:1``, never
deleted), backend containers created like the ``start_backend`` fixture (tests/backend.py run
by the host's /usr/bin/python3), process memory read from /proc, and result output (markdown
table on stdout, JSON under bench/results/).

Everything created in Docker carries the label ``dockyard-bench=<run id>`` and is removed by
``remove_labelled`` in the scripts' ``finally`` blocks.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped, unused-ignore]

REPO_ROOT = Path(__file__).resolve().parents[1]
# The scripts run as `python bench/<script>.py`, so only bench/ is on sys.path; the test
# helpers live in the (uninstalled) `tests` package at the repository root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from daemon.nginx import children_of  # noqa: E402
from tests.integration.support import (  # noqa: E402 - needs the sys.path entry above
    BACKEND_SCRIPT,
    UNKNOWN_HOST,
    Proxy,
    ensure_test_image,
    free_ports,
    http_request,
    launch_daemon,
)

# Re-exported for the scripts (mypy --strict wants imported names listed to re-export them).
__all__ = ["UNKNOWN_HOST", "Proxy", "children_of", "free_ports", "http_request"]

RESULTS_DIR = REPO_ROOT / "bench" / "results"
BENCH_LABEL = "dockyard-bench"
BACKEND_PORT = 8080


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the scripts' ``finally`` blocks still clean up."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def new_run_id() -> str:
    """A short unique id: label prefix for the daemon and value of the bench label."""
    return "dyb" + uuid.uuid4().hex[:8]


def docker_client(pool: int = 64) -> Any:
    """A docker SDK client with a connection pool big enough for concurrent starts."""
    client = docker.from_env(timeout=60, max_pool_size=pool)
    client.ping()
    return client


def ensure_image(client: Any) -> str:
    """The test image the integration tests use, made when missing (never deleted)."""
    return ensure_test_image(client)


def create_backend(client: Any, image: str, run_id: str, name: str, host: str) -> str:
    """Create (not start) a backend container routed at ``host``; return its id."""
    api = client.api
    host_config = api.create_host_config(
        binds={
            "/usr": {"bind": "/usr", "mode": "ro"},
            str(BACKEND_SCRIPT): {"bind": "/srv/backend.py", "mode": "ro"},
        },
    )
    created = api.create_container(
        image,
        ["/usr/bin/python3", "/srv/backend.py", str(BACKEND_PORT)],
        name=name,
        labels={f"{run_id}.host": host, BENCH_LABEL: run_id},
        environment={"BACKEND_NAME": name},
        ports=[BACKEND_PORT],
        host_config=host_config,
    )
    return str(created["Id"])


def create_backends(
    client: Any, image: str, run_id: str, hosts: Sequence[str], workers: int = 8
) -> list[str]:
    """Create one backend per host (in parallel); return the ids in the order of ``hosts``."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(create_backend, client, image, run_id, f"{run_id}-{i}", host)
            for i, host in enumerate(hosts)
        ]
        return [f.result(timeout=120) for f in futures]


def container_ip(client: Any, container_id: str) -> str | None:
    """The container's first IPv4 address, if it has one."""
    networks = client.api.inspect_container(container_id)["NetworkSettings"]["Networks"] or {}
    for net in networks.values():
        if net.get("IPAddress"):
            return str(net["IPAddress"])
    return None


def remove_labelled(client: Any, run_id: str) -> int:
    """Force-remove every container and network carrying this run's bench label."""
    selector = {"label": f"{BENCH_LABEL}={run_id}"}
    containers = client.api.containers(all=True, filters=selector)

    def remove(container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(container_id, force=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(remove, [c["Id"] for c in containers], timeout=300))
    for network in client.networks.list(filters=selector):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()
    return len(containers)


def probe(address: str, port: int, host: str, timeout: float = 1.0) -> int | None:
    """Status of one GET / on a fresh connection (never keep-alive), None on errors."""
    try:
        return http_request(address, port, host, timeout=timeout).status
    except (OSError, http.client.HTTPException):
        return None


@dataclass
class Daemon:
    """A `python -m daemon run` subprocess for one benchmark, and where it keeps its files."""

    proxy: Proxy
    workdir: Path
    run_id: str

    @property
    def port(self) -> int:
        """The proxy's HTTP port on 127.0.0.1."""
        return self.proxy.http_port

    def logs(self) -> list[dict[str, Any]]:
        """The daemon's JSON log lines so far, each with ``t`` (epoch seconds) added."""
        entries = self.proxy.logs()
        for entry in entries:
            stamp = entry.get("timestamp")
            if isinstance(stamp, str):
                with contextlib.suppress(ValueError):
                    entry["t"] = datetime.fromisoformat(stamp).timestamp()
        return entries

    def nginx_pid(self) -> int | None:
        """The nginx master's PID."""
        return self.proxy.nginx_pid()


@contextlib.contextmanager
def running_daemon(run_id: str, **env_overrides: str) -> Iterator[Daemon]:
    """Start the daemon on free loopback ports, wait until it serves 404, stop it on exit."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{run_id}-", dir="/tmp"))
    proxy = launch_daemon(workdir / "state", run_id, workdir / "daemon.log", dict(env_overrides))
    process, http_port = proxy.process, proxy.http_port
    try:
        deadline = time.monotonic() + 30
        while probe("127.0.0.1", http_port, UNKNOWN_HOST) != 404:
            if process.poll() is not None or time.monotonic() > deadline:
                msg = f"daemon not serving (exit {process.poll()}):\n{proxy.log_tail()}"
                raise RuntimeError(msg)
            time.sleep(0.05)
        yield Daemon(proxy, workdir, run_id)
    finally:
        try:
            proxy.cleanup()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def docker_events(client: Any, run_id: str) -> Iterator[list[dict[str, Any]]]:
    """Collect this run's engine events (with ``t``, epoch seconds) in a background thread.

    Container events of this run's containers, and every network ``connect`` (their labels
    are the network's, so they cannot be filtered here: match ``id`` to the container).
    Network events get ``id`` set to the container they concern.
    """
    collected: list[dict[str, Any]] = []
    stream = client.events(decode=True, filters={"type": ["container", "network"]})

    def follow() -> None:
        with contextlib.suppress(Exception):  # the stream raises when closed under it
            for event in stream:
                attributes = (event.get("Actor") or {}).get("Attributes") or {}
                if event.get("Type") == "network":
                    if event.get("Action") != "connect":
                        continue
                    event["id"] = attributes.get("container")
                elif attributes.get(BENCH_LABEL) != run_id:
                    continue
                event["t"] = int(event.get("timeNano", 0)) / 1e9
                collected.append(event)

    thread = threading.Thread(target=follow, name="bench-events", daemon=True)
    thread.start()
    try:
        yield collected
    finally:
        time.sleep(0.2)  # let the last events arrive
        stream.close()
        thread.join(timeout=2)


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that runs ``script`` (in bench/) again with the same arguments."""
    return f"python bench/{script} " + " ".join(sys.argv[1:] if argv is None else argv)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``check`` until true or ``timeout`` seconds passed; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def _proc_status(pid: int | str) -> dict[str, int]:
    """Memory lines of /proc/PID/status in kB."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key.startswith("Vm") or key.startswith("Rss"):
                with contextlib.suppress(ValueError, IndexError):
                    values[key] = int(rest.split()[0])
    return values


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process in MB."""
    return _proc_status(pid).get("VmRSS", 0) / 1024


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size (VmHWM) of a process in MB."""
    return _proc_status(pid).get("VmHWM", 0) / 1024


def process_tree_memory(master: int) -> dict[str, float]:
    """Pss and Rss (MB) summed over a master process and its children (nginx workers)."""
    pids = [master, *children_of(master)]
    pss = rss = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) / 1024
    return {"processes": float(len(pids)), "pss_mb": round(pss, 1), "rss_mb": round(rss, 1)}


def time_nginx_t(
    config: Path, prefix: Path, repeats: int, timeout: float
) -> tuple[list[float], list[float]]:
    """Run ``nginx -t`` on ``config`` ``repeats`` times: (seconds, peak RSS MB) of each run."""
    argv = ["nginx", "-c", str(config), "-p", f"{prefix}/", "-e", "stderr", "-t", "-q"]
    seconds, peaks = [], []
    for _ in range(repeats):
        code, took, peak, err = timed_child(argv, timeout=timeout)
        if code != 0:
            msg = f"nginx -t rejected {config}: {err.strip()[:500]}"
            raise RuntimeError(msg)
        seconds.append(took)
        peaks.append(peak)
    return seconds, peaks


def timed_child(argv: Sequence[str], timeout: float = 120) -> tuple[int, float, float, str]:
    """Run ``argv``; return (exit code, seconds, peak RSS in MB of that process, stderr).

    The peak comes from GNU time (``/usr/bin/time -v``), a small C program, because a
    child's own ``ru_maxrss`` starts from the RSS of the process it was forked from (here a
    Python interpreter, tens of MB). Without GNU time, that upper bound is returned.
    """
    gnu_time = shutil.which("time", path="/usr/bin:/bin")
    with tempfile.NamedTemporaryFile("r", prefix="dyb-time-", suffix=".txt") as report:
        wrapper = [gnu_time, "-v", "-o", report.name] if gnu_time else []
        began = time.perf_counter()
        proc = subprocess.Popen(
            [*wrapper, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            assert proc.stderr is not None
            err = proc.stderr.read().decode("utf-8", "replace")
            proc.stderr.close()
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - began
        finally:
            killer.cancel()
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # reaped by wait4 above
        peak_kb = float(usage.ru_maxrss)
        for line in report.read().splitlines():
            if "Maximum resident set size" in line:
                peak_kb = float(line.rsplit(":", 1)[1])
            elif "Command exited with non-zero status" in line:
                code = int(line.rsplit(" ", 1)[1])
    return code, seconds, peak_kb / 1024, err


def summary(values: Iterable[float], percentile: int = 95, digits: int = 4) -> dict[str, float]:
    """n, min, median, the ``percentile`` (nearest rank) and max of the values, rounded."""
    data = sorted(values)
    key = f"p{percentile}"
    if not data:
        nan = float("nan")
        return {"n": 0, "min": nan, "median": nan, key: nan, "max": nan}
    rank = max(1, -(-percentile * len(data) // 100))  # ceil(percentile / 100 * n)
    return {
        "n": len(data),
        "min": round(data[0], digits),
        "median": round(statistics.median(data), digits),
        key: round(data[rank - 1], digits),
        "max": round(data[-1], digits),
    }


def first_entry(
    entries: Sequence[dict[str, Any]], event: str, since: float, **match: Any
) -> dict[str, Any] | None:
    """The first daemon log entry of ``event`` at or after ``since`` with these fields."""
    for entry in entries:
        if entry.get("event") != event or entry.get("t", 0.0) < since:
            continue
        if all(entry.get(key) == value for key, value in match.items()):
            return entry
    return None


def machine() -> dict[str, str]:
    """What the numbers were measured on."""

    def out(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        return (done.stdout + done.stderr).strip()

    cpu = "?"
    for line in out(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    try:
        debian = Path("/etc/debian_version").read_text().strip()
    except OSError:
        debian = "?"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory_mb": str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20),
        "kernel": platform.release(),
        "debian": debian,
        "nginx": out(["nginx", "-v"]),
        "docker_engine": out(["docker", "version", "--format", "{{.Server.Version}}"]),
        "python": platform.python_version(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(value: float, target: float) -> str:
    """'met' when value <= target."""
    return "met" if value <= target else "missed"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write the result file (creating bench/results/ if needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"\nresults written to {path}")


def start_sleepers(client: Any, image: str, run_id: str, count: int, tag: str = "bg") -> None:
    """Start ``count`` labelled, routed containers that only sleep (cheap routes), named
    ``<run_id>-<tag><i>`` with hosts ``<tag><i>.<run_id>.bench.test``."""

    def one(index: int) -> None:
        container_id = client.api.create_container(
            image,
            ["/usr/bin/sleep", "infinity"],
            name=f"{run_id}-{tag}{index}",
            labels={f"{run_id}.host": f"{tag}{index}.{run_id}.bench.test", BENCH_LABEL: run_id},
            ports=[8080],
            host_config=client.api.create_host_config(
                binds={"/usr": {"bind": "/usr", "mode": "ro"}}
            ),
        )["Id"]
        client.api.start(container_id)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(one, i) for i in range(count)]:
            future.result(timeout=120)
