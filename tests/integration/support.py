"""Helpers and types shared by the integration fixtures (conftest.py) and the tests themselves."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import docker  # type: ignore[import-untyped, unused-ignore]
from cryptography import x509
from docker.models.containers import Container  # type: ignore[import-untyped, unused-ignore]
from docker.models.networks import Network  # type: ignore[import-untyped, unused-ignore]

REPO_ROOT = Path(__file__).resolve().parents[2]
BACKEND_SCRIPT = REPO_ROOT / "tests" / "backend.py"
# Every container/network the fixtures create carries TEST_LABEL=<session label prefix>, so the
# session finalizer (or a human: `docker ps -a --filter label=dockyard-test`) can find leftovers.
TEST_LABEL = "dockyard-test"
# Cached between runs and never deleted: a few hundred bytes of empty dirs (/usr is the host's).
TEST_IMAGE = "dockyard-test-base:1"
# nginx's master sleeps 100 ms after a reload before its old workers stop accepting.
STABLE_SECONDS = 0.15
# Host Header that no route may ever match; the daemon answers it with 404 once it serves.
UNKNOWN_HOST = "unknown.invalid"


class Response(NamedTuple):
    """One HTTP response; unpacks as (status, headers, body)."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        """Decode the body as JSON (what tests/backend.py answers)."""
        return json.loads(self.body)


def http_request(
    address: str,
    port: int,
    host: str,
    path: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
) -> Response:
    """Send one plain-HTTP request to address:port with the given Host header; no redirects."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()


class TlsResponse(NamedTuple):
    """One HTTPS response and the certificate the server presented."""

    response: Response
    certificate: x509.Certificate


def https_request(
    port: int,
    host: str,
    path: str = "/",
    *,
    cafile: Path | None = None,
    method: str = "GET",
    timeout: float = 5.0,
) -> TlsResponse:
    """One request over TLS to 127.0.0.1:``port`` with SNI and Host ``host``.

    With ``cafile`` the chain and the name are verified against it (``ssl.SSLError`` when
    not); without it any certificate is accepted, to look at fallbacks.
    """
    if cafile is not None:
        context = ssl.create_default_context(cafile=str(cafile))
    else:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        request = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        tls.sendall(request.encode())
        answer = http.client.HTTPResponse(tls)
        answer.begin()
        response = Response(answer.status, answer.headers, answer.read())
    return TlsResponse(response, x509.load_der_x509_certificate(der))


