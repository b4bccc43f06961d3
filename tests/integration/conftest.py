"""Fixtures for integration tests: real Docker containers as backends, the daemon as a subprocess.

Backends run tests/backend.py with the host's /usr/bin/python3 inside a tiny local image, so no
registry is ever needed. Everything created here is labelled `dockyard-test=<label_prefix>` and
removed at teardown; only the base image is kept (see test_image).
"""

from __future__ import annotations

import contextlib
import http.client
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped, unused-ignore]
import pytest
from docker import DockerClient  # type: ignore[import-untyped, unused-ignore]
from docker.models.containers import Container  # type: ignore[import-untyped, unused-ignore]
from docker.models.networks import Network  # type: ignore[import-untyped, unused-ignore]

from tests.integration.acme_support import (  # noqa: F401 - fixtures, registered by import
    challenge_server,
    pebble,
)
from tests.integration.pebble import pebble_for  # noqa: F401 - a fixture, registered by import
from tests.integration.support import (
    BACKEND_SCRIPT,
    TEST_IMAGE,
    TEST_LABEL,
    UNKNOWN_HOST,
    MakeNetwork,
    Proxy,
    RunProxy,
    StartBackend,
    ensure_test_image,
    launch_daemon,
    wait_backend_ready,
)

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report so run_proxy's teardown can print logs for failed tests."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def docker_client() -> Iterator[DockerClient]:
    """One Docker Engine API client for the session (DOCKER_HOST or the default socket)."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"Docker engine not reachable ({exc}); tests/run.sh starts dockerd")
    yield client
    client.close()


@pytest.fixture(scope="session")
def label_prefix() -> str:
    """Per-session label prefix, so the daemon under test ignores every other container here.

    It doubles as the session id in the `dockyard-test` label on everything the fixtures create.
    """
    return "dyt" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="session", autouse=True)
def _remove_session_leftovers(docker_client: DockerClient, label_prefix: str) -> Iterator[None]:
    """Safety net at session end: remove whatever still carries this session's test label."""
    yield
    selector = {"label": f"{TEST_LABEL}={label_prefix}"}
    for container in docker_client.containers.list(all=True, filters=selector):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    for network in docker_client.networks.list(filters=selector):
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()


@pytest.fixture(scope="session")
def test_image(docker_client: DockerClient) -> str:
    """A local base image made by `docker import`, because no registry is reachable.

    Deliberately cached between runs and never removed: it is a few hundred bytes. Change the
    tag in TEST_IMAGE whenever the rootfs in support.py changes, or an old cached image is
    reused.
    """
    try:
        return ensure_test_image(docker_client)
    except docker.errors.ImageNotFound as err:
        pytest.fail(f"docker import of {TEST_IMAGE} failed: {err}")


@pytest.fixture
def make_network(docker_client: DockerClient, label_prefix: str) -> Iterator[MakeNetwork]:
    """Factory for uniquely named user-defined bridge networks, removed after the test."""
    created: list[Network] = []

    def make(
        name: str | None = None,
        *,
        internal: bool = False,
        labels: dict[str, str] | None = None,
    ) -> Network:
        network = docker_client.networks.create(
            name or f"dyt-net-{uuid.uuid4().hex[:10]}",
            driver="bridge",
            internal=internal,
            labels={**(labels or {}), TEST_LABEL: label_prefix},
        )
        created.append(network)
        return network

    yield make
    for network in reversed(created):
        with contextlib.suppress(docker.errors.NotFound):
            network.reload()
            for container in network.containers:  # normally none: start_backend tears down first
                if container.labels.get(TEST_LABEL) == label_prefix:
                    container.remove(force=True)
                else:
                    network.disconnect(container, force=True)
            network.remove()


@pytest.fixture
def start_backend(
    docker_client: DockerClient,
    test_image: str,
    label_prefix: str,
    make_network: MakeNetwork,
) -> Iterator[StartBackend]:
    """Factory for backend containers running tests/backend.py, force-removed after the test.

    Requests make_network only so that containers are removed before the networks they use.
    """
    with _backend_factory(docker_client, test_image, label_prefix) as create:
        yield create


@pytest.fixture(scope="module")
def start_module_backend(
    docker_client: DockerClient, test_image: str, label_prefix: str
) -> Iterator[StartBackend]:
    """Like start_backend, for containers every test of a module shares (removed at its end)."""
    with _backend_factory(docker_client, test_image, label_prefix) as create:
        yield create


