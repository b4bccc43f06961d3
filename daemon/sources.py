"""Sources: the Docker engine, read through the docker SDK (an edge module).

First step of the flow. ``DockerSource.snapshot`` lists the running containers,
inspects the labelled ones and returns them as frozen ``ContainerInfo`` plus the
``RoutingContext`` (the proxy's own networks, the bridge gateway). ``watch`` follows
the event stream in a thread and only pokes the trigger: state is always re-read, so
a lost event or a broken stream costs nothing but a resync. docker/requests errors are
translated into ``EngineUnavailableError`` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import re
import threading
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import docker
import requests
import structlog
import urllib3

from daemon.errors import EngineUnavailableError
from daemon.routing import (
    COMPOSE_SERVICE,
    Attachment,
    ContainerInfo,
    RoutingContext,
    forward_auth_hosts,
    has_prefixed_labels,
)
from daemon.settings import Settings

log = structlog.get_logger("daemon.sources")

# Container events that can change routes; everything else (exec_* from health checks,
# attach, resize, ...) is noise that would only cause useless passes.
RELEVANT_ACTIONS = frozenset(
    {
        "start",
        "restart",
        "die",
        "stop",
        "kill",
        "destroy",
        "pause",
        "unpause",
        "health_status",
        "rename",
        "update",
        "connect",
        "disconnect",
    }
)
# What a vanished or restarting engine looks like from the SDK: its own errors, requests'
# and urllib3's (a streamed response breaks below requests), and plain socket errors.
_ENGINE_ERRORS = (
    docker.errors.DockerException,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
)
_CONTAINER_ID_RE = re.compile(r"/containers/([0-9a-f]{64})/")
# The parenthesised parts of a list summary's Status ("Up 3 minutes (healthy)"): health
# and pause state, without the uptime that changes every second.
_STATUS_FLAGS_RE = re.compile(r"\(([^)]*)\)")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything routing needs, read from the engine in one go."""

    containers: tuple[ContainerInfo, ...]
    context: RoutingContext


class ContainerSource(Protocol):
    """What the reconcile loop needs from a container engine."""

    def snapshot(self) -> Snapshot:
        """Read the current state; raise ``EngineUnavailableError`` if the engine is away."""
        ...


def container_from_inspect(data: Mapping[str, Any]) -> ContainerInfo:
    """Translate one ``docker inspect`` document into a ``ContainerInfo``."""
    state = data.get("State") or {}
    config = data.get("Config") or {}
    host_config = data.get("HostConfig") or {}
    networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
    attachments = tuple(
        Attachment(name, (net or {}).get("IPAddress") or (net or {}).get("GlobalIPv6Address", ""))
        for name, net in sorted(networks.items())
    )
    ports = []
    for spec in config.get("ExposedPorts") or {}:
        number, _, proto = str(spec).partition("/")
        if proto in ("", "tcp") and number.isdigit():
            ports.append(int(number))
    health = (state.get("Health") or {}).get("Status")
    return ContainerInfo(
        id=str(data.get("Id", "")),
        name=str(data.get("Name", "")).lstrip("/"),
        labels=tuple(sorted((config.get("Labels") or {}).items())),
        running=bool(state.get("Running")),
        paused=bool(state.get("Paused")),
        health=str(health) if health else None,
        network_mode=str(host_config.get("NetworkMode") or "bridge"),
        attachments=attachments,
        exposed_ports=tuple(sorted(set(ports))),
    )


def event_matters(
    event: Mapping[str, Any],
    prefix: str,
    known: Container[str],
    own_id: str | None,
    watched_names: Container[str] = frozenset(),
) -> bool:
    """Whether a Docker event can change the routes, so it is worth a pass.

    Container events carry the container's labels: one without ``<prefix>.*`` labels
    (that is not the proxy's own container) cannot change a route. Network events carry
    only the container id: they matter for containers the last pass saw (``known``) and
    for the proxy itself. A starting container's network ``connect`` comes ~0.2 s before
    its ``start`` and finds nothing new (it has no address yet), so skipping it keeps the
    ``start`` pass from queueing behind a useless one. Containers named by a forward-auth
    URL (``watched_names``: container or compose service names) matter without labels.
    """
    if str(event.get("Action", "")).split(":", 1)[0] not in RELEVANT_ACTIONS:
        return False
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    if event.get("Type") == "network":
        container = attributes.get("container")
        return container is not None and (container in known or container == own_id)
    names = {str(attributes.get("name", "")).lower()}
    names.add(str(attributes.get(COMPOSE_SERVICE, "")).lower())
    return (
        has_prefixed_labels(attributes, prefix)
        or (own_id is not None and actor.get("ID") == own_id)
        or any(name in watched_names for name in names if name)
    )


def container_from_summary(summary: Mapping[str, Any]) -> ContainerInfo:
    """What a ``/containers/json`` entry tells about an unlabelled container: enough to
    find it by name (container or compose service) and reach it, without an inspect."""
    flags = " ".join(_STATUS_FLAGS_RE.findall(str(summary.get("Status") or ""))).lower()
    health = "unhealthy" if "unhealthy" in flags else "starting" if "starting" in flags else None
    networks = ((summary.get("NetworkSettings") or {}).get("Networks")) or {}
    service = (summary.get("Labels") or {}).get(COMPOSE_SERVICE)
    return ContainerInfo(
        id=str(summary.get("Id", "")),
        name=str((summary.get("Names") or [""])[0]).lstrip("/"),
        labels=((COMPOSE_SERVICE, str(service)),) if service else (),
        paused="paused" in flags,
        health=health,
        network_mode=str((summary.get("HostConfig") or {}).get("NetworkMode") or "bridge"),
        attachments=tuple(
            Attachment(name, (net or {}).get("IPAddress") or "")
            for name, net in sorted(networks.items())
        ),
    )


