"""Rendering: the routing table turned into nginx config text.

Pure step between routing and the nginx edge. ``plan_layout`` decides the shape of
the config (which hosts share a ``server`` block, which upstreams exist, which
``map`` picks the upstream per host); the Jinja2 templates only print that plan.

The layout is chosen to stay fast at thousands of routes: hosts whose locations have
the same shape share one ``server`` block, and a ``map $host`` per location picks the
upstream. 10,000 one-path hosts become one ``server`` block, one map and the
upstreams, instead of 10,000 ``server`` blocks (2.6 times the memory and, with the
upstream names below, 3.5 times the ``nginx -t`` time; see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

from daemon import __version__
from daemon.labels import Hsts
from daemon.routing import Backend, Route, RoutingTable
from daemon.settings import Settings
from daemon.tls import HTTP_ONLY, CertFiles, HostTls, TlsState, host_policies

MAIN_TEMPLATE = "nginx.conf.j2"
_GENERATION_MARKER = "@@DOCKYARD_GENERATION@@"
# Values that reach the config are validated upstream; this is the last line of defence
# in case a template prints something routing did not check.
_UNSAFE_RE = re.compile(r"[\s{};#'\"\\`]")


@dataclass(frozen=True, slots=True)
class Paths:
    """Where the nginx edge keeps its files, as printed into the config."""

    config: Path
    pid: Path
    temp: Path
    acme_challenge: Path
    control_socket: Path

    @classmethod
    def under(
        cls,
        state_dir: Path,
        control_socket: Path | None = None,
        acme_challenge: Path | None = None,
    ) -> Paths:
        """The standard places below ``state_dir``, unless the machine forces others."""
        nginx_dir = state_dir / "nginx"
        return cls(
            config=nginx_dir / "nginx.conf",
            pid=nginx_dir / "nginx.pid",
            temp=nginx_dir / "tmp",
            acme_challenge=acme_challenge or state_dir / "acme-challenge",
            control_socket=control_socket or nginx_dir / "control.sock",
        )


@dataclass(frozen=True, slots=True)
class Upstream:
    """One ``upstream`` block: a set of backends, shared by every route that has it."""

    name: str
    servers: tuple[str, ...]
    containers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LocationPlan:
    """One path in a shared ``server`` block; ``target`` is an upstream or a map variable."""

    path: str
    strip: bool
    websocket: bool
    target: str | None


@dataclass(frozen=True, slots=True)
class ServerPlan:
    """One ``server`` block serving hosts whose locations have the same shape.

    With a ``certificate`` it listens for HTTPS (hosts sharing the certificate and HSTS);
    without one it is the plain HTTP block of those hosts.
    """

    hosts: tuple[str, ...]
    locations: tuple[LocationPlan, ...]
    has_root: bool
    certificate: CertFiles | None = None
    hsts: Hsts | None = None


@dataclass(frozen=True, slots=True)
class HostMap:
    """A ``map $host`` choosing the upstream for one location of a shared server."""

    variable: str
    entries: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class HashSizes:
    """nginx hash table sizes big enough for the names in this config."""

    max_size: int
    bucket_size: int
    variables_max_size: int


@dataclass(frozen=True, slots=True)
class Layout:
    """The whole plan the templates print."""

    upstreams: tuple[Upstream, ...]
    servers: tuple[ServerPlan, ...]
    maps: tuple[HostMap, ...]
    hashes: HashSizes
    redirect_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RenderFacts:
    """Facts about this machine the config depends on, found once by the edge."""

    paths: Paths
    listen_ipv6: bool = False


_Shape = tuple[tuple[str, bool, bool, bool], ...]


def _shape(routes: Iterable[Route]) -> _Shape:
    return tuple((r.path, r.strip, r.websocket, bool(r.backends)) for r in routes)


def _hash_sizes(names: Iterable[str], n_variables: int) -> HashSizes:
    names = list(names)
    longest = max((len(n) for n in names), default=0)
    # An element is a pointer plus the name and two bytes, aligned to 8; a bucket also ends
    # with a pointer, and nginx rounds buckets to the 64-byte cache line.
    needed = 8 + ((longest + 2 + 7) // 8) * 8 + 8
    bucket = max(128, ((needed + 63) // 64) * 64)
    return HashSizes(
        max_size=max(2048, 8 * len(names)),
        bucket_size=bucket,
        variables_max_size=max(1024, 8 * n_variables),
    )


def _upstream_names(backend_sets: Iterable[tuple[Backend, ...]]) -> dict[tuple[Backend, ...], str]:
    """Stable upstream names that nginx tells apart at the first byte or by length.

    nginx 1.22 finds an upstream by walking every earlier one, comparing the name's length
    and then its bytes, for each ``upstream`` block: quadratic in their number. Names made
    from a digest of the backend set differ in their first byte and in their length, so
    nearly every comparison stops at once (10,000 upstreams: ``nginx -t`` 0.4 s instead of
    1.5 s). A name also stays the same when other routes come and go.
    """
    names: dict[tuple[Backend, ...], str] = {}
    taken: set[str] = set()
    for backends in sorted(backend_sets):
        endpoints = " ".join(backend.endpoint for backend in backends)
        digest = hashlib.sha256(endpoints.encode()).hexdigest()
        name = "u" + digest[: 12 + int(digest[-2:], 16) % 32]
        while name in taken:  # equal 48-bit prefixes: never seen, still kept apart
            name += "x"
        taken.add(name)
        names[backends] = name
    return names


def plan_layout(table: RoutingTable, policies: Mapping[str, HostTls] | None = None) -> Layout:
    """Group hosts by location shape and assign upstreams (deterministically).

    ``policies`` (from ``tls.host_policies``) splits each shape's hosts into its HTTP block
    and one HTTPS block per certificate and HSTS value; a host without a policy is served
    over HTTP only. The ``map $host`` of a shape covers all its hosts, so both schemes share it.
    """
    policies = policies or {}
    by_host: dict[str, list[Route]] = {}
    for route in sorted(table.routes, key=lambda r: (r.host, r.path)):
        by_host.setdefault(route.host, []).append(route)

    backend_sets: dict[tuple[Backend, ...], set[str]] = {}
    for route in table.routes:
        if route.backends:
            backend_sets.setdefault(route.backends, set()).update(route.containers)
    upstream_names = _upstream_names(backend_sets)
    upstreams = tuple(
        Upstream(
            upstream_names[backends],
            tuple(b.endpoint for b in backends),
            tuple(sorted(backend_sets[backends])),
        )
        for backends in sorted(backend_sets)
    )

    groups: dict[_Shape, list[str]] = {}
    for host in sorted(by_host):
        groups.setdefault(_shape(by_host[host]), []).append(host)

    servers: list[ServerPlan] = []
    maps: list[HostMap] = []
    for index, (shape, hosts) in enumerate(sorted(groups.items(), key=lambda g: g[1][0])):
        locations = []
        for position, (path, strip, websocket, has_backends) in enumerate(shape):
            target: str | None = None
            if has_backends and len(hosts) == 1:
                target = upstream_names[by_host[hosts[0]][position].backends]
            elif has_backends:
                target = f"$dockyard_s{index}_l{position}"
                entries = tuple(
                    (host, upstream_names[by_host[host][position].backends]) for host in hosts
                )
                maps.append(HostMap(target, entries))
            locations.append(LocationPlan(path, strip and path != "/", websocket, target))
        has_root = any(loc.path == "/" for loc in locations)
        servers.extend(_servers_for(hosts, tuple(locations), has_root, policies))

    return Layout(
        upstreams=upstreams,
        servers=tuple(servers),
        maps=tuple(maps),
        hashes=_hash_sizes(by_host, len(maps)),
        redirect_hosts=tuple(h for h in sorted(by_host) if _policy(policies, h).http == "redirect"),
    )


def _policy(policies: Mapping[str, HostTls], host: str) -> HostTls:
    return policies.get(host, HTTP_ONLY)


def _servers_for(
    hosts: list[str],
    locations: tuple[LocationPlan, ...],
    has_root: bool,
    policies: Mapping[str, HostTls],
) -> list[ServerPlan]:
    """The HTTP block and the HTTPS blocks of one shape's hosts."""
    plans = []
    proxied = tuple(h for h in hosts if _policy(policies, h).http == "proxy")
    if proxied:
        plans.append(ServerPlan(proxied, locations, has_root))
    secure: dict[tuple[str, str], list[str]] = {}
    for host in hosts:
        policy = _policy(policies, host)
        if policy.certificate is not None:
            hsts = policy.hsts.header if policy.hsts is not None else ""
            secure.setdefault((str(policy.certificate.path), hsts), []).append(host)
    for members in sorted(secure.values()):
        policy = _policy(policies, members[0])
        plans.append(
            ServerPlan(tuple(members), locations, has_root, policy.certificate, policy.hsts)
        )
    return plans