@contextlib.contextmanager
def _backend_factory(
    docker_client: DockerClient, test_image: str, label_prefix: str
) -> Iterator[StartBackend]:
    """The backend factory of start_backend; its containers are force-removed on exit."""
    created: list[Container] = []
    api = docker_client.api

    def create(
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
        if network and network_mode:
            raise ValueError("pass either network or network_mode, not both")
        name = name or f"dyt-{uuid.uuid4().hex[:10]}"
        all_labels = {f"{label_prefix}.{key}": value for key, value in (labels or {}).items()}
        all_labels.update(raw_labels or {})
        all_labels[TEST_LABEL] = label_prefix
        host_config = api.create_host_config(
            binds={
                "/usr": {"bind": "/usr", "mode": "ro"},
                str(BACKEND_SCRIPT): {"bind": "/srv/backend.py", "mode": "ro"},
            },
            network_mode=network or network_mode,
        )
        container_id = api.create_container(
            test_image,
            ["/usr/bin/python3", "/srv/backend.py", str(port)],
            name=name,
            labels=all_labels,
            environment={"BACKEND_NAME": name, **(env or {})},
            # Low-level `ports` only EXPOSEs; publishing would need port_bindings in host_config.
            ports=[port] if expose else None,
            host_config=host_config,
            networking_config=(
                api.create_networking_config({network: api.create_endpoint_config()})
                if network
                else None
            ),
            healthcheck=healthcheck,
        )["Id"]
        container = docker_client.containers.get(container_id)
        created.append(container)
        if start:
            container.start()
            if wait_ready:
                wait_backend_ready(container, port)
            container.reload()
        return container

    try:
        yield create
    finally:
        for container in reversed(created):
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)


def _wait_proxy_ready(proxy: Proxy, timeout: float = 15.0) -> None:
    """Block until the daemon's nginx answers 404 for an unknown Host, or fail with its log."""
    deadline = time.monotonic() + timeout
    last = "no response yet"
    while True:
        code = proxy.process.poll()
        if code is not None:
            pytest.fail(f"daemon exited with {code} before serving; log tail:\n{proxy.log_tail()}")
        try:
            response = proxy.get(UNKNOWN_HOST, timeout=1.0)
            if response.status == 404:
                return
            last = f"status {response.status}"
        except (OSError, http.client.HTTPException) as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            pytest.fail(
                f"daemon not serving 404 for {UNKNOWN_HOST} on port {proxy.http_port} after "
                f"{timeout}s (last: {last}); log tail:\n{proxy.log_tail()}"
            )
        time.sleep(0.05)


@pytest.fixture
def run_proxy(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    label_prefix: str,
    start_backend: StartBackend,
) -> Iterator[RunProxy]:
    """Factory starting `python -m daemon run` on free loopback ports; stopped after the test.

    Requests start_backend only so that the daemon stops before the test's containers go.
    Inherited DOCKYARD_* variables are dropped; an override of None removes a variable.
    Every call defaults to the same state dir (tmp_path/state), which suits restart tests;
    pass DOCKYARD_STATE_DIR to run two daemons at once.
    """

    def failed() -> bool:
        return any(report.failed for report in request.node.stash.get(_REPORTS, {}).values())

    with _proxy_factory(tmp_path, label_prefix, failed) as run:
        yield run


@pytest.fixture(scope="module")
def run_module_proxy(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    label_prefix: str,
    start_module_backend: StartBackend,
) -> Iterator[RunProxy]:
    """Like run_proxy, for one daemon every test of a module shares (stopped at its end).

    Its log tail is printed when any test of the module failed.
    """
    failures_before = request.session.testsfailed

    def failed() -> bool:
        return request.session.testsfailed > failures_before

    with _proxy_factory(tmp_path_factory.mktemp("module"), label_prefix, failed) as run:
        yield run


@contextlib.contextmanager
def _proxy_factory(
    tmp_path: Path, label_prefix: str, failed: Callable[[], bool]
) -> Iterator[RunProxy]:
    """The daemon factory of run_proxy; on exit it stops them, with logs if ``failed()``."""
    proxies: list[Proxy] = []

    def run(**env_overrides: str | None) -> Proxy:
        log_path = tmp_path / f"proxy-{len(proxies) + 1}.log"
        proxy = launch_daemon(tmp_path / "state", label_prefix, log_path, env_overrides)
        proxies.append(proxy)
        _wait_proxy_ready(proxy)
        return proxy

    try:
        yield run
    finally:
        _stop_proxies(proxies, failed())


def _stop_proxies(proxies: list[Proxy], failed: bool) -> None:
    """Stop every daemon (printing its log tail when a test failed); raise what went wrong."""
    problems: list[str] = []
    for proxy in proxies:
        if failed:
            print(f"--- {proxy.log_path} (last lines) ---\n{proxy.log_tail()}")
        try:
            proxy.cleanup()
        except AssertionError as exc:
            problems.append(str(exc))
    if problems:
        raise AssertionError("\n".join(problems))