def free_ports(count: int) -> list[int]:
    """Return distinct currently-free TCP ports on 127.0.0.1 (the kernel picks them via port 0)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def container_ips(container: Container) -> list[str]:
    """IPv4 addresses of a container on its networks (host-reachable for bridge networks)."""
    networks = container.attrs["NetworkSettings"]["Networks"] or {}
    return [str(n["IPAddress"]) for n in networks.values() if n.get("IPAddress")]


def _container_logs(container: Container) -> str:
    """Container output for failure messages, never raising."""
    try:
        return str(container.logs(tail=50).decode(errors="replace"))
    except docker.errors.APIError as exc:
        return f"<no logs: {exc}>"


_PROBE = (
    "import socket,sys;s=socket.create_connection(('127.0.0.1',int(sys.argv[1])),1);"
    "s.sendall(b'GET / HTTP/1.0\\r\\nHost: ready.invalid\\r\\n\\r\\n');"
    "sys.exit(0 if s.recv(12).startswith(b'HTTP/1.') else 1)"
)


def wait_backend_ready(container: Container, port: int = 8080, timeout: float = 10.0) -> None:
    """Block until tests/backend.py inside the container answers HTTP, so tests never race it.

    Bridge-attached containers are probed from the host via their IP; containers without an IP
    (network_mode none/host/container:...) are probed from inside with `docker exec`.
    """
    deadline = time.monotonic() + timeout
    last_error = "not probed yet"
    while True:
        container.reload()
        state = container.attrs["State"]
        if state["Status"] in {"exited", "dead"}:
            raise AssertionError(
                f"backend {container.name} exited with {state['ExitCode']}:\n"
                + _container_logs(container)
            )
        if state["Status"] == "running":
            ips = container_ips(container)
            probe_inside = not ips
            if ips:
                try:
                    http_request(ips[0], port, "ready.invalid", timeout=1.0)
                    return
                except ConnectionRefusedError as exc:  # reachable, just not listening yet
                    last_error = repr(exc)
                except (OSError, http.client.HTTPException) as exc:
                    last_error = repr(exc)
                    probe_inside = True  # e.g. an internal network the host cannot reach
            if probe_inside:
                result = container.exec_run(["/usr/bin/python3", "-c", _PROBE, str(port)])
                if result.exit_code == 0:
                    return
                last_error = result.output.decode(errors="replace")[-500:]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"backend {container.name} not answering on port {port} after {timeout}s "
                f"(last error: {last_error}):\n" + _container_logs(container)
            )
        time.sleep(0.05)


class Proxy:
    """A running `python -m daemon run` subprocess plus ways to talk to it and read its logs."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        log_path: Path,
        http_port: int,
        https_port: int,
        state_dir: Path,
        env: dict[str, str],
    ) -> None:
        """Wrap an already started daemon process."""
        self.process = process
        self.log_path = log_path
        self.http_port = http_port
        self.https_port = https_port
        self.state_dir = state_dir
        self.env = env

    def log_text(self) -> str:
        """Everything the daemon wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of output, for failure messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines so far, in order; non-JSON lines (tracebacks, nginx noise) skipped."""
        entries: list[dict[str, Any]] = []
        for line in self.log_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def wait_log(
        self, event: str, timeout: float = 10.0, *, after: int = 0, **match: Any
    ) -> dict[str, Any]:
        """Wait for a JSON log line with this event and these fields; `after` skips older lines.

        Use `after=len(proxy.logs())` taken before an action to wait for a *new* occurrence.
        """
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.logs()[after:]:
                if entry.get("event") == event and all(
                    entry.get(key) == value for key, value in match.items()
                ):
                    return entry
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no log event {event!r} with {match!r} within {timeout}s "
                    f"(daemon exit code {self.process.poll()}); log tail:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def get(
        self,
        host: str,
        path: str = "/",
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
        *,
        method: str = "GET",
        body: bytes | None = None,
    ) -> Response:
        """One request to the proxy's HTTP port on 127.0.0.1 with the given Host header."""
        return http_request(
            "127.0.0.1",
            self.http_port,
            host,
            path,
            method=method,
            headers=headers,
            body=body,
            timeout=timeout,
        )

    def wait_status(self, host: str, path: str, status: int, timeout: float = 10.0) -> Response:
        """Poll every 20 ms until the proxy answers `status` for host+path, and keeps doing so.

        Config changes are applied asynchronously (event -> render -> nginx reload), so tests
        wait for the observable effect instead of sleeping. After a reload nginx's old
        workers accept connections with the old config for about 100 ms more, so the answer
        must hold for STABLE_SECONDS before it counts; the last response is returned.
        """
        return self.wait_answer(
            host, lambda r: r.status == status, path, timeout, wanted=f"{status} steadily"
        )

    def wait_answer(
        self,
        host: str,
        accept: Callable[[Response], bool],
        path: str = "/",
        timeout: float = 10.0,
        *,
        wanted: str = "as expected",
    ) -> Response:
        """Poll every 20 ms until ``accept`` holds for STABLE_SECONDS (see ``wait_status``)."""
        deadline = time.monotonic() + timeout
        last = "no response yet"
        held_since: float | None = None
        while True:
            try:
                response = self.get(host, path, timeout=2.0)
                if accept(response):
                    held_since = held_since or time.monotonic()
                    if time.monotonic() - held_since >= STABLE_SECONDS:
                        return response
                else:
                    held_since = None
                    last = f"{response.status} {response.body[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                held_since = None
                last = repr(exc)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"http://{host}{path} never answered {wanted} within {timeout}s "
                    f"(last other answer: {last}); log tail:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the daemon and return its exit code; SIGKILL and fail if it ignores SIGTERM."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"daemon ignored SIGTERM for {timeout}s and was killed; log tail:\n"
                    + self.log_tail()
                ) from None
        return self.process.returncode

    def nginx_pid(self) -> int | None:
        """PID from <state_dir>/nginx/nginx.pid if that process is alive and is an nginx."""
        try:
            pid = int((self.state_dir / "nginx" / "nginx.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"nginx" in cmdline else None

    def location_config(self, host: str, location: str) -> str:
        """The body of ``location <location> {`` in the live nginx.conf's server for ``host``.

        ``location`` is what follows the word, e.g. ``/`` or ``= /jatos``; the first server
        block naming ``host`` that has it counts. AssertionError when none has it.
        """
        text = (self.state_dir / "nginx" / "nginx.conf").read_text()
        opening = re.compile(
            rf"^        location {re.escape(location)} \{{\n(.*?)^        \}}$", re.M | re.S
        )
        for server in re.findall(r"^    server \{\n(.*?)^    \}$", text, re.M | re.S):
            found = opening.search(server)
            if f"        server_name {host};\n" in server and found:
                return str(found.group(1))
        raise AssertionError(f"no `location {location}` for {host} in:\n{text}")

    def cleanup(self) -> None:
        """Stop the daemon and any nginx it left behind: only processes this test started."""
        try:
            self.stop()
        finally:
            pid = self.nginx_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)
                deadline = time.monotonic() + 10
                while self.nginx_pid() == pid and time.monotonic() < deadline:
                    time.sleep(0.05)


class StartBackend(Protocol):
    """Type of the `start_backend` fixture."""

    def __call__(
        self,
        labels: dict[str, str] | None = None,
        *,
        name: str | None = None,
        port: int = 8080,
        network: str | None = None,
        network_mode: str | None = None,
        healthcheck: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        expose: bool = True,
        start: bool = True,
        raw_labels: dict[str, str] | None = None,
        wait_ready: bool = True,
    ) -> Container:
        """Create (and by default start and await) a backend container."""


class MakeNetwork(Protocol):
    """Type of the `make_network` fixture."""

    def __call__(
        self,
        name: str | None = None,
        *,
        internal: bool = False,
        labels: dict[str, str] | None = None,
    ) -> Network:
        """Create a user-defined bridge network."""


class RunProxy(Protocol):
    """Type of the `run_proxy` fixture."""

    def __call__(self, **env_overrides: str | None) -> Proxy:
        """Start the daemon and wait until it serves 404 for unknown hosts."""


_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnobody:x:65534:\n"


def _base_rootfs_tar() -> bytes:
    """Tar of empty mount points and merged-/usr symlinks; the host's /usr is mounted over usr/."""
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


def ensure_test_image(client: Any) -> str:
    """The test image, made by `docker import` when missing (shared, cached, never deleted).

    Used by the test fixture and the bench scripts alike, so both run the same image.
    """
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(TEST_IMAGE)
        return TEST_IMAGE
    repository, tag = TEST_IMAGE.rsplit(":", 1)
    client.api.import_image_from_data(_base_rootfs_tar(), repository=repository, tag=tag)
    client.images.get(TEST_IMAGE)  # raises ImageNotFound when the import failed
    return TEST_IMAGE


def launch_daemon(
    state_dir: Path,
    label_prefix: str,
    log_path: Path,
    env_overrides: dict[str, str | None] | None = None,
) -> Proxy:
    """Start `python -m daemon run` on free loopback ports (no waiting); None unsets a key.

    The daemon ignores the caller's own DOCKYARD_* variables and sees only containers with
    ``label_prefix`` labels, so runs never meet each other's containers.
    """
    http_port, https_port = free_ports(2)
    env = {key: val for key, val in os.environ.items() if not key.startswith("DOCKYARD_")}
    env |= {
        "PYTHONUNBUFFERED": "1",
        "DOCKYARD_HTTP_PORT": str(http_port),
        "DOCKYARD_HTTPS_PORT": str(https_port),
        "DOCKYARD_STATE_DIR": str(state_dir),
        "DOCKYARD_LABEL_PREFIX": label_prefix,
        "DOCKYARD_LOG_FORMAT": "json",
    }
    for key, value in (env_overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    # Append mode: nginx appends its access log to the same file through /dev/stdout, and
    # a writer at its own offset would overwrite those lines.
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Proxy(
        process,
        log_path=log_path,
        http_port=int(env.get("DOCKYARD_HTTP_PORT", http_port)),
        https_port=int(env.get("DOCKYARD_HTTPS_PORT", https_port)),
        state_dir=Path(env.get("DOCKYARD_STATE_DIR", state_dir)),
        env=env,
    )
