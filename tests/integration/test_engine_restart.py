"""The Docker engine going away and coming back: nginx keeps serving, routes resync.

A private ``dockerd`` (own socket, data root and default bridge) is started for this
module, so restarting it never touches the engine the rest of the suite uses. Its bridge
is an interface of its own: ``--bridge=none`` would make dockerd delete ``docker0``, the
other engine's bridge.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.support import RunProxy, wait_backend_ready

REPO_ROOT = Path(__file__).resolve().parents[2]


class PrivateEngine:
    """A dockerd of our own that tests may stop and start at will."""

    def __init__(self, root: Path, bridge: str) -> None:
        """Remember where the engine lives; ``start`` runs it."""
        self.root = root
        self.socket = root / "docker.sock"
        self.bridge = bridge
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """DOCKER_HOST for this engine."""
        return f"unix://{self.socket}"

    def start(self) -> None:
        """Start dockerd and wait until it answers."""
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                f"--host={self.url}",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.root / 'docker.pid'}",
                f"--bridge={self.bridge}",
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # Probe the socket ourselves first: the SDK leaks the socket of a failed connect.
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(str(self.socket))
            except OSError:
                time.sleep(0.1)
                continue
            client = self.client()
            try:
                client.ping()
                return
            finally:
                client.close()
        pytest.fail("private dockerd did not answer within 30 s")

    def stop(self) -> None:
        """SIGTERM dockerd (it stops its containers) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def client(self) -> Any:
        """A docker SDK client for this engine."""
        return docker.DockerClient(base_url=self.url, timeout=30)


@pytest.fixture(scope="module")
def engine(docker_client: Any, test_image: str) -> Iterator[PrivateEngine]:
    """A private engine with the test image, on a bridge interface made for it."""
    if shutil.which("dockerd") is None or shutil.which("ip") is None:
        pytest.fail("dockerd and ip are needed (tests/run.sh installs docker.io)")
    root = Path(tempfile.mkdtemp(prefix="dyt-engine-", dir="/tmp"))
    bridge = f"dyt{uuid.uuid4().hex[:8]}"
    gateway = f"10.213.{random.randint(1, 250)}.1/24"
    for command in (
        ["ip", "link", "add", bridge, "type", "bridge"],
        ["ip", "addr", "add", gateway, "dev", bridge],
        ["ip", "link", "set", bridge, "up"],
    ):
        subprocess.run(command, check=True)
    private = PrivateEngine(root, bridge)
    try:
        private.start()
        client = private.client()
        # Saved by name (not id) so the tag travels with it.
        client.images.load(b"".join(docker_client.api.get_image(test_image)))
        client.close()
        yield private
    finally:
        private.stop()
        subprocess.run(["ip", "link", "del", bridge], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _start_backend(engine: PrivateEngine, image: str, prefix: str, host: str) -> Any:
    """A backend on the private engine's network, labelled for ``host``."""
    client = engine.client()
    container = client.containers.run(
        image,
        ["/usr/bin/python3", "/srv/backend.py", "8080"],
        name=f"dyt-{uuid.uuid4().hex[:10]}",
        detach=True,
        labels={f"{prefix}.host": host, f"{prefix}.port": "8080"},
        environment={"BACKEND_NAME": host},
        volumes={
            "/usr": {"bind": "/usr", "mode": "ro"},
            str(REPO_ROOT / "tests" / "backend.py"): {"bind": "/srv/backend.py", "mode": "ro"},
        },
    )
    wait_backend_ready(container, 8080)
    client.close()
    return container


def test_engine_restart_keeps_nginx_serving_and_resyncs_routes(
    engine: PrivateEngine, run_proxy: RunProxy, label_prefix: str, test_image: str
) -> None:
    """While the engine is down nginx keeps serving; once back, routes match the new state."""
    proxy = run_proxy(DOCKER_HOST=engine.url)
    _start_backend(engine, test_image, label_prefix, "before.test")
    assert proxy.wait_status("before.test", "/", 200).json()["name"] == "before.test"
    connected = len([e for e in proxy.logs() if e["event"] == "docker_events_connected"])

    engine.stop()
    proxy.wait_log("docker_events_lost")
    assert proxy.get("unknown.test").status == 404, "nginx still answers without an engine"
    assert proxy.process.poll() is None

    engine.start()
    _start_backend(engine, test_image, label_prefix, "after.test")
    assert proxy.wait_status("after.test", "/", 200, timeout=20).json()["name"] == "after.test"
    proxy.wait_status("before.test", "/", 404, timeout=10)
    reconnects = [e for e in proxy.logs() if e["event"] == "docker_events_connected"]
    assert len(reconnects) > connected
    client = engine.client()
    for container in client.containers.list(all=True):
        container.remove(force=True)
    client.close()
