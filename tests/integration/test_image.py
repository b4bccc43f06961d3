"""The container image: built from the repository's Dockerfile, run the way users run it.

The image is built once per module on a local Debian base (no registry here) and removed at
the end; one proxy container (socket mounted read-only, ports published on 127.0.0.1)
serves a labelled backend on a shared network, and is stopped by the last test.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker  # type: ignore[import-untyped, unused-ignore]
import pytest
from docker import DockerClient  # type: ignore[import-untyped, unused-ignore]
from docker.models.containers import Container  # type: ignore[import-untyped, unused-ignore]
from docker.models.networks import Network  # type: ignore[import-untyped, unused-ignore]

from tests.integration.image_support import ImageBuildError, build_image, remove_build
from tests.integration.support import (
    TEST_LABEL,
    UNKNOWN_HOST,
    Response,
    StartBackend,
    free_ports,
    http_request,
)

pytestmark = pytest.mark.integration

DOCKER_SOCKET = "/var/run/docker.sock"
APP_HOST = "app.image.test"
_SECOND = 1_000_000_000  # healthcheck durations are nanoseconds

# nginx's workers as `id -un`/`id -gn` would name them: read from /proc inside the container.
_WORKER_IDS = (
    "import os, pwd, grp\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        cmd = open(f'/proc/{pid}/cmdline', 'rb').read()\n"
    "        st = os.stat(f'/proc/{pid}')\n"
    "    except OSError:\n"
    "        continue\n"
    "    if cmd.startswith(b'nginx: worker process'):\n"
    "        print(pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name)\n"
)


class ImageProxy:
    """The proxy container under test and how to reach it from the host."""

    def __init__(self, container: Container, http_port: int, https_port: int) -> None:
        """Wrap a started proxy container whose ports are published on 127.0.0.1."""
        self.container = container
        self.http_port = http_port
        self.https_port = https_port

    def get(self, host: str, path: str = "/") -> Response:
        """One plain-HTTP request through the published HTTP port."""
        return http_request("127.0.0.1", self.http_port, host, path, timeout=2.0)

    def log_text(self) -> str:
        """Everything the container wrote to stdout and stderr (`docker logs`)."""
        return str(self.container.logs(stdout=True, stderr=True).decode(errors="replace"))

    def logs(self) -> list[dict[str, Any]]:
        """The JSON lines of `docker logs`, in order; other lines skipped."""
        entries = []
        for line in self.log_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def wait_log(
        self,
        event: str,
        accept: Callable[[dict[str, Any]], bool] = lambda _: True,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Wait for a JSON log line with this event that ``accept`` likes; fail with the tail."""
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.logs():
                if entry.get("event") == event and accept(entry):
                    return entry
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event!r} in docker logs:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 40) -> str:
        """The last lines of `docker logs`, for failure messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_status(self, host: str, status: int, timeout: float = 20.0) -> Response:
        """Poll until the proxy answers ``status`` for ``host``; fail with the container's log."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            self.container.reload()
            if self.container.status != "running":
                raise AssertionError(f"proxy container {self.container.status}:\n{self.tail()}")
            try:
                response = self.get(host)
                if response.status == status:
                    return response
                last = f"{response.status} {response.body[:200]!r}"
            except (OSError, http.client.HTTPException) as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{host} never answered {status} within {timeout}s (last: {last}):\n"
                    + self.tail()
                )
            time.sleep(0.1)


@pytest.fixture(scope="module")
def image(docker_client: DockerClient, label_prefix: str) -> Iterator[str]:
    """The dockyard image of this checkout, tagged for this session and removed at the end."""
    tag = f"dockyard-test-image:{label_prefix}"
    try:
        built = build_image(docker_client, tag, {TEST_LABEL: label_prefix})
    except ImageBuildError as err:
        pytest.fail(str(err))
    yield tag
    remove_build(docker_client, built)


@pytest.fixture(scope="module")
def network(docker_client: DockerClient, label_prefix: str) -> Iterator[Network]:
    """A bridge network the proxy and the backend share, removed with what is still on it."""
    created = docker_client.networks.create(
        f"dyt-net-{uuid.uuid4().hex[:10]}", driver="bridge", labels={TEST_LABEL: label_prefix}
    )
    yield created
    with contextlib.suppress(docker.errors.NotFound):
        created.reload()
        # The module's backends are removed after this fixture's teardown (fixture order).
        for container in created.containers:
            if container.labels.get(TEST_LABEL) == label_prefix:
                container.remove(force=True, v=True)
        created.remove()


@pytest.fixture(scope="module")
def backend(start_module_backend: StartBackend, network: Network) -> Container:
    """A labelled backend on the shared network, for the proxy to route APP_HOST to."""
    return start_module_backend({"host": APP_HOST, "port": "8080"}, network=network.name)


