"""Routing: a snapshot of containers turned into one frozen routing table.

Pure step after the Docker source and before rendering. It decides which containers
get traffic (running, not paused, not ``starting``/``unhealthy``), how each is reached
(network and port), and groups containers with the same host and path into one route
with several backends (replicas). Routes from your route files (``route_files``) join
the same table; a host a file defines is the file's alone (see ``_file_hosts_win``).
Everything it refuses is returned as a ``Problem`` for the caller to log; one bad
container or file never affects another.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import ipaddress
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from daemon.errors import LabelError
from daemon.labels import Hsts, RouteLabels, RouteOptions, parse_labels
from daemon.route_files import FileError, RouteFile
from daemon.traefik import TRAEFIK_PREFIX, parse_traefik_labels, uses_traefik_labels

# Health states in which Docker says the process is not ready for traffic.
_NOT_READY_HEALTH = frozenset({"starting", "unhealthy"})
# The label compose puts on every container it makes: its service name.
COMPOSE_SERVICE = "com.docker.compose.service"
# How a route file is named among container ids (``exclude``, ``skipped``, culprits).
FILE_UNIT = "file:"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A container's address on one Docker network."""

    network: str
    address: str


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """What routing needs to know about one container, read from ``docker inspect``."""

    id: str
    name: str
    labels: tuple[tuple[str, str], ...]
    running: bool = True
    paused: bool = False
    health: str | None = None
    network_mode: str = "bridge"
    attachments: tuple[Attachment, ...] = ()
    exposed_ports: tuple[int, ...] = ()

    @property
    def label_map(self) -> dict[str, str]:
        """The labels as a dict."""
        return dict(self.labels)

    @property
    def ready(self) -> bool:
        """Whether Docker says this container may take traffic now."""
        return self.running and not self.paused and self.health not in _NOT_READY_HEALTH

    def labels_fingerprint(self) -> str:
        """A short digest of the labels, so a complaint is repeated only when they change."""
        digest = hashlib.sha256(repr(self.labels).encode()).hexdigest()
        return digest[:12]


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """Facts about the proxy's surroundings that decide how containers are reached."""

    label_prefix: str = "dockyard"
    default_network: str | None = None
    own_networks: tuple[str, ...] = ()
    host_gateway: str | None = None
    # running containers without our labels (name, compose service, addresses): servers
    # that forward-auth URLs may name
    others: tuple[ContainerInfo, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class Backend:
    """One address nginx proxies to."""

    address: str
    port: int

    @property
    def endpoint(self) -> str:
        """``address:port`` as nginx's ``server`` directive wants it (IPv6 in brackets)."""
        if ":" in self.address:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class Route:
    """One host and path, how to proxy it, and the backends ready to serve it."""

    host: str
    path: str
    backends: tuple[Backend, ...]
    containers: tuple[str, ...]
    options: RouteOptions = field(default_factory=RouteOptions)
    exact: bool = False
    tls: str | None = None
    https: str | None = None
    hsts: Hsts | Literal["off"] | None = None
    lb: str = "round_robin"
    priority: int = 0

    @property
    def strip(self) -> bool:
        """Whether the path prefix is removed before proxying."""
        return self.options.strip

    @property
    def websocket(self) -> bool:
        """Whether the route is tuned for long-lived upgraded connections."""
        return self.options.websocket

    @property
    def host_options(self) -> tuple[str | None, str | None, Hsts | Literal["off"] | None]:
        """The options that belong to the host, not the path: one value per host."""
        return (self.tls, self.https, self.hsts)


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """All routes, sorted by host then path: the whole desired state of the proxy."""

    routes: tuple[Route, ...] = ()

    @property
    def keys(self) -> frozenset[tuple[str, str]]:
        """(host, path) of every route, for change summaries (``=/x`` for exact paths)."""
        return frozenset(
            (route.host, "=" + route.path if route.exact else route.path) for route in self.routes
        )


@dataclass(frozen=True, slots=True)
class Problem:
    """Something routing refused or noticed, for one ``event`` log line.

    ``fields`` carries the context (label, value, reason, ...) as key/value pairs.
    """

    event: str
    container: str
    container_id: str
    fields: tuple[tuple[str, str], ...] = field(default=())
    level: str = "warning"


@dataclass(frozen=True, slots=True)
class RoutingResult:
    """The table plus everything worth telling the operator about how it was built."""

    table: RoutingTable
    problems: tuple[Problem, ...]
    skipped: frozenset[str]


@dataclass(frozen=True, slots=True)
class FileOrigin:
    """A route declared in a route file, as routing names it (``<file>:<route>``)."""

    file: str
    route: str

    @property
    def name(self) -> str:
        """How the route is named beside container names (upstream comments, reasons)."""
        return f"{self.file}:{self.route}"

    @property
    def id(self) -> str:
        """The unit reconcile excludes when nginx rejects what the file produces."""
        return FILE_UNIT + self.file


@dataclass(slots=True)
class _Candidate:
    """A container's (or a route file's) contribution to one route, before merging."""

    origin: ContainerInfo | FileOrigin
    labels: RouteLabels
    backends: tuple[Backend, ...]


def _choose_address(  # noqa: PLR0911 - one early return per documented rule
    container: ContainerInfo, network: str | None, ctx: RoutingContext
) -> tuple[str | None, str]:
    """Pick the address to reach ``container`` at; on failure say why in the second item."""
    if container.network_mode == "host":
        if ctx.host_gateway is None:
            return None, "network_mode host but the bridge gateway address is unknown"
        return ctx.host_gateway, ""
    if container.network_mode.startswith("container:"):
        return None, "network_mode container:... shares another container's network"
    by_name = {a.network: a.address for a in container.attachments if a.address}
    if network is not None:
        if network in by_name:
            return by_name[network], ""
        return None, f"not attached to network {network!r} named by its label"
    if ctx.default_network is not None and ctx.default_network in by_name:
        return by_name[ctx.default_network], ""
    for name in sorted(ctx.own_networks):
        if name in by_name:
            return by_name[name], ""
    for name in sorted(by_name):
        return by_name[name], ""
    return None, "no network with an address"


def _valid_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _problem(event: str, origin: ContainerInfo | FileOrigin, **fields: str) -> Problem:
    if isinstance(origin, FileOrigin):
        fields = {"file": origin.file, "route": origin.route, **fields}
        return Problem(event, "", "", tuple(sorted(fields.items())))
    return Problem(event, origin.name, origin.id, tuple(sorted(fields.items())))


def _route_problem(event: str, route: Route, reason: str) -> Problem:
    """A problem of a merged route: every container behind it is named."""
    fields = (("host", route.host), ("path", route.path), ("reason", reason))
    return Problem(event, ", ".join(route.containers), "", fields)


def _address_book(containers: Iterable[ContainerInfo], ctx: RoutingContext) -> dict[str, str]:
    """Container and compose service names of ready containers, to their addresses.

    A forward-auth URL names its server the way compose users write it (``authelia``);
    nginx would resolve that name once at load time and keep a stale address after the
    server restarts, so routing puts the current address into the config instead.
    """
    book: dict[str, str] = {}
    everyone = [*containers, *ctx.others]
    for container in sorted(everyone, key=lambda c: (c.name, c.id)):
        if not container.ready:
            continue
        address, _ = _choose_address(container, None, ctx)
        if address is None or not _valid_ip(address):
            continue
        names = [container.name, container.label_map.get(COMPOSE_SERVICE, "")]
        for name in names:
            if name and name.lower() not in book:
                book[name.lower()] = address
    return book


def _resolve_forward_auth(
    origin: ContainerInfo | FileOrigin,
    labels: RouteLabels,
    book: Callable[[], Mapping[str, str]],
    problems: list[Problem],
) -> RouteLabels:
    """Put the auth server's current address into the route, or mark it unreachable.

    A one-word host (``authelia``) can only be a container or compose service: when none
    runs, the route fails closed (its auth check answers 503) instead of nginx refusing
    the whole container at load time and keeping it out after the server starts. Names
    with dots are left to nginx's resolver.
    """
    auth = labels.options.forward_auth
    if auth is None:
        return labels
    host = auth.url.host
    if host in book():
        resolved = dataclasses.replace(auth, address=book()[host])
    elif "." not in host and not host.startswith("["):
        resolved = dataclasses.replace(auth, reachable=False)
        problems.append(
            _problem(
                "auth_server_unknown",
                origin,
                host=host,
                reason="no running container or compose service has this name; "
                "requests fail closed (500) until one does",
            )
        )
    else:
        return labels
    options = dataclasses.replace(labels.options, forward_auth=resolved)
    return dataclasses.replace(labels, options=options)


def forward_auth_hosts(labels: Mapping[str, str]) -> frozenset[str]:
    """Host names that forward-auth labels (ours or Traefik's) point at, lower-cased.

    The Docker source watches containers with these names even without our labels, so an
    auth server starting or stopping wakes a pass.
    """
    hosts = set()
    for key, value in labels.items():
        if key.endswith((".auth.forward", ".auth.forward.address")):
            with contextlib.suppress(ValueError):
                host = urllib.parse.urlsplit(value.strip()).hostname
                if host:
                    hosts.add(host.lower())
    return frozenset(hosts)


def _candidates(
    container: ContainerInfo,
    ctx: RoutingContext,
    book: Callable[[], Mapping[str, str]],
    problems: list[Problem],
) -> list[_Candidate] | None:
    """Validate one container into its route contributions, or record why it has none."""
    dialect = uses_traefik_labels(container.label_map, ctx.label_prefix)
    try:
        parsed = (
            parse_traefik_labels(container.label_map, ctx.label_prefix, container.name)
            if dialect
            else parse_labels(container.label_map, ctx.label_prefix)
        )
    except LabelError as err:
        problems.append(
            _problem(
                "label_invalid", container, label=err.label, value=err.value, reason=err.reason
            )
        )
        return None
    for unknown in parsed.unknown:
        problems.append(
            _problem(
                "label_unknown",
                container,
                label=unknown.label,
                suggestion=unknown.suggestion or "",
            )
        )
    for ignored in parsed.ignored:
        problems.append(
            _problem("label_ignored", container, label=ignored.label, reason=ignored.reason)
        )
    if not parsed.routes:
        if parsed.reason is not None:
            problems.append(
                Problem(
                    "container_not_exposed",
                    container.name,
                    container.id,
                    (("reason", parsed.reason),),
                    level="info",
                )
            )
        return None
    result = []
    for labels in parsed.routes:
        labels = _resolve_forward_auth(container, labels, book, problems)  # noqa: PLW2901
        if not container.ready or labels.options.redirect is not None:
            # a redirect answers by itself: it needs no address or port
            result.append(_Candidate(container, labels, ()))
            continue
        prefix = TRAEFIK_PREFIX if dialect else ctx.label_prefix
        where = f"{prefix}.{'' if dialect else 'route.'}{labels.name}" if labels.name else prefix
        backend = _backend(container, labels, where, ctx, problems)
        if backend is None:
            return None
        result.append(_Candidate(container, labels, (backend,)))
    return result


def _backend(
    container: ContainerInfo,
    labels: RouteLabels,
    where: str,
    ctx: RoutingContext,
    problems: list[Problem],
) -> Backend | None:
    """The address and port of one route; ``where`` is its label prefix, for the reason."""
    port = labels.port
    if port is None:
        if len(container.exposed_ports) != 1:
            problems.append(
                _problem(
                    "container_skipped",
                    container,
                    reason=f"no {where}.port label and "
                    f"{len(container.exposed_ports)} exposed ports (need exactly one)",
                )
            )
            return None
        port = container.exposed_ports[0]
    address, why = _choose_address(container, labels.network, ctx)
    if address is None or not _valid_ip(address):
        problems.append(_problem("container_skipped", container, reason=why or "bad address"))
        return None
    return Backend(address, port)


_Key = tuple[str, str, bool]


def build_routes(
    containers: Iterable[ContainerInfo],
    ctx: RoutingContext,
    exclude: frozenset[str] = frozenset(),
    files: Iterable[RouteFile] = (),
) -> RoutingResult:
    """Turn containers and route files into the routing table.

    ``exclude`` drops container ids and ``FILE_UNIT`` file names (reconcile's bisection).
    """
    problems: list[Problem] = []
    skipped: set[str] = set()
    containers = sorted(containers, key=lambda c: (c.name, c.id))
    # only a forward-auth label needs it: built on first use, once per pass
    book = functools.cache(lambda: _address_book(containers, ctx))
    from_files = _file_candidates(files, exclude, book, problems, skipped)
    from_containers: list[_Candidate] = []
    for container in containers:
        if container.id in exclude:
            continue
        candidates = _candidates(container, ctx, book, problems)
        if candidates is None:
            skipped.add(container.id)
            continue
        from_containers.extend(candidates)
    grouped: dict[_Key, list[_Candidate]] = {}
    for key, candidate in [
        *_one_file_route_per_key(from_files, problems),
        *_file_hosts_win(from_files, from_containers, problems),
    ]:
        grouped.setdefault(key, []).append(candidate)

    routes = []
    for (host, path, exact), candidates in sorted(grouped.items()):
        winners = _highest_priority(host, path, candidates, problems)
        routes.append(_merge_replicas(host, path, exact, winners, problems))
    routes = _drop_shadowed(routes, problems)
    routes = _one_host_policy(routes, problems)
    return RoutingResult(RoutingTable(tuple(routes)), tuple(problems), frozenset(skipped))


def _file_candidates(
    files: Iterable[RouteFile],
    exclude: frozenset[str],
    book: Callable[[], Mapping[str, str]],
    problems: list[Problem],
    skipped: set[str],
) -> list[_Candidate]:
    """The routes of every valid file; a file with an error, or reusing a route name that
    an earlier file (by name) defines, is skipped whole."""
    result: list[_Candidate] = []
    names: dict[str, str] = {}
    for file in sorted(files, key=lambda f: f.name):
        unit = FILE_UNIT + file.name
        if unit in exclude:
            continue
        error = file.error
        if error is None:
            taken = [(r.name, names[r.name]) for r in file.routes if r.name in names]
            if taken:
                name, other = taken[0]
                error = FileError(f"route name {name!r} is already defined in {other}")
        if error is not None:
            fields = {"file": file.name, "reason": error.reason, "action": "file skipped"}
            # key and value apart too, as label_invalid gives label and value: the reason
            # starts with them, for people, and tools need not parse it
            optional = {"line": error.line, "key": error.key, "value": error.value}
            fields |= {field: str(item) for field, item in optional.items() if item is not None}
            problems.append(
                Problem("routes_file_invalid", "", "", tuple(sorted(fields.items())), "error")
            )
            skipped.add(unit)
            continue
        for static in file.routes:
            names[static.name] = file.name
            origin = FileOrigin(file.name, static.name)
            backends = tuple(sorted({Backend(s.address, s.port) for s in static.servers}))
            for labels in static.routes:
                resolved = _resolve_forward_auth(origin, labels, book, problems)
                result.append(_Candidate(origin, resolved, backends))
    return result


def _keys(candidate: _Candidate) -> Iterable[_Key]:
    for host in candidate.labels.hosts:
        for path in candidate.labels.paths:
            yield (host, path, candidate.labels.exact)


def _owner(host: str, owners: Mapping[str, str]) -> str | None:
    """The file route owning ``host``: by its exact name, or a wildcard covering it.

    nginx prefers an exact name to a wildcard, so a container naming ``intranet.corp.test``
    would take it from a file's ``*.corp.test``: the wildcard owns every name below it (at
    any depth, as nginx matches it), and wildcards below it too.
    """
    if host in owners:
        return owners[host]
    labels = host.split(".")
    for start in range(1, len(labels)):
        owner = owners.get("*." + ".".join(labels[start:]))
        if owner is not None:
            return owner
    return None


def _one_file_route_per_key(
    candidates: list[_Candidate], problems: list[Problem]
) -> list[tuple[_Key, _Candidate]]:
    """Two file routes on one host and path: the higher ``priority`` wins, then the first
    by file and route name; files list servers, so there are no replicas to merge."""
    best: dict[_Key, _Candidate] = {}
    for candidate in candidates:
        for key in _keys(candidate):
            other = best.get(key)
            if other is None or candidate.labels.priority > other.labels.priority:
                best[key] = candidate
                loser = other
            else:
                loser = candidate
            if loser is not None:
                winner = best[key]
                problems.append(
                    _problem(
                        "route_conflict",
                        loser.origin,
                        host=key[0],
                        path=key[1],
                        reason=f"{winner.origin.name} defines the same host and path; it is served",
                    )
                )
    return sorted(best.items(), key=lambda item: item[0])


def _file_hosts_win(
    from_files: list[_Candidate], from_containers: list[_Candidate], problems: list[Problem]
) -> list[tuple[_Key, _Candidate]]:
    """A host named in a route file belongs to the file: containers' routes for it go.

    Files are written by whoever runs the proxy; labels come from any container started on
    the engine. A container must not take over (or add paths to) a host the operator
    pinned, so the file wins, whatever the priorities, and the container is told.
    """
    owners: dict[str, str] = {}
    for candidate in from_files:
        for host in candidate.labels.hosts:
            owners.setdefault(host, candidate.origin.name)
    kept = []
    told: set[tuple[str, str]] = set()
    for candidate in from_containers:
        for key in _keys(candidate):
            owner = _owner(key[0], owners)
            if owner is None:
                kept.append((key, candidate))
            elif (candidate.origin.id, key[0]) not in told:
                told.add((candidate.origin.id, key[0]))
                problems.append(
                    _problem(
                        "route_conflict",
                        candidate.origin,
                        host=key[0],
                        reason=f"the host is defined in route file {owner}; "
                        "route files win over labels",
                    )
                )
    return kept


def _highest_priority(
    host: str, path: str, candidates: list[_Candidate], problems: list[Problem]
) -> list[_Candidate]:
    """Of the containers claiming one host and path, those with the highest priority win."""
    top = max(c.labels.priority for c in candidates)
    winners = [c for c in candidates if c.labels.priority == top]
    for loser in candidates:
        if loser.labels.priority < top:
            problems.append(
                _problem(
                    "route_shadowed",
                    loser.origin,
                    host=host,
                    path=path,
                    reason=f"{winners[0].origin.name} serves it with higher priority {top}",
                )
            )
    return winners


def _covers(outer: Route, inner: Route) -> bool:
    """Whether every request ``inner`` matches also matches ``outer`` (same host)."""
    if outer.exact:
        return inner.exact and inner.path == outer.path
    if outer.path == "/":
        return True
    return inner.path == outer.path or inner.path.startswith(outer.path + "/")


def _drop_shadowed(routes: list[Route], problems: list[Problem]) -> list[Route]:
    """A route with a higher ``priority`` than a more specific one takes its requests.

    nginx picks the most specific location; ``priority`` says otherwise, as in Traefik.
    The shadowed route is dropped and its containers are told why.
    """
    by_host: dict[str, list[Route]] = {}
    for route in routes:
        by_host.setdefault(route.host, []).append(route)
    kept = []
    for route in routes:
        winner = next(
            (
                other
                for other in by_host[route.host]
                if other is not route and other.priority > route.priority and _covers(other, route)
            ),
            None,
        )
        if winner is None:
            kept.append(route)
            continue
        problems.append(
            _route_problem(
                "route_shadowed",
                route,
                f"the route at {winner.path} ({', '.join(winner.containers)}) "
                f"has higher priority {winner.priority}",
            )
        )
    return kept


def _one_host_policy(routes: list[Route], problems: list[Problem]) -> list[Route]:
    """TLS, HTTPS and HSTS are per host: the host's first path (``/`` if routed) decides.

    ``routes`` is sorted by host then path, so the first route of a host is its shortest
    path; the containers of other paths asking for something else are told so.
    """
    first: dict[str, Route] = {}
    result = []
    for route in routes:
        leader = first.setdefault(route.host, route)
        if route.host_options != leader.host_options:
            problems.append(
                _route_problem(
                    "route_conflict",
                    route,
                    f"tls/https/hsts labels differ from the host's route at {leader.path}; "
                    "using those",
                )
            )
            route = dataclasses.replace(  # noqa: PLW2901 - the normalised route replaces it
                route, tls=leader.tls, https=leader.https, hsts=leader.hsts
            )
        result.append(route)
    return result


def _merge_replicas(
    host: str, path: str, exact: bool, candidates: list[_Candidate], problems: list[Problem]
) -> Route:
    """Containers sharing host and path are replicas; the first by name sets the options."""
    first = candidates[0]
    for other in candidates[1:]:
        if _route_options(other.labels) != _route_options(first.labels):
            problems.append(
                _problem(
                    "route_conflict",
                    other.origin,
                    host=host,
                    path=path,
                    reason="proxy options (path.strip, websocket, headers, tls, ...) differ "
                    f"from replica {first.origin.name}; using the replica's",
                )
            )
    backends = sorted({b for c in candidates for b in c.backends})
    return Route(
        host=host,
        path=path,
        exact=exact,
        options=first.labels.options,
        backends=tuple(backends),
        containers=tuple(c.origin.name for c in candidates),
        tls=first.labels.tls,
        https=first.labels.https,
        hsts=first.labels.hsts,
        lb=first.labels.lb,
        priority=first.labels.priority,
    )


def _route_options(labels: RouteLabels) -> tuple[object, ...]:
    return (labels.options, labels.tls, labels.https, labels.hsts, labels.lb)


def has_prefixed_labels(labels: Mapping[str, str], prefix: str) -> bool:
    """Whether a container carries any ``<prefix>.*`` or ``traefik.*`` label (worth inspecting).

    Containers with Traefik v1 labels only are read in that dialect (``daemon.traefik``).
    """
    dotted = prefix + "."
    return any(key.startswith((dotted, TRAEFIK_PREFIX + ".")) for key in labels)