def summary_fingerprint(summary: Mapping[str, Any]) -> tuple[object, ...]:
    """What in a ``/containers/json`` entry can change a container's route.

    Equal fingerprints mean an earlier ``docker inspect`` of the same container is still
    accurate for routing: labels, name, state, health, network addresses. (Exposed ports
    and network mode cannot change while a container exists.)
    """
    networks = ((summary.get("NetworkSettings") or {}).get("Networks")) or {}
    return (
        summary.get("Id"),
        tuple(summary.get("Names") or ()),
        summary.get("State"),
        tuple(_STATUS_FLAGS_RE.findall(str(summary.get("Status") or ""))),
        tuple(sorted((summary.get("Labels") or {}).items())),
        tuple(
            sorted(
                (name, (net or {}).get("IPAddress"), (net or {}).get("GlobalIPv6Address"))
                for name, net in networks.items()
            )
        ),
    )


def own_container_id(mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """The id of the container this process runs in, if any (from its bind mounts)."""
    try:
        text = mountinfo.read_text()
    except OSError:
        return None
    match = _CONTAINER_ID_RE.search(text)
    return match.group(1) if match else None


class DockerSource:
    """The real engine, reached as the docker SDK's ``from_env`` says (``DOCKER_HOST``...)."""

    def __init__(
        self,
        settings: Settings,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._settings = settings
        self._factory = client_factory or (lambda: docker.from_env(timeout=10))
        self._client: Any = None
        self._own_id = settings.container_id or own_container_id()
        # Inspect results by container id, with the summary fingerprint they were read at:
        # a pass inspects only what changed, so its cost does not grow with quiet containers.
        self._inspected: dict[str, tuple[tuple[object, ...], ContainerInfo]] = {}
        self._watched_names: frozenset[str] = frozenset()

    def _api(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client.api

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._inspected = {}

    def snapshot(self) -> Snapshot:
        """List running containers and inspect the ones carrying our labels."""
        try:
            return self._snapshot()
        except _ENGINE_ERRORS as err:
            self._drop_client()
            raise EngineUnavailableError(str(err)) from err

    def _snapshot(self) -> Snapshot:
        api = self._api()
        summaries = api.containers()
        containers = []
        others = []
        inspected: dict[str, tuple[tuple[object, ...], ContainerInfo]] = {}
        for summary in summaries:
            if not has_prefixed_labels(summary.get("Labels") or {}, self._settings.label_prefix):
                others.append(container_from_summary(summary))
                continue
            fingerprint = summary_fingerprint(summary)
            cached = self._inspected.get(summary["Id"])
            if cached is not None and cached[0] == fingerprint:
                info = cached[1]
            else:
                try:
                    info = container_from_inspect(api.inspect_container(summary["Id"]))
                except docker.errors.NotFound:
                    continue  # gone between list and inspect: the next event resyncs
            inspected[summary["Id"]] = (fingerprint, info)
            containers.append(info)
        self._inspected = inspected
        self._watched_names = frozenset().union(
            *(forward_auth_hosts(c.label_map) for c in containers)
        )
        context = dataclasses.replace(self._context(api, containers), others=tuple(others))
        return Snapshot(tuple(containers), context)

    def _context(self, api: Any, containers: Iterable[ContainerInfo]) -> RoutingContext:
        own_networks: tuple[str, ...] = ()
        if self._own_id is not None:
            try:
                own = container_from_inspect(api.inspect_container(self._own_id))
                own_networks = tuple(a.network for a in own.attachments)
            except docker.errors.NotFound:
                pass
        gateway = None
        if any(c.network_mode == "host" for c in containers):
            gateway = _bridge_gateway(api)
        return RoutingContext(
            label_prefix=self._settings.label_prefix,
            default_network=self._settings.network,
            own_networks=own_networks,
            host_gateway=gateway,
        )

    def watch(self, on_change: Callable[[], None], stop: threading.Event) -> None:
        """Follow the event stream until ``stop``; reconnect with backoff, resync each time."""
        delay = 0.25
        while not stop.is_set():
            try:
                client = self._factory()
                stream = client.events(decode=True, filters={"type": ["container", "network"]})
                log.info("docker_events_connected")
                # Whatever happened while no stream was open is only visible by re-reading.
                on_change()
                delay = 0.25
                for event in stream:
                    if stop.is_set():
                        break
                    # The dict is replaced, never mutated, by the pass: safe to read here.
                    known = self._inspected
                    watched = self._watched_names
                    if event_matters(
                        event, self._settings.label_prefix, known, self._own_id, watched
                    ):
                        on_change()
                stream.close()
                client.close()
                if not stop.is_set():
                    log.warning("docker_events_lost", reason="event stream ended", retry_in=delay)
                    # a pass now finds out whether the engine is gone (and says so to the
                    # health check), and keeps retrying it with the loop's backoff
                    on_change()
            except _ENGINE_ERRORS as err:
                log.warning("docker_events_lost", reason=str(err), retry_in=delay)
                on_change()
            stop.wait(delay)
            delay = min(delay * 2, 5.0)


def _bridge_gateway(api: Any) -> str | None:
    """The default bridge's gateway: how host-network containers are reached."""
    try:
        network = api.inspect_network("bridge")
    except docker.errors.NotFound:
        return None
    for config in (network.get("IPAM") or {}).get("Config") or []:
        if gateway := config.get("Gateway"):
            return str(gateway)
        # The engine leaves Gateway out when it picked the default: the subnet's first host.
        if subnet := config.get("Subnet"):
            with contextlib.suppress(ValueError, StopIteration):
                return str(next(ipaddress.ip_network(subnet, strict=False).hosts()))
    return None
