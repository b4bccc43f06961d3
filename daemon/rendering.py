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

import functools
import hashlib
import re
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from daemon import __version__
from daemon.labels import Hsts, RouteOptions
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
    # htpasswd files of ``auth.basic`` labels: read by nginx's workers on each request
    auth_files: Path
    # copies of your own certificate pairs (chain + key in one file, named by digest)
    own_certificates: Path

    @classmethod
    def under(
        cls,
        state_dir: Path,
        control_socket: Path | None = None,
        acme_challenge: Path | None = None,
    ) -> Paths:
        """The standard places below ``state_dir``, unless the machine forces others.

        The auth files live next to the challenge files: both must be readable by the
        unprivileged workers, so both move when the state dir is closed to them.
        """
        nginx_dir = state_dir / "nginx"
        challenge = acme_challenge or state_dir / "acme-challenge"
        return cls(
            config=nginx_dir / "nginx.conf",
            pid=nginx_dir / "nginx.pid",
            temp=nginx_dir / "tmp",
            acme_challenge=challenge,
            control_socket=control_socket or nginx_dir / "control.sock",
            auth_files=challenge.with_name("auth"),
            own_certificates=state_dir / "certs" / "own",
        )


@dataclass(frozen=True, slots=True)
class Upstream:
    """One ``upstream`` block: a set of backends, shared by every route that has it."""

    name: str
    servers: tuple[str, ...]
    containers: tuple[str, ...]
    method: str = "round_robin"


class Token(str):
    """Text made safe to print into nginx config: a quoted, escaped string or a variable."""

    __slots__ = ()


def quote(text: str) -> Token:
    """``text`` as an nginx double-quoted string that means exactly ``text``.

    Inside quotes nginx gives meaning to ``\\``, ``"`` and ``$`` only; a ``$`` becomes the
    ``$dockyard_dollar`` variable (a ``geo`` in nginx.conf.j2 that holds a literal ``$``).
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "${dockyard_dollar}")
    return Token(f'"{escaped}"')


@dataclass(frozen=True, slots=True)
class AuthServer:
    """Where a location's ``auth_request`` subrequests go (``auth.forward``)."""

    uri: str
    # None: the server named by the label is not running, the check answers 503
    proxy_pass: str | None
    host_header: str
    scheme: str
    tls_name: str
    # (header name, our variable, nginx's variable for the auth server's answer header):
    # copied from that answer onto the request to the backend
    copied: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True, slots=True)
class LocationPlan:
    """One path in a shared ``server`` block; ``target`` is an upstream or a map variable.

    ``bare`` asks for the ``location = /path`` twin of a prefix location (absent when an
    exact route owns that URI). Header values are ``Token``s ready to print.
    """

    path: str
    strip: bool
    target: str | None
    exact: bool = False
    bare: bool = False
    options: RouteOptions = field(default_factory=RouteOptions)
    rewrite: tuple[str, str] | None = None
    response_headers: tuple[tuple[str, Token], ...] = ()
    hidden_headers: tuple[str, ...] = ()
    proxy_headers: tuple[tuple[str, Token], ...] = ()
    overridden: frozenset[str] = frozenset()
    auth_file: str | None = None
    auth_server: AuthServer | None = None
    rate_zone: str | None = None
    redirect: tuple[int, Token] | None = None


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

    @property
    def auth_servers(self) -> tuple[AuthServer, ...]:
        """The forward-auth subrequest locations this block needs, each once."""
        found = {loc.auth_server.uri: loc.auth_server for loc in self.locations if loc.auth_server}
        return tuple(found[uri] for uri in sorted(found))


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
    # idle backend connections each worker keeps per upstream (``upstream_keepalive``), out
    # of its ``worker_connections``
    upstream_keepalive: int
    worker_connections: int
    redirect_hosts: tuple[str, ...] = ()
    # (zone name, rate) of every rate_limit value in use
    rate_zones: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class RenderFacts:
    """Facts about this machine the config depends on, found once by the edge."""

    paths: Paths
    listen_ipv6: bool = False