def _checked(value: object) -> str:
    """Jinja finalizer: refuse any printed value that could change nginx syntax."""
    text = str(value)
    if _UNSAFE_RE.search(text):
        msg = f"refusing to print {text!r} into nginx config"
        raise ValueError(msg)
    return text


def _regex_escape(value: str) -> str:
    """Make a validated path literal in a PCRE pattern; ``[.]`` needs no backslash."""
    return re.sub(r"([^A-Za-z0-9/_])", r"[\1]", value)


def make_environment(override_dir: Path | None, builtin_dir: Path) -> jinja2.Environment:
    """Templates from ``override_dir`` first (file by file), then the shipped ones."""
    search = [str(override_dir)] if override_dir is not None else []
    loader = jinja2.FileSystemLoader([*search, str(builtin_dir)])
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # noqa: S701 - output is nginx config, not HTML; _checked guards it
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_checked,
    )
    env.filters["regex_escape"] = _regex_escape
    return env


def render_config(
    table: RoutingTable,
    settings: Settings,
    facts: RenderFacts,
    env: jinja2.Environment,
    tls: TlsState | None = None,
) -> str:
    """The complete nginx.conf for ``table``, byte-identical for the same inputs.

    ``tls`` names the certificate files ready to serve; without it every host is HTTP only.
    """
    policies = host_policies(table, settings, tls) if tls is not None else None
    layout = plan_layout(table, policies)
    text = env.get_template(MAIN_TEMPLATE).render(
        version=__version__,
        generation=_GENERATION_MARKER,
        settings=settings,
        paths=facts.paths,
        listen_ipv6=facts.listen_ipv6,
        layout=layout,
    )
    generation = hashlib.sha256(text.encode()).hexdigest()[:16]
    return text.replace(_GENERATION_MARKER, generation)


def config_generation(text: str) -> str | None:
    """The generation id a rendered config reports on its control socket."""
    match = re.search(r"^# generation (\w+)$", text, re.MULTILINE)
    return match.group(1) if match else None