@pytest.fixture(scope="module")
def proxy(
    docker_client: DockerClient, image: str, network: Network, label_prefix: str
) -> Iterator[ImageProxy]:
    """The image run as the docs say (socket read-only, /data volume), ports on 127.0.0.1.

    Only two things differ from a user's `docker run`: the label prefix, so the daemon sees
    this session's containers alone, and a 1 s health interval instead of 10 s, so the first
    probe comes soon (the probe itself is the image's `dockyard health`).
    """
    if not docker_client.api.base_url.startswith("http+docker://localhost"):
        pytest.skip("the engine is not on the local socket, which the proxy must mount")
    http_port, https_port = free_ports(2)
    container = docker_client.containers.run(
        image,
        detach=True,
        name=f"dyt-proxy-{uuid.uuid4().hex[:10]}",
        labels={TEST_LABEL: label_prefix},
        environment={"DOCKYARD_LABEL_PREFIX": label_prefix},
        volumes={DOCKER_SOCKET: {"bind": DOCKER_SOCKET, "mode": "ro"}},
        ports={"80/tcp": ("127.0.0.1", http_port), "443/tcp": ("127.0.0.1", https_port)},
        network=network.name,
        healthcheck={"interval": _SECOND},
    )
    running = ImageProxy(container, http_port, https_port)
    try:
        running.wait_status(UNKNOWN_HOST, 404, timeout=30.0)
        yield running
    finally:
        # The anonymous /data volume goes with the container (v=True).
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)


def test_image_metadata(docker_client: DockerClient, image: str) -> None:
    """The image exposes 80/443, keeps state in /data, runs under tini and checks its health."""
    config = docker_client.images.get(image).attrs["Config"]
    assert set(config["ExposedPorts"]) == {"80/tcp", "443/tcp"}
    assert set(config["Volumes"]) == {"/data"}
    assert "DOCKYARD_STATE_DIR=/data" in config["Env"]
    assert config["Entrypoint"] == ["tini", "--", "dockyard"]
    assert config["Cmd"] == ["run"]
    assert config["User"] in ("", "root")
    health = config["Healthcheck"]
    assert health["Test"] == ["CMD", "dockyard", "health"]
    assert (health["Interval"], health["Timeout"]) == (10 * _SECOND, 5 * _SECOND)
    assert (health["StartPeriod"], health["Retries"]) == (20 * _SECOND, 3)


def test_routes_by_host(proxy: ImageProxy, backend: Container) -> None:
    """A labelled container on the shared network is served by its host name."""
    response = proxy.wait_status(APP_HOST, 200)
    assert response.json()["name"] == backend.name


def test_unknown_host_is_404(proxy: ImageProxy, backend: Container) -> None:
    """A host nobody serves gets 404 while real routes are live."""
    proxy.wait_status(APP_HOST, 200)
    assert proxy.get(UNKNOWN_HOST).status == 404


def test_logs_are_json_lines(proxy: ImageProxy, backend: Container) -> None:
    """`docker logs` carries the daemon's events and nginx's access log as JSON lines."""
    proxy.wait_status(APP_HOST, 200)
    starting = proxy.wait_log("dockyard_starting")
    assert starting["state_dir"] == "/data"
    assert starting["http_port"] == 80
    # the first pass may apply an empty config, before the backend's start event
    proxy.wait_log("routes_applied", lambda entry: entry["total"] >= 1)
    proxy.wait_log("http_request", lambda entry: entry["host"] == APP_HOST)
    # nothing but JSON lines: no tracebacks, no unstructured nginx noise
    assert [line for line in proxy.log_text().splitlines() if not line.startswith("{")] == []


def test_nginx_workers_run_as_nobody(proxy: ImageProxy) -> None:
    """nginx's workers run as Debian's compiled-in default user, nobody:nogroup, not root."""
    result = proxy.container.exec_run(["python3", "-c", _WORKER_IDS])
    assert result.exit_code == 0, result.output
    workers = set(result.output.decode().split("\n")) - {""}
    assert workers == {"nobody nogroup"}


def test_no_build_inputs_in_image(proxy: ImageProxy) -> None:
    """The source tree and the wheels it was built from stay in the build stage."""
    result = proxy.container.exec_run(["sh", "-c", "test ! -e /src && command -v dockyard"])
    assert result.exit_code == 0, result.output
    assert result.output.decode().strip() == "/opt/dockyard/bin/dockyard"


def test_healthcheck_turns_healthy(proxy: ImageProxy) -> None:
    """The image's HEALTHCHECK (`dockyard health`) reports healthy once nginx serves."""
    deadline = time.monotonic() + 30
    while True:
        proxy.container.reload()
        health = proxy.container.attrs["State"]["Health"]
        if health["Status"] == "healthy":
            return
        if time.monotonic() > deadline:
            probes = json.dumps(health.get("Log") or [], indent=1)[-3000:]
            raise AssertionError(f"health {health['Status']!r} after 30 s; last probes:\n{probes}")
        time.sleep(0.25)


def test_docker_stop_is_clean(proxy: ImageProxy, backend: Container) -> None:
    """`docker stop` ends the container with exit code 0 well before its 10 s timeout."""
    proxy.wait_status(APP_HOST, 200)
    started = time.monotonic()
    proxy.container.stop(timeout=10)
    elapsed = time.monotonic() - started
    proxy.container.reload()
    state = proxy.container.attrs["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0), proxy.tail()
    assert elapsed < 10, f"docker stop took {elapsed:.1f} s (killed?):\n{proxy.tail()}"
    events = [entry.get("event") for entry in proxy.logs()]
    # SIGTERM reached the daemon through tini, and nginx quit before the daemon did
    assert {"signal_received", "dockyard_stopping", "nginx_stopped"} <= set(events)
    assert events.index("nginx_stopped") > events.index("dockyard_stopping")
