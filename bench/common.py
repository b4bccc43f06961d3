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
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
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

from tests.integration.support import (  # noqa: E402 - needs the sys.path entry above
    BACKEND_SCRIPT,
    TEST_IMAGE,
    UNKNOWN_HOST,
    Proxy,
    free_ports,
    http_request,
)

# Re-exported for the scripts (mypy --strict wants imported names listed to re-export them).
__all__ = ["UNKNOWN_HOST", "Proxy", "free_ports", "http_request"]

RESULTS_DIR = REPO_ROOT / "bench" / "results"
BENCH_LABEL = "dockyard-bench"
BACKEND_PORT = 8080

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnobody:x:65534:\n"


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


def _base_rootfs_tar() -> bytes:
    """Empty mount points and merged-/usr symlinks; a copy of the test fixture's tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, mode in (
            ("usr", 0o755),
            ("tmp", 0o1777),
            ("etc", 0o755),
            ("proc", 0o555),
            ("sys", 0o555),
            ("dev", 0o755),
            ("run", 0o755),
            ("srv", 0o755),
        ):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tar.addfile(info)
        for name in ("bin", "lib", "lib64", "sbin"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = f"usr/{name}"
            tar.addfile(info)
        for name, text in (("etc/passwd", _PASSWD), ("etc/group", _GROUP)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ensure_image(client: Any) -> str:
    """The test image, made by `docker import` when missing (it is shared and never deleted)."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(TEST_IMAGE)
        return TEST_IMAGE
    repository, tag = TEST_IMAGE.rsplit(":", 1)
    client.api.import_image_from_data(_base_rootfs_tar(), repository=repository, tag=tag)
    client.images.get(TEST_IMAGE)
    return TEST_IMAGE


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
    http_port, https_port = free_ports(2)
    env = {key: val for key, val in os.environ.items() if not key.startswith("DOCKYARD_")}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "DOCKYARD_HTTP_PORT": str(http_port),
        "DOCKYARD_HTTPS_PORT": str(https_port),
        "DOCKYARD_STATE_DIR": str(workdir / "state"),
        "DOCKYARD_LABEL_PREFIX": run_id,
        "DOCKYARD_LOG_FORMAT": "json",
        **env_overrides,
    }
    log_path = workdir / "daemon.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    proxy = Proxy(
        process,
        log_path=log_path,
        http_port=http_port,
        https_port=https_port,
        state_dir=workdir / "state",
        env=env,
    )
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


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(entry.name))
    return found


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


def summary(values: Iterable[float]) -> dict[str, float]:
    """min / median / p95 / max of the values (p95 by the nearest-rank method)."""
    data = sorted(values)
    if not data:
        return {"n": 0, "min": float("nan"), "median": float("nan"), "p95": float("nan")}
    rank = max(1, -(-95 * len(data) // 100))  # ceil(0.95 n)
    return {
        "n": len(data),
        "min": round(data[0], 4),
        "median": round(statistics.median(data), 4),
        "p95": round(data[rank - 1], 4),
        "max": round(data[-1], 4),
    }


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