# One location's options as they shape a server block: routes whose hosts have the same
# shape share one block. The Host header of ``pass_host_header: false`` is per backend.
_LocationShape = tuple[str, bool, RouteOptions, bool, str | None]
_Shape = tuple[_LocationShape, ...]
# (backends, lb method, backend scheme): routes that verify a backend's certificate must not
# reuse keepalive connections (or TLS sessions) opened by a route that does not, nor plain ones.
_UpstreamKey = tuple[tuple[Backend, ...], str, str]


def _shape(routes: Iterable[Route]) -> _Shape:
    return tuple(
        (
            r.path,
            r.exact,
            r.options,
            bool(r.backends),
            r.backends[0].endpoint if r.backends and not r.options.pass_host_header else None,
        )
        for r in routes
    )


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


# Idle backend connections kept per upstream and worker. When more requests than that are in
# flight at once, every extra backend connection is closed after its response and a new one
# opened for the next request; each close leaves a TIME_WAIT socket, and at a few thousand
# requests a second the ports towards one backend run out within seconds (measured: 64
# keep-alive clients through ``keepalive 16`` fell from 29k to under 1k requests/s; HTTP/2
# multiplies it, 64 connections x 10 streams are 640 requests in flight). A backend sees
# no more connections than it would anyway: the pool only keeps the ones peak load opened,
# for ``keepalive_timeout``. But nginx never closes a pooled connection to make room, and
# pooled connections count against ``worker_connections`` (printed from here), so the
# upstreams share half of them: 2,048 slots, at most 1,024 and at least 16 per upstream (16
# from 128 upstreams on; the old fixed value, which also keeps a 10,000-route config inside
# nginx's memory pools).
WORKER_CONNECTIONS = 4096
KEEPALIVE_SLOTS = WORKER_CONNECTIONS // 2
KEEPALIVE_MAX = 1024
KEEPALIVE_MIN = 16


