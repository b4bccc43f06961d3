"""The compose files we ship (``compose/``): valid compose, labels ``dockyard check`` accepts,
examples that say what they replace and can reach a proxy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.compose_check import ComposeProject, check_compose, read_compose, read_route_files

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose"
QUICKSTART = COMPOSE / "docker-compose.yml"
COMPOSE_FILES = sorted(COMPOSE.rglob("docker-compose.yml"))
EXAMPLES = [path for path in COMPOSE_FILES if path != QUICKSTART]
ROUTE_DIRS = sorted(path for path in COMPOSE.rglob("routes.d") if path.is_dir())
# the network the quickstart creates for apps of other compose projects to join
SHARED_NETWORK = "dockyard"
PROXY_IMAGE = re.compile(r"dockyard(:.*)?")


def load(path: Path) -> dict[str, Any]:
    """A compose file as plain YAML."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path}: the top level is not a mapping"
    return document


def labelled(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services with dockyard or traefik labels."""
    return {
        name: spec
        for name, spec in document["services"].items()
        if any(str(key).startswith(("dockyard.", "traefik.")) for key in spec.get("labels") or {})
    }


def proxies(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run dockyard itself."""
    return {
        name: spec
        for name, spec in document["services"].items()
        if PROXY_IMAGE.fullmatch(str(spec.get("image", "")))
    }


def relative(path: Path) -> str:
    """A path as pytest ids show it."""
    return str(path.relative_to(ROOT))


def test_every_yaml_file_is_a_compose_file_or_a_route_file() -> None:
    """Each YAML file under compose/ is tested here: a compose file or a routes.d file."""
    found = sorted([*COMPOSE.rglob("*.yml"), *COMPOSE.rglob("*.yaml")])
    untested = [p for p in found if p not in COMPOSE_FILES and p.parent not in ROUTE_DIRS]
    assert not untested
    assert QUICKSTART in COMPOSE_FILES
    names = {path.parent.name for path in EXAMPLES}
    assert {"jellyfin", "jellyfin-subpath", "jatos", "jupyterhub"} <= names


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=relative)
def test_file_is_yaml_with_services(path: Path) -> None:
    """The file is a YAML mapping with services (no ``version:``: the compose spec)."""
    document = load(path)
    assert document["services"]
    assert "version" not in document


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=relative)
def test_docker_compose_accepts_file(path: Path) -> None:
    """``docker-compose config -q`` (Debian's v1) accepts the file without a warning."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("no docker-compose binary (tests/run.sh installs Debian's docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "COMPOSE_"))}
    done = subprocess.run(
        [binary, "-f", str(path), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "WARN" not in done.stderr.upper(), done.stderr


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=relative)
def test_labels_pass_dockyard_check(path: Path) -> None:
    """``dockyard check`` finds routes for every labelled service, no error, no warning."""
    document = load(path)
    project = read_compose([path], {})
    network = None
    for spec in proxies(document).values():
        network = (spec.get("environment") or {}).get("DOCKYARD_NETWORK", network)
    report = check_compose(project, "dockyard", network)
    problems = [
        (service.name, finding)
        for service in report.services
        for finding in service.findings
        if finding.level != "info"
    ]
    assert not problems
    assert not report.findings
    routed = {service.name for service in report.services if service.routes}
    assert routed == set(labelled(document))


@pytest.mark.parametrize("directory", ROUTE_DIRS, ids=relative)
def test_route_files_pass_dockyard_check(directory: Path) -> None:
    """Shipped route files (``routes.d``) give routes and no problem."""
    files = read_route_files([directory])
    assert files or directory == COMPOSE / "routes.d", "only the quickstart's routes.d is empty"
    no_services = ComposeProject("", (), ())  # as `dockyard check --routes DIR` alone
    report = check_compose(no_services, "dockyard", route_files=files)
    assert report.count("error") == report.count("warning") == 0
    assert all(entry.routes for entry in report.file_routes)
    assert len(report.file_routes) == sum(len(file.routes) for file in files)


@pytest.mark.parametrize("path", EXAMPLES, ids=relative)
def test_example_starts_by_naming_what_it_replaces(path: Path) -> None:
    """An example's first line is a comment: ``# Replaces: <the hand-written config>``."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert re.fullmatch(r"# Replaces: \S.{20,}", first), first


