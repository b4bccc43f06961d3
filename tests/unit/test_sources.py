"""The Docker source's translation of engine documents, over a small fake API."""

from __future__ import annotations

import threading
from typing import Any

from daemon.routing import Attachment
from daemon.settings import Settings
from daemon.sources import (
    DockerSource,
    container_from_inspect,
    container_from_summary,
    event_matters,
    own_container_id,
)

INSPECT: dict[str, Any] = {
    "Id": "c" * 64,
    "Name": "/web-1",
    "State": {"Running": True, "Paused": False, "Health": {"Status": "healthy"}},
    "Config": {
        "Labels": {"dockyard.host": "a.test", "other": "x"},
        "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
    },
    "HostConfig": {"NetworkMode": "default"},
    "NetworkSettings": {
        "Networks": {"zeta": {"IPAddress": "10.0.2.2"}, "alpha": {"IPAddress": "10.0.1.2"}}
    },
}


def test_inspect_document_becomes_container_info() -> None:
    """Name, labels, state, health, networks (sorted) and TCP ports are read."""
    info = container_from_inspect(INSPECT)
    assert info.name == "web-1"
    assert dict(info.labels) == {"dockyard.host": "a.test", "other": "x"}
    assert info.ready
    assert info.health == "healthy"
    assert info.attachments == (Attachment("alpha", "10.0.1.2"), Attachment("zeta", "10.0.2.2"))
    assert info.exposed_ports == (8080,)


class FakeClient:
    """Just enough of docker.DockerClient for ``DockerSource.snapshot``."""

    def __init__(self) -> None:
        self.api = self
        self.inspected: list[str] = []
        self.status = "Up 2 seconds (healthy)"

    def containers(self) -> list[dict[str, Any]]:
        return [
            {"Id": "c" * 64, "Labels": {"dockyard.host": "a.test"}, "Status": self.status},
            {"Id": "d" * 64, "Labels": {"unrelated": "1"}},
        ]

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.inspected.append(container_id)
        return {**INSPECT, "HostConfig": {"NetworkMode": "host"}}

    def inspect_network(self, name: str) -> dict[str, Any]:
        assert name == "bridge"
        return {"IPAM": {"Config": [{"Subnet": "172.17.0.0/16"}]}}

    def close(self) -> None:
        pass


def test_snapshot_inspects_only_labelled_containers_and_finds_the_gateway() -> None:
    """Unlabelled containers are never inspected; the bridge gateway defaults to .1."""
    client = FakeClient()
    source = DockerSource(Settings(container_id=None), client_factory=lambda: client)
    snapshot = source.snapshot()
    assert client.inspected == ["c" * 64]
    assert [c.name for c in snapshot.containers] == ["web-1"]
    assert snapshot.context.host_gateway == "172.17.0.1"


def test_snapshot_reinspects_only_containers_whose_summary_changed() -> None:
    """Uptime ticking is no change; a new health state in the list summary is one."""
    client = FakeClient()
    source = DockerSource(Settings(container_id=None), client_factory=lambda: client)
    source.snapshot()
    client.status = "Up 9 seconds (healthy)"
    again = source.snapshot()
    assert client.inspected == ["c" * 64]
    assert [c.name for c in again.containers] == ["web-1"]
    client.status = "Up 10 seconds (unhealthy)"
    source.snapshot()
    assert client.inspected == ["c" * 64, "c" * 64]


def test_own_container_id_is_read_from_mountinfo(tmp_path: Any) -> None:
    """Inside a container, the id comes from the bind mounts Docker sets up."""
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        f"1 2 0:1 /var/lib/docker/containers/{'e' * 64}/hostname /etc/hostname rw - ext4\n"
    )
    assert own_container_id(mountinfo) == "e" * 64
    mountinfo.write_text("1 2 0:1 / / rw - ext4\n")
    assert own_container_id(mountinfo) is None


def event(kind: str, action: str, actor: str, **attributes: str) -> dict[str, Any]:
    """A Docker event as the SDK decodes it."""
    return {"Type": kind, "Action": action, "Actor": {"ID": actor, "Attributes": attributes}}


def test_events_without_our_labels_or_known_containers_are_ignored() -> None:
    """Only events that can change a route wake the loop (labels, known ids, the proxy)."""
    ours = {"dockyard.host": "a.test"}

    def matters(e: dict[str, Any], own: str | None = "me") -> bool:
        return event_matters(e, "dockyard", {"k"}, own)

    assert matters(event("container", "start", "a", name="a", **ours))
    assert not matters(event("container", "start", "b", name="b"))
    assert not matters(event("container", "exec_start: curl -f localhost", "a", **ours))
    assert matters(event("network", "connect", "n", container="k"))
    assert not matters(event("network", "connect", "n", container="z"))
    assert matters(event("network", "disconnect", "n", container="me"))
    assert matters(event("container", "update", "me"))
    assert not matters(event("container", "update", "me"), own=None)


def test_events_of_auth_servers_matter_without_labels() -> None:
    """A container named by a forward-auth URL wakes a pass by name or compose service."""

    def event(**attributes: str) -> dict[str, Any]:
        return {
            "Type": "container",
            "Action": "start",
            "Actor": {"ID": "x", "Attributes": attributes},
        }

    watched = frozenset({"authelia"})
    assert event_matters(event(name="authelia"), "dockyard", set(), None, watched)
    assert event_matters(
        event(name="stack-authelia-1", **{"com.docker.compose.service": "authelia"}),
        "dockyard",
        set(),
        None,
        watched,
    )
    assert not event_matters(event(name="other"), "dockyard", set(), None, watched)


def test_unlabelled_containers_are_read_from_their_list_entry() -> None:
    """Name, compose service, health and addresses come from the list entry, no inspect."""
    info = container_from_summary(
        {
            "Id": "abc",
            "Names": ["/stack-authelia-1"],
            "Labels": {"com.docker.compose.service": "authelia", "other": "x"},
            "Status": "Up 2 minutes (health: starting)",
            "HostConfig": {"NetworkMode": "stack_default"},
            "NetworkSettings": {"Networks": {"stack_default": {"IPAddress": "172.20.0.5"}}},
        }
    )
    assert info.name == "stack-authelia-1"
    assert info.labels == (("com.docker.compose.service", "authelia"),)
    assert info.health == "starting"
    assert not info.ready
    assert info.attachments == (Attachment("stack_default", "172.20.0.5"),)


def test_a_lost_event_stream_wakes_a_pass() -> None:
    """When the engine cannot be reached for events, the loop is poked, so a pass finds out
    (and the health check hears the engine is gone) instead of idling on a stale state."""
    stop = threading.Event()
    pokes: list[None] = []

    def unreachable() -> Any:
        raise ConnectionError("engine gone")

    def poke() -> None:
        pokes.append(None)
        if len(pokes) >= 2:
            stop.set()

    source = DockerSource(Settings(container_id="me"), client_factory=unreachable)
    worker = threading.Thread(target=source.watch, args=(poke, stop), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert len(pokes) >= 2