def upstream_keepalive(upstreams: int) -> int:
    """The ``keepalive`` of each upstream block in a config with ``upstreams`` of them."""
    return max(KEEPALIVE_MIN, min(KEEPALIVE_MAX, KEEPALIVE_SLOTS // max(upstreams, 1)))


def _upstream_names(keys: Iterable[_UpstreamKey]) -> dict[_UpstreamKey, str]:
    """Stable upstream names that nginx tells apart at the first byte or by length.

    nginx 1.22 finds an upstream by walking every earlier one, comparing the name's length
    and then its bytes, for each ``upstream`` block: quadratic in their number. Names made
    from a digest of the backend set differ in their first byte and in their length, so
    nearly every comparison stops at once (10,000 upstreams: ``nginx -t`` 0.4 s instead of
    1.5 s). A name also stays the same when other routes come and go.
    """
    names: dict[_UpstreamKey, str] = {}
    taken: set[str] = set()
    for backends, method, scheme in sorted(keys):
        endpoints = " ".join(backend.endpoint for backend in backends)
        if method != "round_robin":
            endpoints += " " + method
        if scheme != "http":
            endpoints += " " + scheme
        digest = hashlib.sha256(endpoints.encode()).hexdigest()
        name = "u" + digest[: 12 + int(digest[-2:], 16) % 32]
        while name in taken:  # equal 48-bit prefixes: never seen, still kept apart
            name += "x"
        taken.add(name)
        names[backends, method, scheme] = name
    return names


def _upstream_key(route: Route) -> _UpstreamKey:
    return (route.backends, route.lb, route.options.scheme)


def plan_layout(table: RoutingTable, policies: Mapping[str, HostTls] | None = None) -> Layout:
    """Group hosts by location shape and assign upstreams (deterministically).

    ``policies`` (from ``tls.host_policies``) splits each shape's hosts into its HTTP block
    and one HTTPS block per certificate and HSTS value; a host without a policy is served
    over HTTP only. The ``map $host`` of a shape covers all its hosts, so both schemes share it.
    """
    policies = policies or {}
    by_host: dict[str, list[Route]] = {}
    for route in sorted(table.routes, key=lambda r: (r.host, r.path, r.exact)):
        by_host.setdefault(route.host, []).append(route)

    upstream_sets: dict[_UpstreamKey, set[str]] = {}
    for route in table.routes:
        if route.backends and route.options.redirect is None:
            upstream_sets.setdefault(_upstream_key(route), set()).update(route.containers)
    upstream_names = _upstream_names(upstream_sets)
    upstreams = tuple(
        Upstream(
            upstream_names[key],
            tuple(b.endpoint for b in key[0]),
            tuple(sorted(upstream_sets[key])),
            key[1],
        )
        for key in sorted(upstream_sets)
    )

    groups: dict[_Shape, list[str]] = {}
    for host in sorted(by_host):
        groups.setdefault(_shape(by_host[host]), []).append(host)

    servers: list[ServerPlan] = []
    maps: list[HostMap] = []
    extras = _Extras()
    for index, (shape, hosts) in enumerate(sorted(groups.items(), key=lambda g: g[1][0])):
        exact_paths = {path for path, exact, *_ in shape if exact}
        locations = []
        for position, (path, exact, options, has_backends, _) in enumerate(shape):
            target: str | None = None
            proxied = has_backends and options.redirect is None
            if proxied and len(hosts) == 1:
                target = upstream_names[_upstream_key(by_host[hosts[0]][position])]
            elif proxied:
                target = f"$dockyard_s{index}_l{position}"
                entries = tuple(
                    (host, upstream_names[_upstream_key(by_host[host][position])]) for host in hosts
                )
                maps.append(HostMap(target, entries))
            bare = not exact and path != "/" and path not in exact_paths
            locations.append(_location(shape[position], bare, target, extras))
        has_root = any(loc.path == "/" and not loc.exact for loc in locations)
        servers.extend(_servers_for(hosts, tuple(locations), has_root, policies))

    return Layout(
        upstreams=upstreams,
        servers=tuple(servers),
        maps=tuple(maps),
        hashes=_hash_sizes(by_host, len(maps)),
        upstream_keepalive=upstream_keepalive(len(upstreams)),
        worker_connections=WORKER_CONNECTIONS,
        redirect_hosts=tuple(h for h in sorted(by_host) if _policy(policies, h).http == "redirect"),
        rate_zones=tuple(sorted(extras.rate_zones.items())),
    )


@dataclass(slots=True)
class _Extras:
    """What locations need outside their server block: the rate-limit zones.

    (htpasswd files are files, not config: ``auth_files`` lists them for the edge.)
    """

    rate_zones: dict[str, str] = field(default_factory=dict)


def _location(
    part: _LocationShape, bare: bool, target: str | None, extras: _Extras
) -> LocationPlan:
    """Everything one location prints, with every label value already checked or quoted."""
    path, exact, options, _, host_header = part
    response = tuple((name, quote(value)) for name, value in options.response_headers if value)
    # A label's header replaces the backend's (as Traefik's custom headers do): hidden from the
    # answer, then added; an empty value only hides it.
    hidden = tuple(name for name, _ in options.response_headers)
    proxy_headers = [(name, quote(value)) for name, value in options.request_headers]
    if host_header is not None:
        proxy_headers.append(("Host", quote(host_header)))
    auth_server = None
    if options.forward_auth is not None:
        auth_server = _auth_server(options)
        proxy_headers += [(name, Token(variable)) for name, variable, _ in auth_server.copied]
    auth_file = htpasswd_file(options.basic_auth)[0] if options.basic_auth else None
    rate_zone = None
    if options.rate_limit is not None:
        rate_zone = "dockyard_rate_" + options.rate_limit.rate.replace("r/", "_per_")
        extras.rate_zones[rate_zone] = options.rate_limit.rate
    redirect = None
    if options.redirect is not None:
        redirect = (
            301 if options.redirect.permanent else 302,
            Token(f'"{options.redirect.target}"'),
        )
    return LocationPlan(
        path=path,
        strip=options.strip and path != "/",
        target=target,
        exact=exact,
        bare=bare,
        options=options,
        rewrite=_rewrite(path, exact, options),
        response_headers=response,
        hidden_headers=hidden,
        proxy_headers=tuple(proxy_headers),
        overridden=frozenset(name.lower() for name, _ in proxy_headers),
        auth_file=auth_file,
        auth_server=auth_server,
        rate_zone=rate_zone,
        redirect=redirect,
    )


def htpasswd_file(users: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    """The name and content of the htpasswd file for ``users``; the name is a digest of it."""
    content = "".join(f"{user}:{digest}\n" for user, digest in users)
    return hashlib.sha256(content.encode()).hexdigest()[:20] + ".htpasswd", content


def auth_files(table: RoutingTable) -> dict[str, str]:
    """Every htpasswd file the config for ``table`` names, by file name."""
    return dict(htpasswd_file(r.options.basic_auth) for r in table.routes if r.options.basic_auth)


def _rewrite(path: str, exact: bool, options: RouteOptions) -> tuple[str, str] | None:
    """The (pattern, replacement) of the location's ``rewrite ... break``, if it needs one."""
    prefix = "" if options.add_prefix in (None, "/") else options.add_prefix
    if options.replace_path is not None:
        return ("^", options.replace_path)
    if options.strip and path != "/":
        if exact:
            return ("^", prefix or "/")
        return (f"^{_regex_escape(path)}/(.*)$", f"{prefix}/$1")
    if prefix:
        return ("^(.*)$", f"{prefix}$1")
    return None


def _auth_server(options: RouteOptions) -> AuthServer:
    auth = options.forward_auth
    assert auth is not None
    url = auth.url
    default_port = 443 if url.scheme == "https" else 80
    name = url.host if url.port == default_port else url.authority
    address = auth.address or url.host.strip("[]")  # a literal IPv6 host comes bracketed
    endpoint = f"[{address}]:{url.port}" if ":" in address else f"{address}:{url.port}"
    key = f"{url.scheme}://{endpoint}{url.path} {name}"
    copied = tuple(
        (
            header,
            "$dockyard_auth_" + header.lower().replace("-", "_"),
            "$upstream_http_" + header.lower().replace("-", "_"),
        )
        for header in auth.response_headers
    )
    return AuthServer(
        uri="/.dockyard/auth/" + hashlib.sha256(key.encode()).hexdigest()[:16],
        proxy_pass=f"{url.scheme}://{endpoint}{url.path}" if auth.reachable else None,
        host_header=name,
        scheme=url.scheme,
        tls_name=url.host,
        copied=copied,
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
    if isinstance(value, Token):
        return value
    text = str(value)
    if _UNSAFE_RE.search(text):
        msg = f"refusing to print {text!r} into nginx config"
        raise ValueError(msg)
    return text


def _regex_escape(value: str) -> str:
    """Make a validated path literal in a PCRE pattern; ``[.]`` needs no backslash."""
    return re.sub(r"([^A-Za-z0-9/_])", r"[\1]", value)


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """The template texts one config is rendered from: yours over the shipped ones, by name.

    Rendering from texts held in memory rather than from the directory lets reconcile keep
    the set that last produced a good config: a template edit that breaks rendering or
    that nginx rejects never reaches nginx, and configs keep being rendered from the set
    that worked. Entries are (name, text, origin path).
    """

    shipped: tuple[tuple[str, str, str], ...]
    own: tuple[tuple[str, str, str], ...] = ()

    @property
    def effective(self) -> dict[str, tuple[str, str]]:
        """Name to (text, origin) after your templates replaced the shipped ones."""
        found = {name: (text, origin) for name, text, origin in self.shipped}
        found.update({name: (text, origin) for name, text, origin in self.own})
        return found

    @property
    def fingerprint(self) -> str:
        """A digest of the effective texts: equal sets render equal configs."""
        digest = hashlib.sha256()
        for name, (text, _) in sorted(self.effective.items()):
            digest.update(f"{name}\0{len(text)}\0".encode())
            digest.update(text.encode())
        return digest.hexdigest()[:16]

    def shipped_only(self) -> TemplateSet:
        """The same set without your templates."""
        return TemplateSet(self.shipped)

    def changed_from(self, other: TemplateSet) -> tuple[str, ...]:
        """Names whose text differs from ``other`` (added, edited or removed)."""
        mine, theirs = self.effective, other.effective
        names = set(mine) | set(theirs)
        return tuple(
            sorted(n for n in names if mine.get(n, ("", ""))[0] != theirs.get(n, ("", ""))[0])
        )


class _TextLoader(jinja2.BaseLoader):
    """Templates from a ``TemplateSet``; each keeps its file path so errors name it."""

    def __init__(self, templates: Mapping[str, tuple[str, str]]) -> None:
        self._templates = templates

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        del environment
        if template not in self._templates:
            raise jinja2.TemplateNotFound(template)
        text, origin = self._templates[template]
        return text, origin, lambda: True


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
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
    env.filters["quote"] = quote
    return env


def make_environment(override_dir: Path | None, builtin_dir: Path) -> jinja2.Environment:
    """Templates from ``override_dir`` first (file by file), then the shipped ones."""
    search = [str(override_dir)] if override_dir is not None else []
    return _environment(jinja2.FileSystemLoader([*search, str(builtin_dir)]))


@functools.lru_cache(maxsize=4)
def environment_for(templates: TemplateSet) -> jinja2.Environment:
    """The Jinja2 environment of one template set (cached: compiling costs milliseconds)."""
    return _environment(_TextLoader(templates.effective))


def template_error_place(err: BaseException) -> tuple[str, int | None] | None:
    """The template file and line a rendering error comes from, when it names one.

    Syntax errors carry both; errors while rendering (an undefined variable, a value the
    finalizer refuses) are found in the traceback, whose template frames Jinja2 gives the
    template's file name and line.
    """
    if isinstance(err, jinja2.TemplateSyntaxError):
        return (err.filename or err.name or "?", err.lineno)
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        if frame.filename.endswith(".j2"):
            return (frame.filename, frame.lineno)
    return None


_CONFIG_LINE_RE = re.compile(r"\bnginx\.conf:([0-9]+)")
_JINJA_TAG_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}")


def place_in_templates(
    message: str, text: str, templates: TemplateSet, names: Iterable[str]
) -> tuple[str, int | None] | None:
    """Which line of the templates ``names`` most likely printed the config line nginx names.

    nginx reports a line of the rendered config; a template line matches it when all its
    literal parts (the text between Jinja tags) occur in that config line, in order. The
    longest match wins. None when nginx names no line or no template line matches.
    """
    match = _CONFIG_LINE_RE.search(message)
    lines = text.splitlines()
    if match is None or not 0 < int(match.group(1)) <= len(lines):
        return None
    printed = lines[int(match.group(1)) - 1].strip()
    effective = templates.effective
    best: tuple[int, str, int] | None = None
    for name in names:
        if name not in effective:
            continue
        source, origin = effective[name]
        for number, line in enumerate(source.splitlines(), start=1):
            parts = [p.strip() for p in _JINJA_TAG_RE.split(line) if p.strip()]
            if not parts or sum(map(len, parts)) < 3 or not _in_order(parts, printed):
                continue
            score = sum(map(len, parts))
            if best is None or score > best[0]:
                best = (score, origin, number)
    return (best[1], best[2]) if best is not None else None


def _in_order(parts: Iterable[str], line: str) -> bool:
    at = 0
    for part in parts:
        found = line.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


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