@pytest.mark.parametrize("path", EXAMPLES, ids=relative)
def test_example_reaches_a_proxy(path: Path) -> None:
    """Every labelled service shares a network with a proxy, or is on the host's network."""
    document = load(path)
    own = proxies(document)
    networks = document.get("networks") or {}
    assert labelled(document), "an example routes at least one service by its labels"
    for name, spec in labelled(document).items():
        if spec.get("network_mode") == "host":
            # Reached through the bridge gateway, from any network; no address to read the
            # port from, so the labels must name it.
            labels = spec.get("labels") or {}
            assert {"dockyard.port", "traefik.port"} & set(labels), f"{name}: no port label"
            continue
        joined = set(spec.get("networks") or ["default"])
        if own:
            shared = {n for p in own.values() for n in p.get("networks") or ["default"]}
            assert joined & shared, f"{name} shares no network with the proxy"
        else:
            assert SHARED_NETWORK in joined, f"{name} does not join {SHARED_NETWORK}"
            declared = networks[SHARED_NETWORK]
            assert str(declared.get("external")).lower() == "true"
            assert declared.get("name", SHARED_NETWORK) == SHARED_NETWORK


def test_quickstart_proxy_service() -> None:
    """The proxy: built from the repository, 80/443, the socket read-only, state in /data."""
    document = load(QUICKSTART)
    ((name, proxy),) = proxies(document).items()
    context = (QUICKSTART.parent / proxy["build"]).resolve()
    assert (context / "Dockerfile").is_file()
    assert set(proxy["ports"]) == {"80:80", "443:443"}
    volumes = proxy["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in volumes
    assert "data:/data" in volumes
    # watched directories are mounted as directories below the state dir
    assert {"./routes.d:/data/routes.d:ro", "./certs.d:/data/certs.d:ro"} <= set(volumes)
    assert (QUICKSTART.parent / "routes.d").is_dir()
    assert (QUICKSTART.parent / "certs.d").is_dir()
    env = proxy["environment"]
    assert env["DOCKYARD_STATE_DIR"] == "/data"
    assert env["DOCKYARD_ACME_EMAIL"] == "${DOCKYARD_ACME_EMAIL:-}"
    assert env["DOCKYARD_NETWORK"] == SHARED_NETWORK
    assert "host.docker.internal:host-gateway" in proxy["extra_hosts"]
    assert document["networks"][SHARED_NETWORK]["name"] == SHARED_NETWORK
    assert SHARED_NETWORK in proxy["networks"]
    assert name == "dockyard"


def test_quickstart_demo_apps() -> None:
    """whoami.localhost (HTTP) and echo.localhost (WebSocket), never ordering a certificate."""
    document = load(QUICKSTART)
    hosts = {spec["labels"]["dockyard.host"]: spec for spec in labelled(document).values()}
    assert set(hosts) == {"whoami.localhost", "echo.localhost"}
    assert hosts["whoami.localhost"]["image"] == "traefik/whoami"
    assert hosts["echo.localhost"]["labels"]["dockyard.websocket"] == "true"
    # .localhost cannot be validated by a public CA: with ACME on, no failing orders
    assert {spec["labels"]["dockyard.tls"] for spec in hosts.values()} == {"self-signed"}


def test_env_example_names_the_variables_the_quickstart_reads() -> None:
    """compose/.env.example lists every ``${VAR}`` the quickstart interpolates, empty."""
    text = QUICKSTART.read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = (COMPOSE / ".env.example").read_text(encoding="utf-8")
    assigned = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )
    assert set(assigned) == used
    assert set(assigned.values()) == {""}
